"""The permutation tests over identities: statistics against plain loops, p-values against the
exact permutation distribution of small data, their calibration under the null, Holm's
adjustment by hand, and the paired test of two models."""
from itertools import permutations

import numpy as np
import pytest

from mfftools.reporting import significance
from mfftools.reporting.significance import group_tests, holm, paired_test


def _columns(rng, n_per_group=30, tpr_shift=(0.0, 0.0, -0.3), fpr_scale=(1.0, 1.0, 1.0)):
    group = np.repeat(np.arange(3), n_per_group)
    tpr = rng.uniform(0.6, 1.0, len(group)) + np.asarray(tpr_shift)[group]
    tpr[::7] = np.nan  # identities without a genuine pair
    fpr = rng.uniform(0, 1e-4, len(group)) * np.asarray(fpr_scale)[group]
    return {"group": group, "tpr": tpr, "fpr": fpr}


def _statistics(values, labels):
    """Plain loops: (range of the group means, {group: its mean minus the others' pooled})."""
    groups = sorted(set(labels))
    means = {g: np.mean([v for v, label in zip(values, labels) if label == g]) for g in groups}
    rest = {g: np.mean([v for v, label in zip(values, labels) if label != g]) for g in groups}
    return max(means.values()) - min(means.values()), {g: means[g] - rest[g] for g in groups}


def _exact_p(values, labels):
    """The p-values over every distinct relabelling (the exact permutation distribution)."""
    observed_range, observed_rest = _statistics(values, labels)
    relabellings = set(permutations(labels))
    reached_range = 0
    reached_rest = dict.fromkeys(observed_rest, 0)
    for relabelled in relabellings:
        found_range, found_rest = _statistics(values, relabelled)
        reached_range += found_range >= observed_range - 1e-12
        for g in reached_rest:
            reached_rest[g] += abs(found_rest[g]) >= abs(observed_rest[g]) - 1e-12
    return (reached_range / len(relabellings),
            {g: count / len(relabellings) for g, count in reached_rest.items()})


def test_statistics_match_plain_loops(rng):
    columns = _columns(rng, tpr_shift=(0.0, 0.02, -0.03))
    tests = group_tests(columns, n_resamples=99, seed=4)
    for rate in ("tpr", "fpr"):
        keep = ~np.isnan(columns[rate])
        observed_range, observed_rest = _statistics(columns[rate][keep], columns["group"][keep])
        found = tests[f"{rate}_mean"]
        assert found.range.observed == pytest.approx(observed_range, rel=1e-12)
        assert found.n_identities == keep.sum()
        for g, difference in observed_rest.items():
            assert found.versus_rest[g].observed == pytest.approx(difference, rel=1e-10)
            mean, rest = found.means[g]
            assert mean - rest == pytest.approx(difference, rel=1e-10)


def test_p_values_approach_the_exact_permutation_distribution():
    """Nine identities in three groups, ties included: 1,680 distinct relabellings."""
    values = np.array([0.9, 0.5, 0.5, 1.0, 0.0, 0.5, 0.25, 1.0, 0.75])
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2])
    exact_range, exact_rest = _exact_p(values, labels)
    columns = {"group": labels, "tpr": values, "fpr": values[::-1].copy()}
    tests = group_tests(columns, n_resamples=20000, seed=1)["tpr_mean"]
    # Monte Carlo p = (1 + reached) / (1 + B): within 4 standard errors of the exact p
    for found, exact in [(tests.range.p_value, exact_range)] + [
            (tests.versus_rest[g].p_value, exact_rest[g]) for g in exact_rest]:
        assert abs(found - exact) < 4 * np.sqrt(exact * (1 - exact) / 20000) + 1e-4, (found, exact)


@pytest.mark.parametrize("chunk", [1, 7])
def test_chunks_do_not_change_the_numbers(rng, monkeypatch, chunk):
    columns = _columns(rng, tpr_shift=(0.0, 0.02, -0.03))
    whole = group_tests(columns, n_resamples=250, seed=3)
    monkeypatch.setattr(significance, "CHUNK", chunk)
    assert group_tests(columns, n_resamples=250, seed=3) == whole


def test_same_seed_same_numbers_and_another_seed_others(rng):
    columns = _columns(rng, tpr_shift=(0.0, 0.02, -0.03))
    first = group_tests(columns, n_resamples=300, seed=9)
    assert first == group_tests(columns, n_resamples=300, seed=9)
    assert first != group_tests(columns, n_resamples=300, seed=10)


def test_a_strong_group_effect_gives_the_smallest_p(rng):
    tests = group_tests(_columns(rng, fpr_scale=(1.0, 1.0, 5.0)), n_resamples=500, seed=0)
    assert tests["tpr_mean"].range.p_value == tests["fpr_mean"].range.p_value == 1 / 501
    assert tests["tpr_mean"].versus_rest[2].p_value == 1 / 501
    assert tests["tpr_mean"].versus_rest[2].observed < 0  # the low group


