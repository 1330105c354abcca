"""Threshold search at a target FPR: the paper's bisection, step for step, and the exact threshold.

A pair is accepted when its float32 score is > t. The original compares a float32 score matrix
with a Python float t and computes FPR = fp / (fp + tn) from int64 counts, so both the comparison
and the rate are float32 arithmetic; the bisection here does the same torch operations on the
counts, so it takes the same steps and stops at the same t.

The counts come from an oracle `count_above(t) -> (ordered impostor pairs scoring > t, exact)`.
When `exact` is false the count is only a lower bound (the top set cannot see below its cut).
A lower bound L decides a step when its float32 error L/n - target is already >= tol: the rate
and the error are non-decreasing in the count (rounding is monotone), so the true count would
also fail the convergence test and also send lo up. The top set keeps enough pairs that every
lower bound it gives is that large (see `keep_for_targets`); if one is not, `exact_count(t)` is
asked instead.
"""
from fractions import Fraction
import math

import torch

from mfftools.errors import MfftoolsError

MAX_ITERATIONS = 70
# Relative and absolute slack on the kept count, far above float32 rounding of the rates.
_KEEP_SLACK = 1e-5


def _fpr32(count, n_pairs):
    """The original's rate: int64 count / int64 total, a float32 tensor."""
    return torch.tensor(count, dtype=torch.int64) / torch.tensor(n_pairs, dtype=torch.int64)


def impostor_rank(target, n_impostor):
    """K = floor(target x ordered impostor pairs), in exact arithmetic on the target's float value."""
    return math.floor(Fraction(target) * n_impostor)


def check_targets(targets, n_impostor):
    """Refuse targets outside (0, 1), or too small for this many impostor pairs: below 2/I
    (I ordered impostor pairs) the threshold would accept no impostor pair at all, since ordered
    pairs come in twos."""
    if not targets:
        raise MfftoolsError("at least one target FPR is needed")
    for target in targets:
        if not 0.0 < target < 1.0:
            raise MfftoolsError(f"target FPR {target!r} is outside (0, 1)")
        if impostor_rank(target, n_impostor) < 2:
            raise MfftoolsError(
                f"target FPR {target:g} cannot be resolved: with {n_impostor} ordered impostor "
                f"pairs (each unordered pair counted twice) the smallest non-zero FPR is "
                f"2/{n_impostor} = {2 / n_impostor:.3g}; use a target of at least that, or more "
                "images"
            )


def keep_for_targets(targets, n_impostor):
    """Ordered impostor pairs the top set must hold: above (target + tol) x impostors, with slack."""
    worst = max(targets)
    reach = (worst + worst / 10.0) * n_impostor
    return math.floor(reach * (1 + _KEEP_SLACK)) + 2


def bisection(target, n_impostor, count_above, exact_count):
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
        fpr = _fpr32(count, n_impostor)
        error = fpr - target
        if not exact and bool(error < tol):
            # The lower bound does not decide this step: count exactly.
            count = exact_count(threshold)
            fpr = _fpr32(count, n_impostor)
            error = fpr - target
        if bool(error < tol) and bool(error > 0):
            converged = True
            break
        if bool(fpr > target):
            lo = threshold
        else:
            hi = threshold
    return threshold, converged


def exact_threshold(target, n_impostor, value_at_ordered_rank):
    """The smallest t with FPR(t) <= target: the (K+1)-th largest ordered impostor score.

    With acceptance s > t, FPR(v) <= target for v the (K+1)-th largest score (at most K scores
    are above it) and FPR(t) > target for every t below it (K + 1 scores are above).
    """
    value = value_at_ordered_rank(impostor_rank(target, n_impostor))
    if value is None:
        raise RuntimeError("the top set holds fewer pairs than the exact threshold needs")
    return value
