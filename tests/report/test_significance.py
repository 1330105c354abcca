"""The permutation test over identities against a plain loop, and its p-values under the null and
under a strong group effect; intervals against the other groups' pooled mean."""
import numpy as np
import pytest

from mfftools.report import significance
from mfftools.report.bootstrap import Interval
from mfftools.report.significance import excludes_others, permutation_test


def _columns(rng, n_per_group=30, tpr_shift=(0.0, 0.0, -0.3), fpr_scale=(1.0, 1.0, 1.0)):
    group = np.repeat(np.arange(3), n_per_group)
    tpr = rng.uniform(0.6, 1.0, len(group)) + np.asarray(tpr_shift)[group]
    tpr[::7] = np.nan  # identities without a genuine pair
    fpr = rng.uniform(0, 1e-4, len(group)) * np.asarray(fpr_scale)[group]
    return {"group": group, "tpr": tpr, "fpr": fpr}


def _reference_p(values, labels, n_resamples, rng):
    """One shuffle at a time: labels reordered, group means by a loop, gap = max - min."""
    keep = ~np.isnan(values)
    values, labels = values[keep], labels[keep]

    def gap(assigned):
        means = [values[assigned == g].mean() for g in np.unique(labels)]
        return max(means) - min(means)

    observed = gap(labels)
    reached = 0
    for _ in range(n_resamples):
        shuffled = labels[rng.random(len(values)).argsort()]
        reached += gap(shuffled) >= observed - 1e-12 * abs(observed)
    return observed, (1 + reached) / (1 + n_resamples)


@pytest.mark.parametrize("chunk", [1, 7, 100])
def test_matches_a_plain_loop_with_the_same_seed(rng, monkeypatch, chunk):
    monkeypatch.setattr(significance, "CHUNK", chunk)
    columns = _columns(rng, tpr_shift=(0.0, 0.02, -0.03))  # a small effect: p in between
    got = permutation_test(columns, n_resamples=199, seed=4)
    reference_rng = np.random.default_rng((4, significance.STREAM))
    for rate in ("tpr", "fpr"):  # TPR's shuffles first, from the same stream
        observed, p = _reference_p(columns[rate], columns["group"], 199, reference_rng)
        assert got[f"{rate}_mean"].observed == pytest.approx(observed, rel=1e-12)
        assert got[f"{rate}_mean"].p_value == p
        assert got[f"{rate}_mean"].n_resamples == 199
    assert 1 / 200 < got["tpr_mean"].p_value < 1


def test_same_seed_same_numbers_and_another_seed_others(rng):
    columns = _columns(rng, tpr_shift=(0.0, 0.02, -0.03))
    first = permutation_test(columns, n_resamples=300, seed=9)
    assert first == permutation_test(columns, n_resamples=300, seed=9)
    assert first != permutation_test(columns, n_resamples=300, seed=10)


def test_a_strong_group_effect_gives_the_smallest_p(rng):
    tests = permutation_test(_columns(rng, fpr_scale=(1.0, 1.0, 5.0)), n_resamples=500, seed=0)
    assert tests["tpr_mean"].p_value == tests["fpr_mean"].p_value == 1 / 501


def test_p_values_spread_over_0_1_when_the_labels_mean_nothing():
    rng = np.random.default_rng(123)
    p_values = []
    for seed in range(300):
        columns = {"group": rng.integers(0, 3, 40), "tpr": rng.uniform(size=40),
                   "fpr": rng.exponential(size=40)}
        tests = permutation_test(columns, n_resamples=99, seed=seed)
        p_values += [tests["tpr_mean"].p_value, tests["fpr_mean"].p_value]
    p_values = np.array(p_values)
    assert p_values.min() > 0 and p_values.max() <= 1
    # Under the null the p-value is uniform on {1/100, ..., 1}: each tenth holds about 60 of 600.
    counts = np.histogram(p_values, bins=np.linspace(0, 1, 11))[0]
    assert counts.min() > 30 and counts.max() < 95, counts
    assert abs(p_values.mean() - 0.505) < 0.04


def test_groups_without_values_are_left_out(rng):
    columns = _columns(rng)
    columns["tpr"][columns["group"] == 1] = np.nan  # group 1 has no identity with a genuine pair
    tests = permutation_test(columns, n_resamples=50, seed=0)
    keep = columns["group"] != 1
    observed, _ = _reference_p(columns["tpr"][keep], columns["group"][keep], 1,
                               np.random.default_rng(0))
    assert tests["tpr_mean"].observed == pytest.approx(observed, rel=1e-12)
    one_group = {"group": np.zeros(10, np.int64), "tpr": rng.uniform(size=10),
                 "fpr": rng.uniform(size=10)}
    assert permutation_test(one_group, n_resamples=10) == {}
    with pytest.raises(ValueError):
        permutation_test(columns, n_resamples=0)


def test_an_interval_excludes_the_other_groups_pooled_mean_or_not():
    columns = {"group": np.array([0, 0, 1, 1, 2, 2]),
               "tpr": np.array([0.9, 0.8, 0.5, np.nan, 0.7, 0.6]),
               "fpr": np.array([1e-3, 3e-3, 2e-3, 2e-3, 4e-3, 4e-3])}
    intervals = {"groups": {
        "A": {"tpr_mean": Interval(0.75, 0.95), "fpr_mean": Interval(1e-3, 3e-3)},
        "B": {"fpr_mean": Interval(2e-3, 2e-3)},  # no TPR interval: no verdict
        "C": {"tpr_mean": Interval(0.6, 0.7), "fpr_mean": Interval(3.9e-3, 4.1e-3)},
    }}
    # others of A: TPR (0.5 + 0.7 + 0.6) / 3 = 0.6 (the NaN left out), FPR 3e-3;
    # others of B: FPR 3e-3; others of C: TPR (0.9 + 0.8 + 0.5) / 3 = 0.7333, FPR 2e-3
    assert excludes_others(columns, ["A", "B", "C"], intervals) == {
        "A": {"tpr_mean": True, "fpr_mean": False},
        "B": {"fpr_mean": True},
        "C": {"tpr_mean": True, "fpr_mean": True},
    }
