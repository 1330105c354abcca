"""Image decoding and batching shared by every reader (PROTOCOLS 1.4).

Faces are aligned 112x112 RGB: decode with Pillow, convert to RGB, resize (bicubic) only when the
size differs, scale to [0, 1] and normalise with mean 0.5 and std 0.5 per channel. A model that
wants other input (another size, mean and std, BGR channel order) gets it through a
`Preprocessing`; the default one is exactly the above. 16-bit grayscale images (PNG) are scaled
from their 0-65535 range, not clipped at 255. EXIF orientation tags are not applied (as in
insightface and MixFairFace): pixels are used as stored.
"""

import io
import logging
import re
from dataclasses import dataclass, replace

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from mfftools.errors import MfftoolsError

logger = logging.getLogger(__name__)

IMAGE_SIZE = 112
# Files taken as images in folders and zips (case-insensitive).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
# insightface's normalisation, (x - 127.5) / 127.5: the input of every model that does not say
# otherwise.
DEFAULT_MEAN = (0.5, 0.5, 0.5)
DEFAULT_STD = (0.5, 0.5, 0.5)
# Pillow's modes of 16-bit grayscale images (a 16-bit PNG opens as I;16, or as I in older
# Pillows): their values run to 65535, which `convert("RGB")` would clip at 255.
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_SIXTEEN_BIT_MAX = 65535.0


@dataclass(frozen=True)
class Preprocessing:
    """Encoded image -> a model's input: RGB (or BGR) pixels resized (bicubic) to `size`
    (height, width) when they differ, scaled to [0, 1], then (x - mean) / std per channel, the
    channels in the model's order. The default is insightface's (x - 127.5) / 127.5 at 112x112.
    `size`, `mean` and `std` None stand for the model's own (`for_model`). `given_scale` records
    how the user wrote mean and std: `0-1` or `0-255` (see `given`); they are held on [0, 1].
    """

    size: tuple = (IMAGE_SIZE, IMAGE_SIZE)
    mean: tuple = DEFAULT_MEAN
    std: tuple = DEFAULT_STD
    bgr: bool = False
    given_scale: str = "0-1"

    def __post_init__(self):
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 1):
            raise MfftoolsError(f"input size must be a height and a width, got {self.size}")
        for name, values in (("mean", self.mean), ("std", self.std)):
            if values is not None and len(values) != 3:
                raise MfftoolsError(f"input {name} needs 1 or 3 values, got {len(values)}")
        if self.std is not None and min(self.std) <= 0:
            raise MfftoolsError(f"input std must be positive, got {', '.join(map(str, self.std))}")

    @classmethod
    def given(cls, size=None, mean=None, std=None, bgr=False):
        """The preprocessing a user asked for (None: the model's own). Mean and std are on [0, 1]
        pixels, as mfftools records them; written on the 0-255 scale (insightface writes its
        normalisation as 127.5, 127.5), which any value above 1 shows, both are divided by 255
        and the scale is recorded."""
        values = (mean or ()) + (std or ())
        if any(value > 1 for value in values):
            def scaled(given):
                return None if given is None else tuple(value / 255.0 for value in given)

            logger.info("--input-mean/--input-std read on the 0-255 pixel scale: mean %s, "
                        "std %s on [0, 1] pixels", scaled(mean), scaled(std))
            return cls(size=size, mean=scaled(mean), std=scaled(std), bgr=bgr,
                       given_scale="0-255")
        return cls(size=size, mean=mean, std=std, bgr=bgr)

    def for_model(self, model_size, model, model_mean=None, model_std=None):
        """This preprocessing for the model: its input size (`model_size` (H, W), or None when
        the model does not fix it: then `size`, else 112x112; an error if they disagree), and
        its mean and std where none were given (`model_mean`/`model_std`, the normalisation the
        model was trained with, else insightface's)."""
        mean = self.mean or model_mean or DEFAULT_MEAN
        std = self.std or model_std or DEFAULT_STD
        if self.size is None:
            return replace(self, size=tuple(model_size or (IMAGE_SIZE, IMAGE_SIZE)), mean=mean,
                           std=std)
        if model_size is not None and tuple(model_size) != tuple(self.size):
            raise MfftoolsError(
                f"--input-size {self.size[0]}x{self.size[1]}, but {model} takes "
                f"{model_size[0]}x{model_size[1]} images"
            )
        return replace(self, mean=mean, std=std)

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
                if landmarks is not None:
                    from mfftools.data.alignment import align_face

                    pixels = align_face(_native_rgb(image), landmarks, height).astype(np.float32)
                else:
                    pixels = _rgb_pixels(image, (width, height))
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
            raise MfftoolsError(f"cannot decode image {name} ({plain_reason(error)})") from None
        if self.bgr:
            pixels = pixels[..., ::-1]
        mean, std = np.float32(self.mean), np.float32(self.std)
        pixels = (pixels / 255.0 - mean) / std
        return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))

    def attrs(self):
        """The embeddings file's record of it: input_size, input_mean, input_std (on [0, 1]
        pixels), channel_order, input_given_scale (how the user wrote mean and std)."""
        return {
            "input_size": np.array(self.size, dtype=np.int64),
            "input_mean": np.array(self.mean, dtype=np.float64),
            "input_std": np.array(self.std, dtype=np.float64),
            "channel_order": "BGR" if self.bgr else "RGB",
            "input_given_scale": self.given_scale,
        }


