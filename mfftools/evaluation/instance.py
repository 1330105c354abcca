"""The instance protocol (the paper's `val-inst`), exact, in one streaming pass over the tiles.

Every image is compared with every other (ordered pairs, i != j); one global threshold at a
target FPR over all impostor pairs; then per-image TPR/FPR, their mean and spread over identities,
overall and per group, group FMR/FNMR with fairness measures, and identity similarity.

The pass (stream.py) keeps all genuine scores and the top impostor scores (topset.py); the
threshold search (threshold.py), every count and every statistic come from those two alone, so
several targets and both methods cost one pass. Scores and threshold comparisons are float32 as in
the original; rates and statistics are computed in float64 from integer counts.
"""
import contextlib
import logging
import math
import sys

import numpy as np
import torch

from mfftools.dist import DistInfo, resolve_device
from mfftools.errors import MfftoolsError
from mfftools.evaluation import distributed, fairness, similarity, threshold as search
from mfftools.evaluation.identities import build_layout
from mfftools.evaluation.stream import count_pass, score_pass, serial
from mfftools.evaluation.tiles import plan_tiles, split_tiles
from mfftools.evaluation.topset import ImpostorTopSet, float32

logger = logging.getLogger(__name__)

METHODS = ("bisection", "exact")
ROC_POINTS = 64


@contextlib.contextmanager
def exact_matmul():
    """fp32 products without TF32 (CUDA), restored afterwards."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _check_request(embeddings, targets, methods):
    if embeddings.layout != "images":
        raise MfftoolsError(
            f"{embeddings.path}: the instance protocol needs an 'images'-layout embeddings file, "
            f"this one has layout {embeddings.layout!r}"
        )
    for method in methods:
        if method not in METHODS:
            raise MfftoolsError(f"unknown threshold method {method!r}: use one of {METHODS}")
    if not methods:
        raise MfftoolsError("at least one threshold method is needed")


def _load_rows(embeddings, layout, device):
    """L2-normalised float32 rows (float16 files are widened), in identity-sorted order."""
    rows = torch.from_numpy(embeddings.read()).to(device)
    order = torch.from_numpy(layout.order).to(device)
    with serial(device):  # memory-bound: see stream.serial
        return torch.nn.functional.normalize(rows, dim=1)[order]


class _Engine:
    """One pass's genuine scores and top set, with the counts every threshold needs."""

    def __init__(self, rows, layout, tiles, topset, genuine, n_groups, info, progress):
        self.rows, self.layout, self.tiles = rows, layout, tiles
        self.topset, self.n_groups, self.info, self.progress = topset, n_groups, info, progress
        self.genuine = genuine
        self.genuine_i = torch.from_numpy(layout.genuine_i.astype(np.int64))
        self.genuine_j = torch.from_numpy(layout.genuine_j.astype(np.int64))
        self.group = torch.from_numpy(layout.group)
        self._exact_counts = {}

    def _count_exactly(self, threshold):
        """Impostor counts per row and other image's group at `threshold`, by a second pass."""
        t32 = float32(threshold)
        if t32 not in self._exact_counts:
            logger.warning(
                "threshold %.9g lands on a tie at the top set's cut-off: counting it exactly "
                "with a second pass over the tiles", threshold
            )
            counts = count_pass(
                self.rows, self.layout, self.tiles, [t32], self.n_groups, progress=self.progress
            )
            if self.info.distributed:
                distributed.all_reduce_sum(counts)
            self._exact_counts[t32] = counts[0].cpu()
        return self._exact_counts[t32]

    def impostor_count(self, threshold):
        """(ordered impostor pairs scoring > threshold, exact) for the bisection."""
        count, exact = self.topset.count_above(threshold)
        return 2 * count, exact

    def impostor_count_exact(self, threshold):
        return int(self._count_exactly(threshold).sum())

    def accepted(self, threshold):
        """Per sorted row: accepted genuine and impostor counts, and the group x group FMR counts."""
        pairs = self.topset.rows_above(threshold)
        by_group = self._count_exactly(threshold) if pairs is None else None
        with serial(torch.device("cpu")):  # small counts: see stream.serial
            return self._accepted_counts(threshold, pairs, by_group)

    def _accepted_counts(self, threshold, pairs, by_group):
        """`accepted` from the top set's accepted pairs, or from exact counts when it has none."""
        n_rows = self.layout.n_rows
        genuine = self.genuine > threshold
        tp = torch.bincount(self.genuine_i[genuine], minlength=n_rows) + torch.bincount(
            self.genuine_j[genuine], minlength=n_rows
        )
        size = self.n_groups
        if pairs is None:
            fp = by_group.sum(dim=1)
            matrix = torch.zeros(size, size, dtype=torch.int64)
            matrix.index_add_(0, self.group, by_group)
        else:
            rows_i, rows_j = pairs[0].long(), pairs[1].long()
            fp = torch.bincount(rows_i, minlength=n_rows) + torch.bincount(rows_j, minlength=n_rows)
            group_i, group_j = self.group[rows_i], self.group[rows_j]
            matrix = torch.bincount(group_i * size + group_j, minlength=size * size)
            matrix = matrix + torch.bincount(group_j * size + group_i, minlength=size * size)
            matrix = matrix.view(size, size)
        return tp.numpy(), fp.numpy(), matrix.numpy()


