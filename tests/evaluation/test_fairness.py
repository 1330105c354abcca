"""Fairness measures against values worked out by hand."""
import math

import pytest

from mfftools.evaluation import fairness


def test_fdr():
    # max |FMR_i - FMR_j| = 0.03, max |FNMR_i - FNMR_j| = 0.2
    assert fairness.fdr([0.01, 0.04, 0.02], [0.1, 0.3, 0.2]) == pytest.approx(1 - (0.015 + 0.1))
    assert fairness.fdr([0.01, 0.04], [0.1, 0.3], alpha=1.0) == pytest.approx(0.97)



def test_gini():
    # D = 2, x = (1, 3): sum|x_i - x_j| = 4, mean 2: 2/1 * 4 / (2 * 4 * 2) = 0.5
    assert fairness.gini([1.0, 3.0]) == pytest.approx(0.5)
    assert fairness.gini([2.0, 2.0, 2.0]) == 0.0
    # D = 3, x = (0, 0, 3): sum = 12, mean 1: 3/2 * 12 / (2 * 9 * 1) = 1 (all on one group)
    assert fairness.gini([0.0, 0.0, 3.0]) == pytest.approx(1.0)
    assert fairness.gini([1.0]) is None
    assert fairness.gini([0.0, 0.0]) is None


def test_garbe():
    assert fairness.garbe([1.0, 3.0], [2.0, 2.0]) == pytest.approx(0.25)
    assert fairness.garbe([1.0, 3.0], [2.0, 2.0], alpha=0.2) == pytest.approx(0.1)
    assert fairness.garbe([0.0, 0.0], [1.0, 2.0]) is None


def test_max_geomean_and_ser():
    assert fairness.max_geomean([1.0, 4.0]) == pytest.approx(2.0)
    assert fairness.max_geomean([0.3, 0.3]) == pytest.approx(1.0)
    assert fairness.max_geomean([0.0, 1.0]) is None
    assert fairness.ser([2.0, 5.0, 4.0]) == pytest.approx(2.5)
    assert fairness.ser([0.0, 1.0]) is None


def test_group_fairness_keys():
    out = fairness.group_fairness([1e-5, 2e-5], [0.1, 0.2])
    assert set(out) == {"fdr", "fpd", "fnd", "garbe", "fmr_max_geomean", "fnmr_max_geomean"}
    assert out["fmr_max_geomean"] == pytest.approx(2 / math.sqrt(2))


def test_one_group_has_nothing_to_compare():
    assert fairness.group_fairness([0.01], [0.2]) == {
        "fdr": None, "fpd": None, "fnd": None, "garbe": None,
        "fmr_max_geomean": None, "fnmr_max_geomean": None,
    }
    assert fairness.ser([3.0]) is None
