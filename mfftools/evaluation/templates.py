"""Template features from image embeddings, insightface's IJB recipe with each choice named.

An image's feature is its stored embedding (f(x) + f(flipped x) when the file was extracted with
flip, insightface's F2), kept as it is (`norm="keep"`, insightface's N1: the feature's norm
weighs the image) or normalised (`norm="unit"`, N0); multiplied by the face detector's score
(`detector_score="weight"`, D1) or not (`ignore`, D0). The frames of one media are averaged and
a template's media features summed: each image weighs 1 / (images of its media in the template).
The template is that sum, normalised; its rows are canonical (float64 norm, float32 rows), so
scores between templates are canonical scores (PROTOCOLS 3.1).

The sums are streamed: the file is read a block of rows at a time and each block's images are
added to their templates' float64 sums, a template's images in file order, so the result does
not depend on anything but the file (and the block size, fixed here).
"""
import logging
from dataclasses import dataclass

import numpy as np
import torch

from mfftools.errors import MfftoolsError
from mfftools.evaluation.engine.scoring import normalise_rows_

logger = logging.getLogger(__name__)

NORMS = ("keep", "unit")
DETECTOR_SCORES = ("weight", "ignore")
BLOCK_ROWS = 16384


@dataclass(frozen=True)
class TemplateSettings:
    """How image features become template features (see the module docstring)."""

    norm: str = "keep"
    detector_score: str = "weight"

    def __post_init__(self):
        if self.norm not in NORMS:
            raise MfftoolsError(f"--norm must be one of {', '.join(NORMS)}, got {self.norm!r}")
        if self.detector_score not in DETECTOR_SCORES:
            raise MfftoolsError(f"--detector-score must be one of {', '.join(DETECTOR_SCORES)}, "
                                f"got {self.detector_score!r}")


@dataclass
class Templates:
    """Canonical template rows (float32 [T, D], a torch tensor) and their ids (int64 [T],
    ascending), with how many images and media each holds."""

    ids: np.ndarray
    rows: torch.Tensor
    n_images: np.ndarray
    n_media: np.ndarray

    def __len__(self):
        return len(self.ids)

    def rows_of(self, ids):
        """Positions of template ids, -1 where a template is unknown."""
        ids = np.asarray(ids, dtype=np.int64)
        position = np.minimum(np.searchsorted(self.ids, ids), len(self.ids) - 1)
        return np.where(self.ids[position] == ids, position, -1)


def image_weights(embeddings, settings):
    """Each image's weight in its template: its detector score (D1) over the images of its
    media in that template."""
    if embeddings.template is None or embeddings.media is None:
        raise MfftoolsError(
            f"{embeddings.path}: no 'template' and 'media' datasets; template-eval reads the "
            "embeddings of an IJB folder (mfftools extract IJBC/ --ijb)")
    _, inverse, counts = np.unique(np.stack([embeddings.template, embeddings.media], axis=1),
                                   axis=0, return_inverse=True, return_counts=True)
    weights = 1.0 / counts[inverse.reshape(-1)]
    if settings.detector_score == "weight":
        if embeddings.detector_score is None:
            raise MfftoolsError(f"{embeddings.path}: no 'detector_score' dataset to weigh images "
                                "by; give --detector-score ignore")
        weights = weights * embeddings.detector_score.astype(np.float64)
    return weights


def build_templates(embeddings, settings=TemplateSettings(), block_rows=BLOCK_ROWS):
    """The Templates of an images-layout file with `template` and `media` (see the module)."""
    weights = image_weights(embeddings, settings)
    ids, image_template = np.unique(embeddings.template, return_inverse=True)
    image_template = image_template.reshape(-1)
    sums = np.zeros((len(ids), embeddings.dim), dtype=np.float64)
    for first, block in embeddings.iter_blocks(block_rows=block_rows):
        rows = torch.from_numpy(block)
        if settings.norm == "unit":
            normalise_rows_(rows)
        stop = first + len(block)
        weighted = rows.numpy().astype(np.float64) * weights[first:stop, None]
        order = np.argsort(image_template[first:stop], kind="stable")
        members = image_template[first:stop][order]
        starts = np.flatnonzero(np.r_[True, members[1:] != members[:-1]])
        sums[members[starts]] += np.add.reduceat(weighted[order], starts, axis=0)
    n_images = np.bincount(image_template, minlength=len(ids))
    pairs = np.unique(np.stack([image_template, embeddings.media], axis=1), axis=0)
    n_media = np.bincount(pairs[:, 0], minlength=len(ids))
    zero = ~sums.any(axis=1)
    if zero.any():
        raise MfftoolsError(
            f"{embeddings.path}: template {int(ids[np.flatnonzero(zero)[0]])} sums to zero "
            f"({int(zero.sum())} such templates): its images' detector scores are all 0; give "
            "--detector-score ignore")
    rows = normalise_rows_(torch.from_numpy(sums.astype(np.float32)))
    logger.info("%d templates from %d images (%s norm, detector score %s)", len(ids),
                embeddings.n_rows, settings.norm, settings.detector_score)
    return Templates(ids=ids, rows=rows, n_images=n_images, n_media=n_media)