def evaluate_instance(
    embeddings,
    targets=(1e-5,),
    methods=("bisection",),
    tile=8192,
    device="auto",
    progress=True,
    dist_info=None,
    use_faiss=None,
):
    """The instance protocol on an images-layout `Embeddings`: the results-file dict.

    One entry in "results" per target and method. Under torchrun (`dist_info` with world_size > 1,
    process group joined) each rank scores its share of the tiles and every rank returns the same
    dict. `use_faiss`: True asks for FAISS for the centroid k-NN (default: torch, faster).
    """
    targets = tuple(float(target) for target in targets)
    methods = tuple(methods)
    _check_request(embeddings, targets, methods)
    tiles = plan_tiles(embeddings.n_rows, tile)
    layout = build_layout(embeddings.identity, embeddings.group)
    n_impostor = layout.n_impostor_ordered
    search.check_targets(targets, n_impostor)
    info = dist_info or DistInfo()
    device = resolve_device(device, info.local_rank)
    progress = progress and info.is_main and sys.stderr.isatty()
    n_groups = len(embeddings.group_names)

    with exact_matmul():
        rows = _load_rows(embeddings, layout, device)
        keep = math.ceil(search.keep_for_targets(targets, n_impostor) / 2)
        keep = min(keep, n_impostor // 2 + 1)  # more than all pairs: the set never prunes
        topset = ImpostorTopSet(keep, device=device)
        my_tiles = split_tiles(tiles, info.world_size, info.rank)
        genuine = score_pass(rows, layout, my_tiles, topset, progress=progress)
        if info.distributed:
            distributed.all_reduce_sum(genuine)
            topset = distributed.merge_topsets(topset)
        topset.finalize()
        logger.info(
            "one pass over %d tiles: %d genuine pairs, %d top impostor pairs above %.6g",
            len(my_tiles), len(genuine), len(topset), topset.cut,
        )
        engine = _Engine(
            rows, layout, my_tiles, topset, genuine.cpu(), n_groups, info, progress
        )
        results = []
        for target in targets:
            for method in methods:
                results.append(_evaluate_target(engine, layout, target, method, n_groups))
        sims = _similarity(rows, layout, use_faiss)

    group_names = list(embeddings.group_names)
    return {
        "protocol": "instance",
        "n_images": layout.n_rows,
        "n_identities": layout.n_identities,
        "dim": embeddings.dim,
        "group_names": group_names,
        "results": [_entry(result, layout, group_names, sims) for result in results],
        "similarity": _similarity_by_group(sims, layout, group_names),
        "n_genuine_pairs": layout.n_genuine_ordered,
        "n_impostor_pairs": n_impostor,
        "n_single_image_identities": int(np.count_nonzero(layout.sizes == 1)),
        "n_mixed_group_identities": layout.n_mixed_group_identities,
        "identities": {
            "identity": [int(label) for label in layout.labels],
            "group": [int(g) for g in layout.identity_group],
            "n_images": [int(size) for size in layout.sizes],
        },
        "roc": _roc(engine, layout, group_names),
    }


def _evaluate_target(engine, layout, target, method, n_groups):
    n_impostor = layout.n_impostor_ordered
    if method == "bisection":
        threshold, converged = search.bisection(
            target, n_impostor, engine.impostor_count, engine.impostor_count_exact
        )
    else:
        threshold = search.exact_threshold(
            target, n_impostor, lambda rank: engine.topset.value_at(rank // 2)
        )
        converged = True
    tp, fp, matrix = engine.accepted(threshold)
    return {
        "target_fpr": target,
        "method": method,
        "threshold": float(threshold),
        "converged": bool(converged),
        "tp": tp,
        "fp": fp,
        "matrix": matrix,
    }


def _mean_std(values):
    if not len(values):
        return None, None
    return float(np.mean(values)), float(np.std(values))


def _identity_rates(result, layout):
    """Per identity: mean TPR (NaN without genuine pairs) and mean FPR over its images."""
    row_sizes = layout.row_sizes
    genuine_per_row = row_sizes - 1
    impostor_per_row = layout.n_rows - row_sizes
    has_genuine = genuine_per_row > 0
    tpr_row = np.where(has_genuine, result["tp"] / np.maximum(genuine_per_row, 1), 0.0)
    fpr_row = result["fp"] / impostor_per_row
    n_ids = layout.n_identities
    tpr = np.bincount(layout.identity, weights=tpr_row, minlength=n_ids) / layout.sizes
    fpr = np.bincount(layout.identity, weights=fpr_row, minlength=n_ids) / layout.sizes
    tpr[layout.sizes < 2] = np.nan
    return tpr, fpr


def _group_rates(result, layout, n_groups):
    """Per group of the probe image: FMR over impostor pairs, FNMR over genuine pairs."""
    row_sizes = layout.row_sizes
    genuine = np.bincount(layout.group, weights=row_sizes - 1, minlength=n_groups)
    impostor = np.bincount(layout.group, weights=layout.n_rows - row_sizes, minlength=n_groups)
    accepted_genuine = np.bincount(layout.group, weights=result["tp"], minlength=n_groups)
    accepted_impostor = np.bincount(layout.group, weights=result["fp"], minlength=n_groups)
    fmr = [a / n if n else None for a, n in zip(accepted_impostor, impostor)]
    fnmr = [1.0 - a / n if n else None for a, n in zip(accepted_genuine, genuine)]
    return fmr, fnmr


def _impostor_pairs_by_group(layout, n_groups):
    """Ordered impostor pairs by (group of i, group of j): n_a n_b - sum_k n_ka n_kb."""
    per_group = np.bincount(layout.group, minlength=n_groups).astype(np.int64)
    contingency = np.zeros((layout.n_identities, n_groups), dtype=np.int64)
    np.add.at(contingency, (layout.identity, layout.group), 1)
    return np.outer(per_group, per_group) - contingency.T @ contingency


def _floats(values):
    """A JSON list of numbers; NaN (undefined) becomes None."""
    return [None if np.isnan(value) else float(value) for value in values]


def _entry(result, layout, group_names, sims):
    n_groups = len(group_names)
    tp, fp = result["tp"], result["fp"]
    tpr_id, fpr_id = _identity_rates(result, layout)
    with_genuine = ~np.isnan(tpr_id)
    fmr, fnmr = _group_rates(result, layout, n_groups)
    groups = {}
    for g, name in enumerate(group_names):
        members = layout.identity_group == g
        tpr_mean, tpr_std = _mean_std(tpr_id[members & with_genuine])
        fpr_mean, fpr_std = _mean_std(fpr_id[members])
        groups[name] = {
            "tpr_mean": tpr_mean, "tpr_std": tpr_std, "fpr_mean": fpr_mean, "fpr_std": fpr_std,
            "fmr": fmr[g], "fnmr": fnmr[g],
        }
    present = [g for g in range(n_groups) if fmr[g] is not None and fnmr[g] is not None]
    tpr_mean, tpr_std = _mean_std(tpr_id[with_genuine])
    fpr_mean, fpr_std = _mean_std(fpr_id)
    impostor_by_group = _impostor_pairs_by_group(layout, n_groups)
    matrix = [
        [float(result["matrix"][a, b] / impostor_by_group[a, b]) if impostor_by_group[a, b] else None
         for b in range(n_groups)]
        for a in range(n_groups)
    ]
    return {
        "target_fpr": result["target_fpr"],
        "method": result["method"],
        "threshold": result["threshold"],
        "tpr": float(tp.sum() / layout.n_genuine_ordered) if layout.n_genuine_ordered else None,
        "fpr": float(fp.sum() / layout.n_impostor_ordered),
        "converged": result["converged"],
        "instance": {
            "tpr_mean": tpr_mean, "tpr_std": tpr_std, "fpr_mean": fpr_mean, "fpr_std": fpr_std,
        },
        "groups": groups,
        "fairness": fairness.group_fairness([fmr[g] for g in present], [fnmr[g] for g in present]),
        "n_accepted_genuine": int(tp.sum()),
        "n_accepted_impostor": int(fp.sum()),
        "group_fmr_matrix": matrix,
        "per_identity": {
            "group": [int(g) for g in layout.identity_group],
            "tpr": _floats(tpr_id),
            "fpr": _floats(fpr_id),
            "intra": _floats(sims["intra"]),
            "inter": _floats(sims["inter"]),
        },
    }


def _similarity(rows, layout, use_faiss):
    identity = torch.from_numpy(layout.identity).to(rows.device)
    with serial(rows.device):  # memory-bound: see stream.serial
        centres = similarity.centroids(rows, identity, layout.n_identities)
        intra = similarity.intra_similarity(rows, identity, centres)
    inter = similarity.inter_similarity(centres, use_faiss=use_faiss)
    return {"intra": intra, "inter": inter}


def _similarity_by_group(sims, layout, group_names):
    out = {}
    for g, name in enumerate(group_names):
        members = layout.identity_group == g
        intra_mean, intra_std = _mean_std(sims["intra"][members])
        inter_mean, inter_std = _mean_std(sims["inter"][members])
        out[name] = {
            "intra_mean": intra_mean, "intra_std": intra_std,
            "inter_mean": inter_mean, "inter_std": inter_std,
        }
    return out


def _roc(engine, layout, group_names):
    """Per group ROC points (probe's group) in the low-FPR region that the top set covers."""
    values = engine.topset.values.numpy()
    if not len(values):
        return {}
    ranks = np.unique(np.geomspace(1, len(values), ROC_POINTS).astype(np.int64)) - 1
    thresholds = values[ranks]
    group = layout.group
    impostor_groups = (group[engine.topset.rows_i.numpy()], group[engine.topset.rows_j.numpy()])
    genuine = engine.genuine.numpy()
    genuine_groups = (group[layout.genuine_i], group[layout.genuine_j])
    row_sizes = layout.row_sizes
    n_groups = len(group_names)
    genuine_per_group = np.bincount(group, weights=row_sizes - 1, minlength=n_groups)
    impostor_per_group = np.bincount(group, weights=layout.n_rows - row_sizes, minlength=n_groups)
    out = {}
    for g, name in enumerate(group_names):
        if not impostor_per_group[g] or not genuine_per_group[g]:
            continue
        impostor = np.concatenate([values[side == g] for side in impostor_groups])
        accepted = np.concatenate([genuine[side == g] for side in genuine_groups])
        out[name] = {
            "threshold": _floats(thresholds.astype(np.float64)),
            "fpr": _floats(_count_above(impostor, thresholds) / impostor_per_group[g]),
            "tpr": _floats(_count_above(accepted, thresholds) / genuine_per_group[g]),
        }
    return out


def _count_above(values, thresholds):
    """How many of `values` are > each threshold (both float32)."""
    ordered = np.sort(values)
    return (len(ordered) - np.searchsorted(ordered, thresholds, side="right")).astype(np.float64)
