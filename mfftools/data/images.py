"""Image decoding and batching shared by every reader (PROTOCOLS 1.4).

Faces are aligned 112x112 RGB: decode with Pillow, convert to RGB, resize (bicubic) only when the
size differs, scale to [0, 1] and normalise with mean 0.5 and std 0.5 per channel. A model that
wants other input (another size, mean and std, BGR channel order) gets it through a
`Preprocessing`; the default one is exactly the above.
"""

import io
import logging
from dataclasses import dataclass, replace

import numpy as np
import torch
from PIL import Image

from mfftools.errors import MfftoolsError

logger = logging.getLogger(__name__)

IMAGE_SIZE = 112
# Files taken as images in folders and zips (case-insensitive).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass(frozen=True)
class Preprocessing:
    """Encoded image -> a model's input: RGB (or BGR) pixels resized (bicubic) to `size`
    (height, width) when they differ, scaled to [0, 1], then (x - mean) / std per channel, the
    channels in the model's order. The default is insightface's (x - 127.5) / 127.5 at 112x112.
    `size` None stands for the model's own input size (`for_model`).
    """

    size: tuple = (IMAGE_SIZE, IMAGE_SIZE)
    mean: tuple = (0.5, 0.5, 0.5)
    std: tuple = (0.5, 0.5, 0.5)
    bgr: bool = False

    def __post_init__(self):
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 1):
            raise MfftoolsError(f"input size must be a height and a width, got {self.size}")
        for name, values in (("mean", self.mean), ("std", self.std)):
            if len(values) != 3:
                raise MfftoolsError(f"input {name} needs 1 or 3 values, got {len(values)}")
        if min(self.std) <= 0:
            raise MfftoolsError(f"input std must be positive, got {', '.join(map(str, self.std))}")

    def for_model(self, model_size, model):
        """This preprocessing at the model's input size (`model_size` (H, W), or None when the
        model does not fix it: then `size`, else 112x112); an error if they disagree."""
        if self.size is None:
            return replace(self, size=tuple(model_size or (IMAGE_SIZE, IMAGE_SIZE)))
        if model_size is not None and tuple(model_size) != tuple(self.size):
            raise MfftoolsError(
                f"--input-size {self.size[0]}x{self.size[1]}, but {model} takes "
                f"{model_size[0]}x{model_size[1]} images"
            )
        return self

    def decode(self, data, name, landmarks=None):
        """Encoded image bytes -> float tensor [3, H, W]; `name` is used in errors. With
        `landmarks` ((5, 2) in the image's pixels) the face is aligned to the input size
        (`mfftools.data.alignment`) instead of resized."""
        height, width = self.size
        if landmarks is not None and height != width:
            raise MfftoolsError(f"5-point alignment makes square crops; the input size is "
                                f"{height}x{width}")
        try:
            with Image.open(io.BytesIO(data)) as image:
                image = image.convert("RGB")
                if landmarks is not None:
                    from mfftools.data.alignment import align_face

                    pixels = align_face(np.asarray(image), landmarks, height).astype(np.float32)
                else:
                    if image.size != (width, height):
                        image = image.resize((width, height), Image.Resampling.BICUBIC)
                    pixels = np.asarray(image, dtype=np.float32)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
            raise MfftoolsError(f"cannot decode image {name} ({error})") from error
        if self.bgr:
            pixels = pixels[..., ::-1]
        mean, std = np.float32(self.mean), np.float32(self.std)
        pixels = (pixels / 255.0 - mean) / std
        return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))

    def attrs(self):
        """The embeddings file's record of it: input_size, input_mean, input_std, channel_order."""
        return {
            "input_size": np.array(self.size, dtype=np.int64),
            "input_mean": np.array(self.mean, dtype=np.float64),
            "input_std": np.array(self.std, dtype=np.float64),
            "channel_order": "BGR" if self.bgr else "RGB",
        }


DEFAULT_PREPROCESSING = Preprocessing()


def decode_image(data, name):
    """Encoded image bytes -> float tensor [3, 112, 112] in [-1, 1]; `name` is used in errors."""
    return DEFAULT_PREPROCESSING.decode(data, name)


def decode_or_skip(data, name, skip_bad_images):
    """decode_image, or None (with a warning naming the image) when skipping bad images."""
    try:
        return decode_image(data, name)
    except MfftoolsError as error:
        if not skip_bad_images:
            raise
        logger.warning("skipping bad image: %s", error)
        return None


class EncodedImages(torch.utils.data.Dataset):
    """Images kept encoded (zip members, the bytes of a .bin, files on disk), decoded on demand.

    Subclasses give `__len__`, `encoded(k)` (the bytes of image k), `image_name(k)` (its name
    within the source, as files and lists record it) and `describe(k)` (where it is, for
    messages). Item k -> (image [3, 112, 112], k), or (None, k) for an undecodable image when
    `skip_bad_images`; extraction decodes `encoded(k)` with the model's own Preprocessing.
    """

    skip_bad_images = False

    def encoded(self, index):
        raise NotImplementedError

    def image_name(self, index):
        raise NotImplementedError

    def describe(self, index):
        return self.image_name(index)

    def decode(self, index, preprocessing):
        """Image `index` as the model's input, by a `Preprocessing`."""
        return preprocessing.decode(self.encoded(index), self.describe(index))

    def __getitem__(self, index):
        image = decode_or_skip(self.encoded(index), self.describe(index), self.skip_bad_images)
        return image, index


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
