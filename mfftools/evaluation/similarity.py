"""Identity similarity: how tight each identity is (intra) and how close to its neighbours (inter).

c_k = normalise(mean of the normalised embeddings of identity k); intra_k = mean over k's images
of clamp(f_i . c_k); inter_k = mean of the (up to) 50 largest clamp(c_k . c_l), l != k.
The neighbours come from an exact inner-product k-NN over the centroids: torch top-k over blocks
of the centroid products (or FAISS IndexFlatIP when asked); both are exact, so they give the same
neighbours up to float rounding of the products.
"""
import logging

import numpy as np
import torch

from mfftools.evaluation.stream import serial

logger = logging.getLogger(__name__)

NEIGHBOURS = 50
_BLOCK = 4096
_KNN_ROWS = 2048  # rows of a strip of centroid products: at most 2048 x n_identities scores
_GROUP = 8  # cells per group in `_top_values`


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

    By default (`use_faiss` None or False) the torch search over the upper triangle of the
    centroid products, one strip of rows at a time: a strip's scores give its rows' candidates
    and, transposed, those of the columns after it, so each product is computed once. On CPU it
    is about twice as fast as FAISS IndexFlatIP, which computes every product twice and keeps a
    heap per query. `use_faiss` True asks for FAISS. Both are exact: the same neighbours up to
    float rounding of the products.
    """
    if use_faiss:
        return _faiss_neighbours(centres, k)
    n = len(centres)
    best = torch.full((n, k), float("-inf"), dtype=centres.dtype, device=centres.device)
    for first in range(0, n, _KNN_ROWS):
        stop = min(first + _KNN_ROWS, n)
        scores = centres[first:stop] @ centres[first:].T
        with serial(centres.device):
            scores.fill_diagonal_(float("-inf"))  # each centroid itself
            best[first:stop] = _merge_top(best[first:stop], _top_values(scores, k), k)
            if stop < n:
                below = _top_values_of_columns(scores[:, stop - first :], k)
                best[stop:] = _merge_top(best[stop:], below, k)
    return best.cpu()


def _merge_top(best, top, k):
    """The k largest of each row of `best` and `top` together."""
    return torch.cat([best, top], dim=1).topk(k, dim=1).values


def _top_values(scores, k):
    """The min(k, columns) largest values of each row of `scores` (rows contiguous), unsorted.

    Same values as `scores.topk`, found with less work: columns are cut into k-or-more groups
    (group q holds columns q, q + m, q + 2m, ...), the k groups with the largest maxima are kept,
    and the top k is taken among their cells. That is exact: fewer than k groups have a maximum
    above the k-th largest value v, so all of them are kept, and the rest of the kept groups
    each hold a cell >= v, or hold every cell >= v between them.
    """
    n, n_cols = scores.shape
    size = n_cols // _GROUP
    if size < k:
        return scores.topk(min(k, n_cols), dim=1, sorted=False).values
    grouped = scores[:, : _GROUP * size].reshape(n, _GROUP, size)
    top_groups = grouped.amax(dim=1).topk(k, dim=1, sorted=False).indices
    members = grouped.gather(2, top_groups[:, None, :].expand(-1, _GROUP, -1))
    candidates = torch.cat([members.reshape(n, -1), scores[:, _GROUP * size :]], dim=1)
    return candidates.topk(k, dim=1, sorted=False).values  # `_merge_top` sorts


def _top_values_of_columns(scores, k):
    """`_top_values` of the columns of `scores` (one row per column), without transposing it all.

    The groups are strided rows here, so the group maxima are element-wise maxima of whole rows;
    only they and the kept groups' cells are transposed.
    """
    n_rows, n = scores.shape
    size = n_rows // _GROUP
    if size < k:
        return scores.T.topk(min(k, n_rows), dim=1, sorted=False).values
    grouped = scores[: _GROUP * size].reshape(_GROUP, size, n)
    top_groups = grouped.amax(dim=0).T.contiguous().topk(k, dim=1, sorted=False).indices
    members = grouped.gather(1, top_groups.T[None].expand(_GROUP, -1, -1))
    candidates = torch.cat([members.reshape(-1, n), scores[_GROUP * size :]]).T.contiguous()
    return candidates.topk(k, dim=1, sorted=False).values  # `_merge_top` sorts


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
