"""Thresholds at a target false-positive rate, and the curves around them: one definition for
every protocol (instance, identification, templates, calibration).

Negatives are the comparisons that should be rejected (impostor pairs, non-mated searches),
positives those that should be accepted (genuine pairs, mated searches). A comparison is accepted
when its float32 score is > t (strictly). For a target rate r over n negatives:
  * K = floor(r x n), in exact arithmetic on r's float value (`rank_at`);
  * the exact threshold is the (K+1)-th largest negative score, the smallest t with rate <= r
    (`exact_threshold`); a target with K below `step` cannot be resolved and is refused
    (`check_targets`: the negatives come in groups of `step`, e.g. ordered pairs in twos);
  * the paper's bisection (`bisection`) reproduces the original's float32 search step for step.
Curves (ROC, DET) are rates at a list of thresholds (`rates_above`): spread over the ranks of the
negative scores (`thresholds_at_ranks`) where every negative is known, or placed at fixed rate
levels (`thresholds_at_levels`); `eer` reads the equal error rate off such a curve.

The bisection counts through an oracle `count_above(t) -> (negatives scoring > t, exact)`. When
`exact` is false the count is only a lower bound (a top set cannot see below its cut). A lower
bound L decides a step when its float32 error L/n - target is already >= tol: the rate and the
error are non-decreasing in the count (rounding is monotone), so the true count would also fail
the convergence test and also send lo up. The top set keeps enough pairs that every lower bound
it gives is that large (`keep_for_targets`); if one is not, `exact_count(t)` is asked instead.
"""
from fractions import Fraction
import math

import numpy as np
import torch

from mfftools.errors import MfftoolsError

MAX_ITERATIONS = 70
# Relative and absolute slack on the kept count, far above float32 rounding of the rates.
_KEEP_SLACK = 1e-5
# Points of a curve spread over the ranks of the negative scores.
CURVE_POINTS = 64
# The FMR levels of DET curves: ten a decade, 1e-6 to 0.5.
DET_LEVELS = tuple(float(level) for level in np.logspace(-6, -0.3, 58))


def rank_at(target, n_negatives):
    """K = floor(target x n_negatives), in exact arithmetic on the target's float value."""
    return math.floor(Fraction(target) * n_negatives)


def check_targets(targets, n_negatives, rate="FPR", negatives="impostor pairs", step=1,
                  more="more data"):
    """Refuse targets outside (0, 1), and targets too small for `n_negatives`.

    The negatives come in groups of `step` that are always accepted together (ordered pairs: each
    unordered pair twice), so the smallest non-zero rate is step / n; a target below it would set
    a threshold that accepts nothing. `rate`, `negatives` and `more` (what would help) word the
    message.
    """
    if not targets:
        raise MfftoolsError(f"at least one target {rate} is needed")
    for target in targets:
        if not 0.0 < target < 1.0:
            raise MfftoolsError(f"target {rate} {target!r} is outside (0, 1)")
        if rank_at(target, n_negatives) < step:
            raise MfftoolsError(
                f"target {rate} {target:g} cannot be resolved: with {n_negatives} {negatives} "
                f"the smallest non-zero {rate} is {step}/{n_negatives} = "
                f"{step / n_negatives:.3g}; use a target of at least that, or {more}"
            )


def keep_for_targets(targets, n_negatives):
    """Negatives a top set must hold: above (target + tol) x negatives, with slack."""
    worst = max(targets)
    reach = (worst + worst / 10.0) * n_negatives
    return math.floor(reach * (1 + _KEEP_SLACK)) + 2


def exact_threshold(target, n_negatives, value_at_rank):
    """The smallest t with rate(t) <= target: the (K+1)-th largest negative score.

    With acceptance s > t, rate(v) <= target for v the (K+1)-th largest score (at most K scores
    are above it) and rate(t) > target for every t below it (K + 1 scores are above).
    `value_at_rank(k)`: the (k+1)-th largest negative score, or None when it is not known.
    """
    value = value_at_rank(rank_at(target, n_negatives))
    if value is None:
        raise RuntimeError("fewer negative scores are known than the exact threshold needs")
    return value


def threshold_of_scores(descending, target):
    """The exact threshold at `target` of negative scores sorted in descending order."""
    return float(exact_threshold(target, len(descending), lambda rank: descending[rank]))


def _rate32(count, n_negatives):
    """The original's rate: int64 count / int64 total, a float32 tensor."""
    return torch.tensor(count, dtype=torch.int64) / torch.tensor(n_negatives, dtype=torch.int64)


