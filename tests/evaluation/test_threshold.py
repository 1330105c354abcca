"""Threshold searches: the paper's bisection step for step, the exact threshold, target checks."""
import math
import re

import numpy as np
import pytest
import torch

from dense import exact_threshold as dense_exact, paper_bisection
from mfftools.errors import MfftoolsError
from mfftools.evaluation import threshold as search


def test_bisection_takes_the_papers_steps(rng):
    scores = torch.from_numpy(rng.standard_normal(5000).astype(np.float32) / 3)
    n = len(scores)

    def count_above(t):
        return int((scores > t).sum()), True

    for target in (1e-1, 1e-2, 3e-3):
        ours = search.bisection(target, n, count_above, None)
        paper = paper_bisection(lambda t: torch.tensor(count_above(t)[0]) / torch.tensor(n), target)
        assert ours == paper


def test_a_lower_bound_that_decides_is_enough_and_one_that_does_not_is_counted(rng):
    scores = torch.from_numpy(rng.standard_normal(2000).astype(np.float32))
    n, exact_calls = len(scores), []

    def exact(t):
        exact_calls.append(t)
        return int((scores > t).sum())

    def lower_bound(t):  # pretend nothing below 1.5 is visible
        return int((scores > max(t, 1.5)).sum()), t >= 1.5

    assert search.bisection(0.05, n, lower_bound, exact) == search.bisection(
        0.05, n, lambda t: (exact(t), True), exact)
    assert exact_calls


def test_exact_threshold_is_the_k_plus_first_largest(rng):
    scores = rng.integers(-20, 20, size=300).astype(np.float32) / 8  # many ties
    ordered = np.sort(scores)[::-1]
    for target in (0.01, 0.1, 0.33):
        value = search.exact_threshold(target, len(scores), lambda rank: float(ordered[rank]))
        assert value == dense_exact(scores, len(scores), target)
        assert (scores > value).sum() <= math.floor(target * len(scores))


def test_keep_covers_target_plus_tolerance():
    keep = search.keep_for_targets((1e-5, 1e-4), 10**9)
    assert keep >= 1.1e-4 * 10**9


@pytest.mark.parametrize("target, message", [
    (0.0, "outside (0, 1)"), (1.0, "outside (0, 1)"),
    (1.5 / 1000, "the smallest non-zero FPR is 2/1000 = 0.002"),
])
def test_bad_targets(target, message):
    with pytest.raises(MfftoolsError, match=re.escape(message)):
        search.check_targets((target,), 1000, step=2)
    search.check_targets((2 / 1000,), 1000, step=2)


def test_a_target_needs_one_negative_above_it_by_default():
    search.check_targets((1 / 50,), 50, rate="FPIR", negatives="non-mated searches")
    with pytest.raises(MfftoolsError, match=re.escape(
            "target FPIR 0.019 cannot be resolved: with 50 non-mated searches the smallest "
            "non-zero FPIR is 1/50 = 0.02")):
        search.check_targets((0.019,), 50, rate="FPIR", negatives="non-mated searches")


def test_eer_interpolates_between_the_bracketing_thresholds():
    # FMR rises and FNMR falls as the threshold goes down; they cross between points 1 and 2.
    fmr = [0.01, 0.05, 0.20, 0.40]
    fnmr = [0.50, 0.15, 0.05, 0.01]
    # gap fnmr - fmr: 0.10 at point 1, -0.15 at point 2: the line crosses 0 at 0.4 of the way.
    expected_fmr = 0.05 + 0.4 * (0.20 - 0.05)
    expected_fnmr = 0.15 + 0.4 * (0.05 - 0.15)
    assert search.eer(fmr, fnmr) == pytest.approx((expected_fmr + expected_fnmr) / 2, rel=1e-12)
    assert search.eer([0.1, 0.2], [0.1, 0.0]) == pytest.approx(0.1)  # equal at a point
    assert search.eer([0.01, 0.02], [0.5, 0.4]) is None  # never cross on these points
    assert search.eer([0.3, 0.5], [0.1, 0.0]) is None  # crossed before the first point
    assert search.eer([None, 0.05, 0.2], [None, 0.15, 0.05]) == pytest.approx(
        search.eer([0.05, 0.2], [0.15, 0.05]))


def test_det_curve_counts_at_exact_thresholds(rng):
    negatives = rng.standard_normal(2000).astype(np.float32)
    positives = (rng.standard_normal(500) + 2).astype(np.float32)
    curve = search.det_curve(positives, negatives, levels=(1e-3, 1e-2, 0.1, 0.5))
    ordered = np.sort(negatives)[::-1]
    assert curve["threshold"] == [float(ordered[k]) for k in (2, 20, 200, 1000)]
    for t, fmr, fnmr in zip(curve["threshold"], curve["fmr"], curve["fnmr"]):
        assert fmr == np.mean(negatives > np.float32(t))
        assert fnmr == 1 - np.mean(positives > np.float32(t))
    assert search.det_curve(positives, negatives[:10], levels=(1e-3, 0.5))["threshold"] == [
        float(np.sort(negatives[:10])[::-1][5])]  # 1e-3 is not resolved by ten negatives
