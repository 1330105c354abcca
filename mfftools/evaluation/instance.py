"""The instance protocol (the paper's `val-inst`), exact, in one streaming pass over the tiles.

Every image is compared with every other (ordered pairs, i != j); one global threshold at a
target FPR over all impostor pairs; then per-image TPR/FPR, their mean and spread over identities,
overall and per group, group FMR/FNMR with fairness measures, and identity similarity.

The recipe: rows sorted by identity (genuine pairs become diagonal blocks) and made canonical;
every genuine pair scored canonically; one pass over the upper triangle's screened tiles feeds
the impostor top set; the threshold search and every count come from those two alone, so several
targets and both methods cost one pass. statistics.py turns the counts into the results file.
"""
import logging
import math

import numpy as np
import torch

from mfftools.dist import DistInfo, resolve_device
from mfftools.errors import MfftoolsError
from mfftools.evaluation import sanity, statistics, threshold as search
from mfftools.evaluation.engine import distributed
from mfftools.evaluation.engine.blocks import Scorer
from mfftools.evaluation.engine.threads import for_work
from mfftools.evaluation.engine.counts import ThresholdCounter
from mfftools.evaluation.engine.scoring import normalise_rows_, pair_dots, resolve_precision
from mfftools.evaluation.engine.tiles import plan_triangle, split_tiles
from mfftools.evaluation.engine.topset import PairCollector, PairTopSet, to_dtype
from mfftools.evaluation.det import matched_det
from mfftools.evaluation.distributions import score_distributions
from mfftools.fingerprint import images_fingerprint
from mfftools.evaluation.identities import build_layout
from mfftools.evaluation.similarity import identity_similarity
from mfftools.evaluation.skipped import skipped_counts
from mfftools.evaluation.top_impostors import top_impostors

logger = logging.getLogger(__name__)

METHODS = ("bisection", "exact")
# FPR levels of each entry's ladder, as multiples of its target: 0.5x to 2x, four a factor of 2.
LADDER = tuple(2.0 ** (k / 4) for k in range(-4, 5))


def _check_request(embeddings, methods):
    if embeddings.layout != "images":
        raise MfftoolsError(
            f"{embeddings.path}: the instance protocol needs an 'images'-layout embeddings file, "
            f"this one has layout {embeddings.layout!r}"
        )
    if not methods:
        raise MfftoolsError("at least one threshold method is needed")
    for method in methods:
        if method not in METHODS:
            raise MfftoolsError(f"unknown threshold method {method!r}: use one of {METHODS}")


def check_targets(targets, n_impostor):
    """Refuse target FPRs outside (0, 1) or too small for `n_impostor` ordered impostor pairs."""
    search.check_targets(targets, n_impostor, negatives="ordered impostor pairs (each "
                         "unordered pair counted twice)", step=OrderedImpostors.STEP,
                         more="more images")


def load_rows(embeddings, order, device):
    """Canonical rows in the given order (sorted position -> row of the embeddings), on `device`.

    The rows are gathered where they are (a file's on the host, block by block; a tensor's on
    its own device) and normalised there in place, then moved: a file's rows are held once on
    the host and once more on the device (not again on the CPU).
    """
    return normalise_rows_(embeddings.ordered_rows(order)).to(device)