def test_p_values_are_uniform_when_the_labels_mean_nothing():
    """Under the null P(p <= a) <= a for every a: over 300 data sets with ties and zeros, each
    tenth of [0, 1] holds about a tenth of the p-values, of the range and of a group alike."""
    rng = np.random.default_rng(123)
    found = {"range": [], "group": []}
    for seed in range(300):
        columns = {"group": rng.integers(0, 4, 48), "tpr": rng.integers(0, 3, 48) / 2,
                   "fpr": rng.exponential(size=48) * (rng.random(48) < 0.5)}
        tests = group_tests(columns, n_resamples=99, seed=seed)
        for rate in ("tpr_mean", "fpr_mean"):
            found["range"].append(tests[rate].range.p_value)
            found["group"].append(tests[rate].versus_rest[0].p_value)
    for kind, p_values in found.items():
        p_values = np.array(p_values)
        assert p_values.min() >= 1 / 100 and p_values.max() <= 1
        for level in (0.05, 0.1, 0.25, 0.5):
            # binomial sd of a share of 600 is at most 0.02; ties make the test conservative
            assert np.mean(p_values <= level) <= level + 0.05, (kind, level)
        counts = np.histogram(p_values, bins=np.linspace(0, 1, 11))[0]
        assert counts.min() > 25 and counts.max() < 100, (kind, counts)


def test_groups_without_values_are_left_out(rng):
    columns = _columns(rng)
    columns["tpr"][columns["group"] == 1] = np.nan  # group 1 has no identity with a genuine pair
    tests = group_tests(columns, n_resamples=50, seed=0)
    assert set(tests["tpr_mean"].versus_rest) == {0, 2}
    assert set(tests["fpr_mean"].versus_rest) == {0, 1, 2}
    one_group = {"group": np.zeros(10, np.int64), "tpr": rng.uniform(size=10),
                 "fpr": rng.uniform(size=10)}
    assert group_tests(one_group, n_resamples=10) == {}
    with pytest.raises(ValueError):
        group_tests(columns, n_resamples=0)


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04, 0.5: x4, x3, x2, x1 = 0.04, 0.09, 0.08 -> 0.09 (monotone), 0.5
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm([0.6, 0.2]) == pytest.approx([0.6, 0.4])
    assert holm([0.9, 0.8, 0.7]) == pytest.approx([1.0, 1.0, 1.0])  # never above 1
    assert holm([]) == []


def _paired_reference(first, second, group, statistic):
    keep = ~(np.isnan(first) | np.isnan(second))
    first, second, group = first[keep], second[keep], group[keep]

    def measure(values):
        if statistic == "tpr_std":
            return values.std()
        means = [values[group == g].mean() for g in np.unique(group)]
        return max(means) - min(means)

    return measure(first), measure(second)


@pytest.mark.parametrize("statistic", ["tpr_std", "tpr_range"])
def test_paired_statistics_match_plain_numpy(rng, statistic):
    group = np.repeat(np.arange(4), 25)
    first = rng.uniform(0.5, 1, 100)
    second = np.clip(first + rng.normal(0, 0.05, 100), 0, 1)
    first[3] = second[50] = np.nan
    found = paired_test(first, second, group, statistic, n_resamples=99, seed=0)
    a, b = _paired_reference(first, second, group, statistic)
    assert (found.first, found.second) == pytest.approx((a, b), rel=1e-12)
    assert found.observed == pytest.approx(a - b, rel=1e-9)
    assert found.n_identities == 98
    assert paired_test(first, second, np.zeros(100, np.int64), "tpr_range", 9) is None
    with pytest.raises(ValueError):
        paired_test(first, second, group, "fpr_mean", 9)


def test_paired_test_keeps_its_rate_when_the_models_are_exchangeable():
    """Two models that are the same model with independent noise: the std test fires in at most
    about 5% of 300 data sets; a model with half the spread is found in most."""
    rng = np.random.default_rng(7)
    fired = {"null": 0, "gap": 0}
    for seed in range(300):
        group = rng.integers(0, 4, 80)
        truth = rng.uniform(0.4, 1.0, 80)
        first = np.clip(truth + rng.normal(0, 0.05, 80), 0, 1)
        second = np.clip(truth + rng.normal(0, 0.05, 80), 0, 1)
        fired["null"] += paired_test(first, second, group, "tpr_std", 99, seed).p_value <= 0.05
        narrower = 0.7 + (truth - 0.7) / 2
        fired["gap"] += paired_test(first, narrower, group, "tpr_std", 99, seed).p_value <= 0.05
    assert fired["null"] / 300 <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 300)
    assert fired["gap"] / 300 > 0.9
