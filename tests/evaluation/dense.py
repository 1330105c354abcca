"""Dense references for the evaluation engine: full matrices, obviously correct, small N only.

Canonical scores are computed as the specification defines them: rows normalised in float64
(square root of the float64 sum of squares) and rounded to float32; a score is the float32
rounding of the float64 sum of the exact products, clamped to [-1, 1]. Float64 sums are taken as
the same pairwise tree the engine uses (halves added element-wise), so the bits agree.
"""
from fractions import Fraction
import math

import numpy as np
import torch


def tree_sum(values):
    """Sum over the last axis: pad with zeros to a power of two, then add halves."""
    width = values.shape[-1]
    padded = 1 << max(width - 1, 0).bit_length()
    values = np.concatenate(
        [values, np.zeros(values.shape[:-1] + (padded - width,), values.dtype)], axis=-1)
    while values.shape[-1] > 1:
        half = values.shape[-1] // 2
        values = values[..., :half] + values[..., half:]
    return values[..., 0]


def canonical_rows(embeddings):
    wide = np.asarray(embeddings, dtype=np.float32).astype(np.float64)
    norms = np.sqrt(tree_sum(wide * wide))
    return (wide / norms[:, None]).astype(np.float32)


def canonical_matrix(left, right):
    """Canonical scores of every row of `left` against every row of `right` (canonical rows)."""
    left, right = left.astype(np.float64), right.astype(np.float64)
    out = np.empty((len(left), len(right)), dtype=np.float32)
    for first in range(0, len(left), 64):
        products = left[first : first + 64, None, :] * right[None, :, :]
        out[first : first + 64] = np.clip(tree_sum(products).astype(np.float32), -1, 1)
    return out


def canonical_means(rows, members):
    """Canonical mean direction of rows[members] (float64 sum in order, normalised, float32;
    a zero sum stays zero)."""
    total = np.zeros(rows.shape[1])
    for row in rows[members].astype(np.float64):
        total = total + row
    norm = math.sqrt(tree_sum(total * total))
    return (total / (norm or 1.0)).astype(np.float32)  # rows that cancel out: zero


def paper_bisection(fpr32, selected_fpr, min_thr=-1, max_thr=1, max_iters=70):
    """The paper's ThresholdOptimizer.Start, with its float32 rate fpr32(t)."""
    tol = selected_fpr / 10.0
    converge = False
    for _ in range(max_iters):
        current_thr = (min_thr + max_thr) / 2.0
        current_fpr = fpr32(current_thr)
        error = current_fpr - selected_fpr
        if error < tol and error > 0:
            converge = True
            break
        if current_fpr > selected_fpr:
            min_thr = current_thr
        else:
            max_thr = current_thr
    return current_thr, converge


def exact_threshold(impostor_scores, n_impostor, target):
    """Smallest impostor score t with count(s > t) / n <= target, trying every distinct score.

    count / n <= target holds for an integer count exactly when count <= floor(target * n).
    """
    allowed = math.floor(Fraction(target) * n_impostor)
    ordered = np.sort(impostor_scores)
    candidates = np.unique(ordered)
    above = len(ordered) - np.searchsorted(ordered, candidates, side="right")
    return float(candidates[above <= allowed].min())


def dense_instance(embeddings, identity, group, targets, methods, n_groups):
    """Reference results: {(target, method): dict}, plus "similarity": per-identity intra/inter."""
    feats = canonical_rows(embeddings)
    scores = canonical_matrix(feats, feats)
    same = identity[:, None] == identity[None, :]
    genuine = same & ~np.eye(len(identity), dtype=bool)
    impostor = ~same
    n_impostor = int(impostor.sum())
    n_genuine = int(genuine.sum())

    def fpr32(thr):
        # The paper's float32 rate: int64 tensor / int64 tensor, float32 scores against a float.
        fp = int(((torch.from_numpy(scores) > thr).numpy() & impostor).sum())
        return torch.tensor(fp) / torch.tensor(n_impostor)

    out = {}
    for target in targets:
        for method in methods:
            if method == "bisection":
                thr, converged = paper_bisection(fpr32, target)
            else:
                thr, converged = exact_threshold(scores[impostor], n_impostor, target), True
            accepted = (torch.from_numpy(scores) > thr).numpy()
            out[(target, method)] = _stats_at(
                accepted, thr, converged, genuine, impostor, identity, group, n_groups,
                n_genuine, n_impostor,
            )
    out["similarity"] = dense_similarity(feats, identity)
    out["scores"] = scores
    return out


def _stats_at(accepted, thr, converged, genuine, impostor, identity, group, n_groups, n_gen, n_imp):
    tp = (accepted & genuine).sum(1)
    fp = (accepted & impostor).sum(1)
    gen_row = genuine.sum(1)
    imp_row = impostor.sum(1)
    labels = np.unique(identity)
    tpr_id, fpr_id, id_group = [], [], []
    for label in labels:
        rows = np.flatnonzero(identity == label)
        id_group.append(group[rows[0]])
        fpr_id.append(np.mean(fp[rows] / imp_row[rows]))
        tpr_id.append(np.mean(tp[rows] / gen_row[rows]) if len(rows) > 1 else np.nan)
    tpr_id, fpr_id, id_group = np.array(tpr_id), np.array(fpr_id), np.array(id_group)
    fmr, fmr_probe, fnmr = [], [], []
    matrix = np.full((n_groups, n_groups), np.nan)
    for a in range(n_groups):
        probe = group == a
        imp_a = int(impostor[probe].sum())
        gen_a = int(genuine[probe].sum())
        fmr_probe.append(int((accepted & impostor)[probe].sum()) / imp_a if imp_a else None)
        fnmr.append(1 - int((accepted & genuine)[probe].sum()) / gen_a if gen_a else None)
        for b in range(n_groups):
            pair = probe[:, None] & (group == b)[None, :] & impostor
            if int(pair.sum()):
                matrix[a, b] = int((pair & accepted).sum()) / int(pair.sum())
        # Demographically matched: both images in the group.
        both = probe[:, None] & probe[None, :] & impostor
        fmr.append(int((both & accepted).sum()) / int(both.sum()) if both.any() else None)
    return {
        "threshold": thr,
        "converged": converged,
        "tpr": int((accepted & genuine).sum()) / n_gen if n_gen else None,
        "fpr": int((accepted & impostor).sum()) / n_imp,
        "tp": tp,
        "fp": fp,
        "tpr_id": tpr_id,
        "fpr_id": fpr_id,
        "id_group": id_group,
        "fmr": fmr,
        "fmr_probe_group": fmr_probe,
        "fnmr": fnmr,
        "matrix": matrix,
    }


def dense_similarity(feats, identity, neighbours=50):
    """Per identity: intra (mean canonical score with its centroid) and inter (mean of the 50
    largest canonical centroid scores), from full matrices."""
    labels = np.unique(identity)
    centres = np.stack([canonical_means(feats, identity == label) for label in labels])
    intra = np.array([
        np.mean(canonical_matrix(feats[identity == label], centres[k : k + 1]).astype(np.float64))
        for k, label in enumerate(labels)
    ])
    sims = canonical_matrix(centres, centres)
    inter = []
    for k in range(len(labels)):
        others = np.concatenate([sims[k, :k], sims[k, k + 1 :]])
        inter.append(np.sort(others)[::-1][:neighbours].astype(np.float64).mean())
    return {"intra": intra, "inter": np.array(inter)}