class _Pass:
    """One pass's genuine scores and top set, with the counts every threshold needs. Under a
    score map (a calibration) every score, genuine or impostor, is the mapped one."""

    def __init__(self, rows, layout, tiles, scorer, info, progress):
        self.rows, self.layout, self.tiles, self.scorer = rows, layout, tiles, scorer
        self.info, self.progress = info, progress
        self.genuine_i = torch.from_numpy(layout.genuine_i.astype(np.int64))
        self.genuine_j = torch.from_numpy(layout.genuine_j.astype(np.int64))
        self.group = torch.from_numpy(layout.group)
        with for_work(rows.device, 0):  # small batches of pairs
            self.genuine_dots = pair_dots(rows, rows, self.genuine_i.to(rows.device),
                                          self.genuine_j.to(rows.device)).cpu()
        self.genuine = self.genuine_dots.float().clamp_(-1.0, 1.0)  # canonical scores
        if scorer.score_map is not None and len(self.genuine):
            self.genuine = scorer.score_map(self.genuine, self.genuine_i, self.genuine_j)
        self._exact_counts = {}

    def run(self, keep):
        """The single pass: the impostor top set over this rank's tiles, merged over ranks."""
        topset = PairTopSet(keep, device=self.rows.device)
        collector = PairCollector(topset, self.scorer)
        for block in self.scorer.blocks(self.tiles, mask=self.layout.mask_genuine,
                                        progress=self.progress):
            collector.add(block)
        if self.info.distributed:
            topset = distributed.merge_topsets(topset)
        self.topset = topset.finalize()
        logger.info("one pass over %d tiles: %d genuine pairs, %d top impostor pairs above %.6g",
                    len(self.tiles), len(self.genuine), len(self.topset), self.topset.cut)

    def _count_exactly(self, threshold):
        """Impostor counts per row and other image's group at `threshold`, by a second pass."""
        t32 = to_dtype(threshold)
        if t32 not in self._exact_counts:
            logger.warning(
                "threshold %.9g lands on a tie at the top set's cut-off: counting it exactly "
                "with a second pass over the tiles", threshold
            )
            counter = ThresholdCounter([t32], self.group.to(self.rows.device),
                                       self.layout.n_groups, self.scorer)
            for block in self.scorer.blocks(self.tiles, mask=self.layout.mask_genuine,
                                            progress=self.progress):
                counter.add(block)
            counts = counter.counts
            if self.info.distributed:
                distributed.all_reduce_sum(counts)
            self._exact_counts[t32] = counts[0].cpu()
        return self._exact_counts[t32]

    def impostor_count_exact(self, threshold):
        return int(self._count_exactly(threshold).sum())

    def accepted(self, threshold):
        """Per sorted row: accepted genuine and impostor counts, and the group x group counts."""
        pairs = self.topset.rows_above(threshold)
        by_group = self._count_exactly(threshold) if pairs is None else None
        with for_work("cpu", self.layout.n_rows):
            return self._accepted_counts(threshold, pairs, by_group)

    def _accepted_counts(self, threshold, pairs, by_group):
        n_rows, size = self.layout.n_rows, self.layout.n_groups
        genuine = self.genuine > threshold
        tp = torch.bincount(self.genuine_i[genuine], minlength=n_rows) + torch.bincount(
            self.genuine_j[genuine], minlength=n_rows
        )
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

    def threshold(self, target, method):
        """(threshold, converged) at `target` by `method`."""
        impostors = OrderedImpostors(self.topset, self.layout.n_impostor_ordered)
        if method == "bisection":
            return search.bisection(target, impostors.n, impostors.count_above,
                                    self.impostor_count_exact)
        return search.exact_threshold(target, impostors.n, impostors.value_at_rank), True


