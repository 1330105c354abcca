"""Score distributions per group (ISO/IEC 19795-10's comparison-score differentials).

Per group d of the probe image: mean, standard deviation (ddof 0) and count of the genuine scores
(ordered genuine pairs with the probe in d) and of the impostor scores (ordered impostor pairs
with the probe in d); the impostor mean and std for each pair of groups (a, b); and each group's
shift (mean_d - mean_all) / std_all.

No pass over the tiles: over i in a and j in b, sum f_i . f_j = (sum_a f) . (sum_b f) and
sum (f_i . f_j)^2 = <A^T A, B^T B> (Frobenius), A and B the groups' rows; the same-identity pairs
(the genuine pairs, whose dot products are computed anyway, and the self pairs) are subtracted.
Everything is float64 from the canonical rows; the scores here are the float64 dot products that
canonical scores round. Sums of Gram matrices follow the BLAS's summation order, so the last
bits of these statistics (not of any count or threshold) can differ between machines.
"""
import math

import numpy as np
import torch

from mfftools.evaluation.engine.scoring import pair_dots

_BLOCK = 8192


def _stats(total, squares, count):
    if not count:
        return {"mean": None, "std": None, "n": 0}
    mean = total / count
    return {"mean": mean, "std": math.sqrt(max(squares / count - mean * mean, 0.0)),
            "n": int(count)}


def _group_sums(rows, group, n_groups):
    """Per group: the float64 sum of its rows [G, D] and Gram matrix A^T A [G, D, D]."""
    dim = rows.shape[1]
    sums = torch.zeros(n_groups, dim, dtype=torch.float64, device=rows.device)
    grams = torch.zeros(n_groups, dim, dim, dtype=torch.float64, device=rows.device)
    group = torch.from_numpy(group).to(rows.device)
    for g in range(n_groups):
        members = torch.nonzero(group == g).squeeze(1)
        for first in range(0, len(members), _BLOCK):
            block = rows[members[first : first + _BLOCK]].double()
            sums[g] += block.sum(dim=0)
            grams[g] += block.T @ block
    return sums, grams


def _by_pair(values, group_i, group_j, n_groups):
    """[a, b] sums of `values` over pairs with i in a and j in b, both orders of each pair."""
    flat = np.zeros(n_groups * n_groups)
    np.add.at(flat, group_i * n_groups + group_j, values)
    np.add.at(flat, group_j * n_groups + group_i, values)
    return flat.reshape(n_groups, n_groups)


def score_distributions(rows, layout, genuine_dots, group_names):
    """The results file's `score_distributions` dict.

    rows: canonical rows in sorted order; genuine_dots: float64 dot products of the genuine pairs
    (layout.genuine_i/j), as numpy.
    """
    n_groups = len(group_names)
    sums, grams = _group_sums(rows, layout.group, n_groups)
    cross = (sums @ sums.T).cpu().numpy()
    gram_cross = torch.einsum("aij,bij->ab", grams, grams).cpu().numpy()
    group_i, group_j = layout.group[layout.genuine_i], layout.group[layout.genuine_j]
    genuine_sum = _by_pair(genuine_dots, group_i, group_j, n_groups)
    genuine_squares = _by_pair(genuine_dots**2, group_i, group_j, n_groups)
    every = torch.arange(len(rows), device=rows.device)
    self_dots = pair_dots(rows, rows, every, every).cpu().numpy()  # |f_i|^2: near 1, not exactly
    self_sum = np.bincount(layout.group, weights=self_dots, minlength=n_groups)
    self_squares = np.bincount(layout.group, weights=self_dots**2, minlength=n_groups)
    impostor_sum = cross - genuine_sum - np.diag(self_sum)
    impostor_squares = gram_cross - genuine_squares - np.diag(self_squares)
    impostor_n = layout.impostor_per_group_pair
    genuine_n = np.rint(layout.genuine_per_group).astype(np.int64)

    genuine = {"all": _stats(genuine_sum.sum(), genuine_squares.sum(), genuine_n.sum())}
    impostor = {"all": _stats(impostor_sum.sum(), impostor_squares.sum(), impostor_n.sum())}
    for g, name in enumerate(group_names):
        genuine[name] = _stats(genuine_sum[g].sum(), genuine_squares[g].sum(), genuine_n[g])
        impostor[name] = _stats(impostor_sum[g].sum(), impostor_squares[g].sum(),
                                impostor_n[g].sum())
    matrix = [[_stats(impostor_sum[a, b], impostor_squares[a, b], impostor_n[a, b])
               for b in range(n_groups)] for a in range(n_groups)]
    return {
        "genuine": genuine,
        "impostor": impostor,
        "impostor_matrix": {
            "mean": [[cell["mean"] for cell in line] for line in matrix],
            "std": [[cell["std"] for cell in line] for line in matrix],
        },
        "shift": {kind: _shifts(stats, group_names)
                  for kind, stats in (("genuine", genuine), ("impostor", impostor))},
    }


def _shifts(stats, group_names):
    """Per group: (mean_d - mean_all) / std_all, None where undefined."""
    overall = stats["all"]
    out = {}
    for name in group_names:
        mean = stats[name]["mean"]
        usable = mean is not None and overall["std"]
        out[name] = (mean - overall["mean"]) / overall["std"] if usable else None
    return out
