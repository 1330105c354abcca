"""Identity similarity: how tight each identity is (intra) and how close to its neighbours (inter).

c_k = the canonical mean direction of identity k's canonical rows (float64 mean, normalised in
float64, rounded to float32); intra_k = mean over k's images of the canonical score f_i . c_k;
inter_k = mean of the (up to) 50 largest canonical scores c_k . c_l, l != k. The neighbours come
from an exact search over the centroid products (torch over the upper triangle of the centroid
matrix), screened and then rescored.
Means are taken in float64 on the host, so the values do not depend on the device.
"""
import numpy as np
import torch

from mfftools.evaluation.engine.blocks import Scorer
from mfftools.evaluation.engine.scoring import PRECISIONS, canonical_dots, canonical_means
from mfftools.evaluation.engine.tiles import plan_triangle
from mfftools.evaluation.engine.topk import RowTopK

NEIGHBOURS = 50
_BLOCK = 8192  # rows scored against their centroid at a time
# The centroid products are a small part of the work: their tiles stay small (16 M scores).
_CENTROID_TILE = 4096


def centroids(rows, layout):
    """Canonical identity centroids: float32 [n_identities, D] on the rows' device."""
    return canonical_means(rows, layout.starts, layout.sizes)


def intra_similarity(rows, layout, centres):
    """Per identity: mean over its images of the canonical score f_i . c_k (float64)."""
    identity = torch.from_numpy(layout.identity).to(rows.device)
    scores = torch.empty(len(rows), dtype=torch.float32)
    for first in range(0, len(rows), _BLOCK):
        block = slice(first, first + _BLOCK)
        scores[block] = canonical_dots(rows[block], centres[identity[block]]).cpu()
    totals = np.bincount(layout.identity, weights=scores.numpy(), minlength=layout.n_identities)
    return totals / layout.sizes


def nearest_centroids(centres, k, tile):
    """Canonical scores of the k nearest other centroids of each centroid, descending: [n, k].

    Screened in fp32 whatever the pass's precision: every one of the k best is rescored anyway,
    and fp32's narrow band (E ~ 6e-5 at D = 512) adds few candidates to them, where bf16's
    (~0.012) would add several times k; the centroid products are a small part of the work.
    """
    precision = PRECISIONS["fp32"]
    tiles = plan_triangle(len(centres), min(tile, _CENTROID_TILE))
    scorer = Scorer(centres, centres, precision, tiles)
    try:
        neighbours = RowTopK(len(centres), k, scorer, mirror=True)
        for block in scorer.blocks(tiles):
            neighbours.add(block)
        values, _ = neighbours.finalize()
    finally:
        scorer.close()
    return values


def inter_similarity(centres, tile):
    """Per identity: mean of the min(50, n - 1) largest canonical c_k . c_l, l != k (float64)."""
    k = min(NEIGHBOURS, len(centres) - 1)
    values = nearest_centroids(centres, k, tile)
    return values.double().numpy().mean(axis=1)


def identity_similarity(rows, layout, tile):
    """{"intra": per-identity intra, "inter": per-identity inter}, float64 numpy arrays."""
    centres = centroids(rows, layout)
    return {
        "intra": intra_similarity(rows, layout, centres),
        "inter": inter_similarity(centres, tile),
    }