class OrderedImpostors:
    """The top set of unordered impostor pairs, seen as the protocol's ordered pairs: each
    unordered pair {i, j} is the two ordered pairs (i, j) and (j, i), so counts double and the
    k-th largest ordered score is the (k // 2)-th largest unordered one. The only place where
    the factor of two lives."""

    STEP = 2  # ordered pairs are accepted two at a time

    def __init__(self, topset, n_ordered):
        self.topset, self.n = topset, n_ordered

    @staticmethod
    def keep(ordered):
        """Unordered pairs a top set keeps to hold `ordered` ordered pairs."""
        return math.ceil(ordered / 2)

    def count_above(self, threshold):
        """(ordered impostor pairs scoring > threshold, exact)."""
        count, exact = self.topset.count_above(threshold)
        return 2 * count, exact

    def value_at_rank(self, rank):
        """The (rank + 1)-th largest ordered impostor score, or None below the cut."""
        return self.topset.value_at(rank // 2)


def evaluate_instance(
    embeddings,
    targets=(1e-5,),
    methods=("bisection",),
    tile=8192,
    device="auto",
    precision="auto",
    progress=False,
    dist_info=None,
    reference_group=None,
    det=False,
    allow_degenerate=False,
    calibration=None,
):
    """The instance protocol on an images-layout `Embeddings`: the results-file dict.

    One entry in "results" per target and method (repeats are dropped). `precision` screens the
    tile products (auto, fp32, tf32, bf16, fp16): every precision gives the same results, only
    faster or slower. Under torchrun (`dist_info` with world_size > 1, process group joined) each
    rank scores its share of the tiles and every rank returns the same dict. `reference_group`:
    the group that relative FMR divides by (default: the one with the lowest matched FMR).
    `det`: add each group's DET curve and EER (`det.matched_det`: one more pass per group, over
    its own pairs).
    `calibration`: a fitted calibration (mfftools.calibration.store.Calibration) whose calibrated
    scores replace the canonical ones in every count, threshold and rate (tile by tile, exactly:
    see mfftools.calibration.score_map); score distributions, which describe the raw scores, are
    then left out. Degenerate embeddings are refused unless `allow_degenerate` (see `sanity`).
    `progress`: progress bars over the tiles (on the main process).
    """
    targets = tuple(dict.fromkeys(float(target) for target in targets))
    methods = tuple(dict.fromkeys(methods))
    _check_request(embeddings, methods)
    tiles = plan_triangle(embeddings.n_rows, tile)
    group_names = list(embeddings.group_names)
    if reference_group is not None and reference_group not in group_names:
        raise MfftoolsError(f"--reference-group {reference_group!r} is not one of the groups "
                            f"({', '.join(group_names)})")
    layout = build_layout(embeddings.identity, embeddings.group, len(group_names))
    n_impostor = layout.n_impostor_ordered
    check_targets(targets, n_impostor)
    info = dist_info or DistInfo()
    device = resolve_device(device, info.local_rank)
    screening = resolve_precision(precision, device)
    progress = progress and info.is_main

    if det and calibration is not None:
        raise MfftoolsError("--det is not available with --calibration: DET curves are of the "
                            "raw scores; run inst-eval --det without the calibration")
    rows = load_rows(embeddings, layout.order, device)
    degenerate = sanity.check_rows(rows, embeddings.identity[layout.order], str(embeddings.path),
                                   allow_degenerate)
    my_tiles = split_tiles(tiles, info.world_size, info.rank)
    score_map, keys = None, None
    if calibration is not None:
        from mfftools.calibration import protocols

        keys = protocols.row_keys(calibration, embeddings, rows, layout.order)
        score_map = protocols.score_map(calibration, keys, keys)
    scorer = Scorer(rows, rows, screening, my_tiles, score_map)
    try:
        one_pass = _Pass(rows, layout, my_tiles, scorer, info, progress)
        # The top set reaches the top of every entry's ladder.
        reach = targets + (max(targets) * LADDER[-1],)
        keep = OrderedImpostors.keep(search.keep_for_targets(reach, n_impostor))
        # More than all pairs: the set never prunes.
        one_pass.run(min(keep, OrderedImpostors.keep(n_impostor) + 1))
        counts = []
        for target in targets:
            for method in methods:
                threshold, converged = one_pass.threshold(target, method)
                tp, fp, matrix = one_pass.accepted(threshold)
                _warn_if_nothing_accepted(target, method, threshold, fp, one_pass, n_impostor)
                counts.append({"target_fpr": target, "method": method,
                               "threshold": float(threshold), "converged": bool(converged),
                               "tp": tp, "fp": fp, "matrix": matrix,
                               "ladder": _ladder(one_pass, target, n_impostor)})
        n_rescored = scorer.n_rescored
        if info.distributed:
            n_rescored = distributed.sum_over_ranks(n_rescored)
    finally:
        scorer.close()
    top_pairs = top_impostors(one_pass.topset, rows, layout, embeddings, group_names, screening,
                              tile, info, progress, _score_map_of(calibration, keys))
    sims = identity_similarity(rows, layout, tile)
    distributions = None
    if calibration is None:
        distributions = score_distributions(rows, layout, one_pass.genuine_dots.numpy(),
                                            group_names)
    engine = {"precision": screening.name, "screening_bound": scorer.bound,
              "n_rescored_pairs": n_rescored, "tile": tile, "device": device.type,
              "world_size": info.world_size}
    entries = []
    for count in counts:
        entries.append(statistics.entry(count, layout, group_names, sims, reference_group))
        entries[-1]["ladder"] = count["ladder"]
    result = statistics.results_file(
        layout, embeddings, group_names, entries,
        sims, statistics.roc(one_pass.topset, one_pass.genuine.numpy(), layout, group_names),
        engine,
    )
    if distributions is not None:
        result["score_distributions"] = distributions
    else:
        from mfftools.calibration import protocols

        result["calibration"] = protocols.describe(calibration, keys)
    result["images"] = images_fingerprint(embeddings)
    result["top_impostors"] = top_pairs
    if det:
        result["det"], result["eer"] = matched_det(rows, layout, one_pass.genuine.numpy(),
                                                   group_names, tile, info, progress)
    result.update(skipped_counts(embeddings), degenerate=degenerate)
    return result


def _score_map_of(calibration, keys):
    """The score map of any subset of sorted positions (None without a calibration)."""
    if calibration is None:
        return lambda members: None
    from mfftools.calibration import protocols

    return lambda members: protocols.score_map(calibration, keys[members], keys[members])


def _ladder(one_pass, target, n_impostor):
    """The entry's ladder: at FPR levels around `target` (LADDER) that the pairs resolve and the
    top set reaches (all of them, unless it was made too small to), the exact threshold and each
    identity's accepted genuine and impostor ordered pairs (probe image in the identity), so that
    a resample of identities can choose its own threshold."""
    impostors = OrderedImpostors(one_pass.topset, n_impostor)
    ladder = {"target_fpr": [], "threshold": [], "identity_tp": [], "identity_fp": []}
    for factor in LADDER:
        level = target * factor
        if not level < 1 or search.rank_at(level, n_impostor) < OrderedImpostors.STEP:
            continue
        value = impostors.value_at_rank(search.rank_at(level, n_impostor))
        if value is None:
            continue
        tp, fp, _ = one_pass.accepted(value)
        ladder["target_fpr"].append(level)
        ladder["threshold"].append(float(value))
        ladder["identity_tp"].append(statistics.identity_sums(tp, one_pass.layout))
        ladder["identity_fp"].append(statistics.identity_sums(fp, one_pass.layout))
    return ladder


def _warn_if_nothing_accepted(target, method, threshold, fp, one_pass, n_impostor):
    """A threshold that accepts no impostor pair reports FPR 0: say so, with the smallest target
    whose exact threshold accepts one (the top scores tie, so FPR steps past them at once)."""
    if fp.sum():
        return
    impostors = OrderedImpostors(one_pass.topset, n_impostor)
    top = impostors.value_at_rank(0)
    tied = impostors.count_above(float(np.nextafter(np.float32(top), np.float32(-2))))[0]
    smallest = tied / n_impostor
    resolvable = (f"the smallest target these scores resolve is {smallest:.3g}" if smallest < 1
                  else "no target below 1 resolves these scores")
    logger.warning(
        "target FPR %g (%s): the threshold %.6g accepts no impostor pair, so the reported FPR is "
        "0; %s (the %d highest-scoring ordered impostor pairs tie)",
        target, method, threshold, resolvable, tied,
    )