def bisection(target, n_negatives, count_above, exact_count):
    """The paper's threshold search. Returns (threshold, converged).

    lo = -1, hi = 1, tol = target / 10; up to 70 times: t = (lo + hi) / 2; stop (converged) when
    0 < FPR(t) - target < tol, else lo = t when FPR(t) > target, else hi = t. The last t is
    returned even when the search did not converge.
    """
    lo, hi = -1.0, 1.0
    tol = target / 10.0
    threshold, converged = 0.0, False
    for _ in range(MAX_ITERATIONS):
        threshold = (lo + hi) / 2.0
        count, exact = count_above(threshold)
        fpr = _rate32(count, n_negatives)
        error = fpr - target
        if not exact and bool(error < tol):
            # The lower bound does not decide this step: count exactly.
            count = exact_count(threshold)
            fpr = _rate32(count, n_negatives)
            error = fpr - target
        if bool(error < tol) and bool(error > 0):
            converged = True
            break
        if bool(fpr > target):
            lo = threshold
        else:
            hi = threshold
    return threshold, converged


# ---------------------------------------------------------------------------------------------
# Curves: rates at a list of thresholds.
# ---------------------------------------------------------------------------------------------

def thresholds_at_ranks(descending, points=CURVE_POINTS):
    """Up to `points` thresholds log-spaced over the ranks of negative scores sorted descending
    (the low-rate end of a curve, where the scores are known one by one)."""
    if not len(descending):
        return np.empty(0, dtype=np.float32)
    ranks = np.unique(np.geomspace(1, len(descending), points).astype(np.int64)) - 1
    return np.asarray(descending)[ranks]


def thresholds_at_levels(descending, levels):
    """The exact threshold (`threshold_of_scores`) at each rate level that the negatives resolve
    (K >= 1), with those levels: (levels, thresholds in the scores' dtype)."""
    descending = np.asarray(descending)
    levels = np.asarray(levels, dtype=np.float64)
    usable = np.array([rank_at(level, len(descending)) >= 1 for level in levels], dtype=bool)
    levels = levels[usable]
    thresholds = descending[[rank_at(level, len(descending)) for level in levels]]
    return levels, thresholds


def count_above(values, thresholds):
    """How many of `values` are > each threshold, compared in the values' dtype (float32 for
    canonical scores)."""
    ordered = np.sort(np.asarray(values))
    thresholds = np.asarray(thresholds, dtype=ordered.dtype)
    return (len(ordered) - np.searchsorted(ordered, thresholds, side="right")).astype(np.int64)


def rates_above(values, thresholds, total=None):
    """The fraction of `total` (default: all of `values`) scoring > each threshold, as a JSON
    list; every entry None when there is nothing to count."""
    total = len(values) if total is None else total
    if not total:
        return [None] * len(thresholds)
    return [float(count / total) for count in count_above(values, thresholds)]


def det_curve(positives, negatives, levels=DET_LEVELS):
    """FNMR against FMR at the exact threshold of each FMR level the negatives resolve, for
    scores accepted when > t: {"threshold", "fmr", "fnmr"} lists, thresholds descending; the
    FMR listed is the rate the threshold gives (at most the level)."""
    descending = np.sort(np.asarray(negatives))[::-1]
    _, thresholds = thresholds_at_levels(descending, levels)
    thresholds = np.unique(thresholds)[::-1]  # tied scores give one point
    accepted = rates_above(np.asarray(positives, dtype=descending.dtype), thresholds)
    return {
        "threshold": [float(t) for t in thresholds],
        "fmr": rates_above(descending, thresholds),
        "fnmr": [None if rate is None else 1.0 - rate for rate in accepted],
    }


def eer(false_match, false_non_match):
    """The equal error rate of a curve given as rates at thresholds in descending order (false
    match rising, false non-match falling): where they cross, the mean of the two, linear between
    the bracketing thresholds. None when the curve does not cross (or has no point)."""
    fmr = np.asarray([np.nan if v is None else v for v in false_match], dtype=np.float64)
    fnmr = np.asarray([np.nan if v is None else v for v in false_non_match], dtype=np.float64)
    gap = fnmr - fmr
    defined = ~np.isnan(gap)
    fmr, fnmr, gap = fmr[defined], fnmr[defined], gap[defined]
    crossed = np.flatnonzero(gap <= 0)
    if not len(crossed):
        return None
    at = int(crossed[0])
    if at == 0:
        return float((fmr[0] + fnmr[0]) / 2) if gap[0] == 0 else None
    before, after = gap[at - 1], gap[at]
    weight = before / (before - after)  # where the straight line between the two crosses 0
    fmr_at = fmr[at - 1] + weight * (fmr[at] - fmr[at - 1])
    fnmr_at = fnmr[at - 1] + weight * (fnmr[at] - fnmr[at - 1])
    return float((fmr_at + fnmr_at) / 2)
