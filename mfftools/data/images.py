"""Image decoding and batching shared by every reader (PROTOCOLS 1.4).

Faces are aligned 112x112 RGB: decode with Pillow, convert to RGB, resize (bicubic) only when the
size differs, scale to [0, 1] and normalise with mean 0.5 and std 0.5 per channel.
"""

import io
import logging

import numpy as np
import torch
from PIL import Image

from mfftools.errors import MfftoolsError

logger = logging.getLogger(__name__)

IMAGE_SIZE = 112


def decode_image(data, name):
    """Encoded image bytes -> float tensor [3, 112, 112] in [-1, 1]; `name` is used in errors."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image = image.convert("RGB")
            if image.size != (IMAGE_SIZE, IMAGE_SIZE):
                image = image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC)
            pixels = np.asarray(image, dtype=np.float32)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise MfftoolsError(f"cannot decode image {name} ({error})") from error
    pixels = (pixels / 255.0 - 0.5) / 0.5
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))


def decode_or_skip(data, name, skip_bad_images):
    """decode_image, or None (with a warning naming the image) when skipping bad images."""
    try:
        return decode_image(data, name)
    except MfftoolsError as error:
        if not skip_bad_images:
            raise
        logger.warning("skipping bad image: %s", error)
        return None


def collate_skipping_bad(batch):
    """DataLoader collate for `(image_or_None, index)` items.

    Returns `(images [B, 3, 112, 112], indices [B], skipped_indices [S])`: the decodable images
    stacked with their source indices, and the indices of the images that were skipped.
    """
    kept = [(image, index) for image, index in batch if image is not None]
    skipped = torch.tensor([index for image, index in batch if image is None], dtype=torch.int64)
    if kept:
        images = torch.stack([image for image, _ in kept])
    else:
        images = torch.empty((0, 3, IMAGE_SIZE, IMAGE_SIZE), dtype=torch.float32)
    indices = torch.tensor([index for _, index in kept], dtype=torch.int64)
    return images, indices, skipped


def encode_image(pixels, fmt="JPEG", quality=95):
    """uint8 array [H, W, 3] -> encoded bytes (JPEG by default, quality 95)."""
    buffer = io.BytesIO()
    options = {"quality": quality} if fmt == "JPEG" else {}
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).save(
        buffer, format=fmt, **options
    )
    return buffer.getvalue()