def _rgb_pixels(image, size):
    """An opened image -> float32 RGB pixels [H, W, 3] on 0-255, resized (bicubic) to `size`
    (width, height) when it differs."""
    if image.mode in _SIXTEEN_BIT_MODES:
        gray = Image.fromarray(_sixteen_bit_gray(image))
        if gray.size != size:
            gray = gray.resize(size, Image.Resampling.BICUBIC)
        return np.repeat(np.asarray(gray, dtype=np.float32)[..., None], 3, axis=2)
    image = image.convert("RGB")
    if image.size != size:
        image = image.resize(size, Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.float32)


def _native_rgb(image):
    """An opened image -> RGB pixels [H, W, 3] at its own size: uint8, or float32 on 0-255 for a
    16-bit grayscale image."""
    if image.mode in _SIXTEEN_BIT_MODES:
        return np.repeat(_sixteen_bit_gray(image)[..., None], 3, axis=2)
    return np.asarray(image.convert("RGB"))


def _sixteen_bit_gray(image):
    """A 16-bit grayscale image's values scaled from 0-65535 to float32 0-255."""
    values = np.asarray(image, dtype=np.float32).clip(0, _SIXTEEN_BIT_MAX)
    return values * np.float32(255.0 / _SIXTEEN_BIT_MAX)


DEFAULT_PREPROCESSING = Preprocessing()
# Pillow names the in-memory buffer it read from (`<_io.BytesIO object at 0x...>`): no use to a
# reader of the message, which names the image itself.
_BUFFER = re.compile(r"\s*<_io\.BytesIO object at 0x[0-9a-fA-F]+>")


def plain_reason(error):
    """Why Pillow could not decode an image, in words a user can act on."""
    if isinstance(error, UnidentifiedImageError):
        return "not an image file Pillow can read: damaged, empty, or another kind of file"
    text = _BUFFER.sub("", str(error)).strip() or type(error).__name__
    return text.splitlines()[0]


def decode_image(data, name):
    """Encoded image bytes -> float tensor [3, 112, 112] in [-1, 1]; `name` is used in errors."""
    return DEFAULT_PREPROCESSING.decode(data, name)


class EncodedImages:
    """Images kept encoded (zip members, the bytes of a .bin, files on disk), decoded on demand.

    Subclasses give `__len__`, `encoded(k)` (the bytes of image k), `image_name(k)` (its name
    within the source, as files and lists record it) and `describe(k)` (where it is, for
    messages); extraction decodes `encoded(k)` with the model's own Preprocessing (`decode`).
    """

    def encoded(self, index):
        raise NotImplementedError

    def image_name(self, index):
        raise NotImplementedError

    def describe(self, index):
        return self.image_name(index)

    def decode(self, index, preprocessing):
        """Image `index` as the model's input, by a `Preprocessing`."""
        return preprocessing.decode(self.encoded(index), self.describe(index))


def encode_image(pixels, fmt="JPEG", quality=95):
    """uint8 array [H, W, 3] -> encoded bytes (JPEG by default, quality 95)."""
    buffer = io.BytesIO()
    options = {"quality": quality} if fmt == "JPEG" else {}
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).save(
        buffer, format=fmt, **options
    )
    return buffer.getvalue()
