import numpy as np
import pytest
from numpy.testing import assert_allclose

from mfftools.report import bootstrap
from mfftools.report.bootstrap import bootstrap_instance

NAMES = ["A", "B", "C"]


def _columns(rng, n_per_group=40, tpr_shift=(0.0, 0.0, -0.3)):
    group = np.repeat(np.arange(3), n_per_group)
    tpr = rng.uniform(0.6, 1.0, len(group)) + np.asarray(tpr_shift)[group]
    tpr[::7] = np.nan
    fpr = rng.uniform(0, 1e-4, len(group))
    return {"group": group, "tpr": tpr, "fpr": fpr}


def _reference(values, n_resamples, rng):
    """One resample at a time, the textbook way."""
    values = values[~np.isnan(values)]
    means, stds = [], []
    for _ in range(n_resamples):
        sample = values[rng.integers(0, len(values), size=len(values))]
        means.append(sample.mean())
        stds.append(sample.std())
    return np.array(means), np.array(stds)


@pytest.mark.parametrize("chunk", [1, 7, 100, 1000])
def test_matches_one_resample_at_a_time_reference(rng, monkeypatch, chunk):
    monkeypatch.setattr(bootstrap, "CHUNK", chunk)
    columns = _columns(rng)
    got = bootstrap_instance(columns, NAMES, n_resamples=250, seed=3)
    ref_rng = np.random.default_rng(3)
    draws = {}
    for key, rows in [("overall", np.ones(len(columns["group"]), bool))] + [
        (name, columns["group"] == k) for k, name in enumerate(NAMES)
    ]:
        for rate in ("tpr", "fpr"):
            draws[key, rate] = _reference(columns[rate][rows], 250, ref_rng)
    for key in ["overall"] + NAMES:
        stats = got["overall"] if key == "overall" else got["groups"][key]
        for rate in ("tpr", "fpr"):
            means, stds = draws[key, rate]
            for stat, samples in ((f"{rate}_mean", means), (f"{rate}_std", stds)):
                low, high = np.percentile(samples, [2.5, 97.5])
                assert_allclose([stats[stat].low, stats[stat].high], [low, high], rtol=1e-12)
    # group C has the lowest TPR mean, A or B the highest
    estimates = [np.nanmean(columns["tpr"][columns["group"] == k]) for k in range(3)]
    diff = draws[NAMES[int(np.argmax(estimates))], "tpr"][0] - draws["C", "tpr"][0]
    assert_allclose(
        [got["gap"]["tpr_mean"].low, got["gap"]["tpr_mean"].high], np.percentile(diff, [2.5, 97.5])
    )


def test_real_gap_excludes_zero_and_no_gap_straddles_it(rng):
    gapped = bootstrap_instance(_columns(rng), NAMES, n_resamples=500, seed=0)
    assert gapped["gap"]["tpr_mean"].low > 0.2
    flat = bootstrap_instance(_columns(rng, tpr_shift=(0, 0, 0)), NAMES, n_resamples=500, seed=0)
    assert flat["gap"]["tpr_mean"].low < 0 < flat["gap"]["tpr_mean"].high


def test_interval_width_matches_normal_approximation(rng):
    n = 4000
    columns = {"group": np.zeros(n, np.int64), "tpr": rng.normal(0.8, 0.1, n),
               "fpr": rng.normal(1e-5, 1e-6, n)}
    got = bootstrap_instance(columns, ["only"], n_resamples=1000, seed=1)
    interval = got["overall"]["tpr_mean"]
    half_width = 1.96 * columns["tpr"].std() / np.sqrt(n)
    assert_allclose(interval.high - interval.low, 2 * half_width, rtol=0.15)
    assert interval.low < columns["tpr"].mean() < interval.high
    assert got["gap"] == {}  # one group: nothing to compare


def test_seeded_and_constant_values_give_a_point(rng):
    columns = _columns(rng)
    first = bootstrap_instance(columns, NAMES, n_resamples=50, seed=11)
    assert first == bootstrap_instance(columns, NAMES, n_resamples=50, seed=11)
    assert first != bootstrap_instance(columns, NAMES, n_resamples=50, seed=12)
    columns["fpr"][:] = 2e-5
    constant = bootstrap_instance(columns, NAMES, n_resamples=50, seed=0)
    assert constant["groups"]["B"]["fpr_mean"].low == pytest.approx(2e-5)
    assert constant["groups"]["B"]["fpr_mean"].high == pytest.approx(2e-5)
    assert constant["groups"]["B"]["fpr_std"].high == pytest.approx(0, abs=1e-18)


def test_group_without_genuine_pairs_has_no_tpr_interval(rng):
    columns = _columns(rng)
    columns["tpr"][columns["group"] == 1] = np.nan
    got = bootstrap_instance(columns, NAMES, n_resamples=20, seed=0)
    assert set(got["groups"]["B"]) == {"fpr_mean", "fpr_std"}
    assert set(got["groups"]["A"]) == {"tpr_mean", "tpr_std", "fpr_mean", "fpr_std"}
    assert np.isfinite(got["overall"]["tpr_mean"].low)


def test_needs_a_resample():
    with pytest.raises(ValueError):
        bootstrap_instance({"group": np.zeros(2, int), "tpr": np.ones(2), "fpr": np.ones(2)},
                           ["A"], n_resamples=0)
