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
