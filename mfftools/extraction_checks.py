"""What an extraction accepts but says out loud: crops resized to the model's input size, a model
that does not declare its input size, and --amp/--fp16 where it does nothing."""
import io
import logging

from PIL import Image

logger = logging.getLogger(__name__)


def warn_about_size(source, preprocessing, given_size, declared_size, model):
    """Warn when the source's crops (told from its first image) are resized to the model's
    input, or when a model file does not declare its input size and none was given."""
    height, width = preprocessing.size
    if declared_size is None and given_size is None:
        logger.warning(
            "%s does not declare its input size: images are fed at %dx%d; give --input-size if "
            "it expects another", model, height, width)
    crop = _first_image_size(source)
    if crop is not None and crop != (width, height):
        logger.warning(
            "the images are %dx%d and %s takes %dx%d: every crop is resized (bicubic) to the "
            "model's size; the model's accuracy assumes crops aligned at that size",
            crop[0], crop[1], model, width, height)


def _first_image_size(source):
    """(width, height) of the source's first image, or None when it cannot be read (the
    extraction then reports it)."""
    try:
        with Image.open(io.BytesIO(source.images.encoded(0))) as image:
            return image.size
    except Exception:  # any unreadable first image is reported where it is decoded
        return None


def warn_about_amp(amp, embedder, model_format):
    """--amp/--fp16 runs float16 autocast for PyTorch models on CUDA only: say so elsewhere."""
    if not amp or embedder.amp:
        return
    if model_format == "onnx":
        logger.warning("--amp/--fp16 does nothing for an ONNX model: it runs as exported")
    else:
        logger.warning("--amp/--fp16 applies to PyTorch models on CUDA only; extracting in "
                       "float32 on %s", embedder.device)
