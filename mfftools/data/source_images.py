"""The images behind an embeddings file's rows, read again from the source they were extracted
from (the file's `source` attribute and `path` dataset), as small JPEG thumbnails: the faces
behind a report's numbers.

The source is reopened as extraction read it, with the options the file records (`image_root`,
`columns`, `group_by`, `groups`, `attributes`, and `aligned` when the faces were said to be
aligned already), so RFW zips, folder trees, manifests, pair lists and RFW or IJB as shipped all
work; a row's image is found by its path among the source's image names. Each thumbnail is the
image as the model saw it (aligned by the source's own landmarks where it has them, resized to
the model's input size), scaled down to THUMBNAIL pixels.
"""
import logging
from pathlib import Path

import numpy as np
from PIL import Image

from mfftools.data.images import IMAGE_SIZE, Preprocessing, encode_image
from mfftools.errors import MfftoolsError

logger = logging.getLogger(__name__)

THUMBNAIL = 96  # pixels, the longer side
QUALITY = 85  # JPEG quality


class SourceImages:
    """The images of the rows of an images-layout `Embeddings` (an opened file), from its source
    opened again. Every failure is an MfftoolsError saying why."""

    def __init__(self, embeddings):
        self.embeddings = embeddings
        attrs = embeddings.attrs
        if embeddings.image_paths is None:
            raise MfftoolsError(f"{embeddings.path}: the file records no image paths (dataset "
                                "'path'), so its images cannot be found")
        if source_of(embeddings) is None:
            raise MfftoolsError(f"{embeddings.path}: the file records no source (attribute "
                                "'source'), so its images cannot be found")
        self.source_path = Path(source_of(embeddings))
        size = attrs.get("input_size")
        size = (IMAGE_SIZE, IMAGE_SIZE) if size is None else tuple(int(v) for v in size)
        # pixels on [0, 1], RGB: the model's input before its normalisation
        self._preprocessing = Preprocessing(size=size, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
        self._source = self._open()
        self._index = {self._source.images.image_name(k): k for k in range(len(self._source))}

    def thumbnail(self, row):
        """The row's image as a JPEG (bytes) of at most THUMBNAIL x THUMBNAIL pixels."""
        name = str(self.embeddings.image_paths[row])
        index = self._index.get(name)
        if index is None:
            raise MfftoolsError(f"{self.source_path} holds no image {name!r}: the source changed "
                                "after the extraction")
        pixels = self._source.images.decode(index, self._preprocessing).permute(1, 2, 0).numpy()
        image = Image.fromarray(np.clip(np.rint(pixels * 255.0), 0, 255).astype(np.uint8))
        image.thumbnail((THUMBNAIL, THUMBNAIL), Image.Resampling.LANCZOS)
        return encode_image(np.asarray(image), "JPEG", quality=QUALITY)

    def _open(self):
        from mfftools.sources import open_source

        if not self.source_path.exists():
            raise MfftoolsError(f"{self.source_path}: the source of {self.embeddings.path} is "
                                "not there (moved or deleted)")
        return open_source(self.source_path, self._options())

    def _options(self):
        """The source options the extraction recorded (see SourceOptions.attrs)."""
        from mfftools.sources import SourceOptions

        attrs = self.embeddings.attrs

        def text(name):
            return _text(attrs.get(name)) or None

        def listed(name):
            return tuple(text(name).split(",")) if text(name) else None

        columns = dict(item.split("=", 1) for item in text("columns").split(",")) \
            if text("columns") else None
        aligned_already = bool(attrs.get("aligned", False)) and "alignment_template" not in attrs
        return SourceOptions(
            image_root=text("image_root") and Path(text("image_root")),
            group_by=listed("group_by"), columns=columns, groups=listed("groups"),
            attributes=text("attributes") and Path(text("attributes")),
            aligned=aligned_already, allow_missing_landmarks=True)


def source_of(embeddings):
    """The source an embeddings file records (its `source` attribute), or None."""
    return _text(embeddings.attrs.get("source")) or None


def _text(value):
    """A string attribute as text ("" when absent)."""
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)
