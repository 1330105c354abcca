"""Identity similarity: how tight each identity is (intra) and how close to its neighbours (inter).

c_k = normalise(mean of the normalised embeddings of identity k); intra_k = mean over k's images
of clamp(f_i . c_k); inter_k = mean of the (up to) 50 largest clamp(c_k . c_l), l != k.
The neighbours come from an exact inner-product k-NN over the centroids: FAISS IndexFlatIP on CPU
when FAISS is installed, else (and on CUDA) torch top-k over blocks of the centroid products;
both are exact, so they give the same neighbours up to float rounding of the products.
"""
import logging

import numpy as np
import torch

logger = logging.getLogger(__name__)

NEIGHBOURS = 50
_BLOCK = 4096


def centroids(rows, identity, n_identities):
    """Normalised identity centroids (float32) from normalised rows (float32 sums)."""
    sums = torch.zeros(n_identities, rows.shape[1], dtype=torch.float32, device=rows.device)
    sums.index_add_(0, identity, rows)
    return torch.nn.functional.normalize(sums, dim=1)


def intra_similarity(rows, identity, centres):
    """Per identity: mean over its images of clamp(f_i . c_k, -1, 1) (float64)."""
    n_identities = len(centres)
    totals = torch.zeros(n_identities, dtype=torch.float64, device=rows.device)
    counts = torch.bincount(identity, minlength=n_identities).double()
    for first in range(0, len(rows), _BLOCK):
        block = slice(first, first + _BLOCK)
        dots = (rows[block] * centres[identity[block]]).sum(dim=1).clamp(-1.0, 1.0)
        totals.index_add_(0, identity[block], dots.double())
    return (totals / counts).cpu().numpy()


def _faiss():
    # faiss logs each CPU-variant library it tries at INFO level; only its outcome matters.
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def nearest_centroids(centres, k, use_faiss=None):
    """Scores of the k nearest other centroids of each centroid, descending: float32 [n, k].

    `use_faiss` None: FAISS IndexFlatIP for CPU centroids when FAISS is installed, else the torch
    search: exact top-k over blocks of the upper triangle of the centroid products (each block
    serves its rows and, transposed, its columns). Both are exact: the same neighbours up to float
    rounding.
    """
    if use_faiss is None:
        use_faiss = centres.device.type == "cpu" and _faiss() is not None
    if use_faiss:
        return _faiss_neighbours(centres, k)
    n = len(centres)
    best = torch.full((n, k), float("-inf"), device=centres.device)
    for first in range(0, n, _BLOCK):
        rows = slice(first, min(first + _BLOCK, n))
        for col_first in range(first, n, _BLOCK):
            cols = slice(col_first, min(col_first + _BLOCK, n))
            scores = centres[rows] @ centres[cols].T
            if col_first == first:
                scores.fill_diagonal_(float("-inf"))
            best[rows] = _merge_top(best[rows], scores, k)
            if col_first != first:
                best[cols] = _merge_top(best[cols], scores.T, k)
    return best.cpu()


def _merge_top(best, scores, k):
    top = scores.topk(min(k, scores.shape[1]), dim=1).values
    return torch.cat([best, top], dim=1).topk(k, dim=1).values


def _faiss_neighbours(centres, k):
    faiss = _faiss()
    if faiss is None:
        raise RuntimeError("FAISS is not installed")
    n = len(centres)
    index = faiss.IndexFlatIP(centres.shape[1])
    data = np.ascontiguousarray(centres.cpu().numpy())
    index.add(data)
    scores, labels = index.search(data, k + 1)
    # Drop each centroid itself; when exact duplicates push it out of the list, drop the last.
    is_self = labels == np.arange(n)[:, None]
    drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), k)
    keep = np.ones_like(is_self)
    keep[np.arange(n), drop] = False
    return torch.from_numpy(scores[keep].reshape(n, k))


def inter_similarity(centres, use_faiss=None):
    """Per identity: mean of the min(50, n - 1) largest clamp(c_k . c_l), l != k (float64)."""
    k = min(NEIGHBOURS, len(centres) - 1)
    scores = nearest_centroids(centres, k, use_faiss=use_faiss).clamp(-1.0, 1.0)
    return scores.double().mean(dim=1).numpy()
