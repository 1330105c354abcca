"""Every method against its dense reference (calibration_reference.py), on random data and on
adversarial data: tied scores, a cluster of one image, a group without same-group impostors,
cross-group pairs, an image whose group the calibration never saw."""
import numpy as np
import pytest

import calibration_reference as reference
from mfftools.calibration.methods import (
    PairKeys,
    Settings,
    apply_method,
    fit_method,
    threshold_at,
)
from mfftools.errors import MfftoolsError

N_KEYS = 5
TARGET = 0.05


def _data(rng, ties, n_images=40, n_cal=300, n_test=120):
    """(calibration, test) as (scores, labels, key_a, key_b) over images with keys 0..4; key 4
    has one image; with keys as groups, group 3's pairs are all genuine."""
    key = rng.integers(0, 4, n_images)
    key[0] = 4  # a key with a single image
    key[key == 4] = rng.integers(0, 4, int((key == 4).sum()))
    key[0] = 4

    def pairs(count):
        a = rng.integers(0, n_images, count)
        b = np.where(rng.random(count) < 0.7, a, rng.integers(0, n_images, count))
        b = np.array([rng.choice(np.flatnonzero(key == key[x])) if same else y
                      for x, y, same in zip(a, b, rng.random(count) < 0.7)])
        labels = rng.random(count) < 0.35
        labels[(key[a] == 3) & (key[b] == 3)] = True  # group 3: no same-group impostors
        scores = np.where(labels, rng.normal(0.4, 0.2, count), rng.normal(0.0, 0.15, count))
        scores += 0.08 * key[a]  # keys differ, as groups do
        scores = np.clip(scores, -0.95, 0.95)
        if ties:
            scores = np.round(scores, 1)
        return scores, labels, key[a], key[b]

    calibration = pairs(n_cal)
    calibration[1][:2] = [True, False]  # both classes whatever the draw
    return calibration, pairs(n_test)


def _fit_apply(method, cal, test, settings):
    fitted = fit_method(method, PairKeys(cal[0], cal[2], cal[3], cal[1]), N_KEYS, settings)
    return fitted, apply_method(fitted, PairKeys(test[0], test[2], test[3]))


@pytest.mark.parametrize("kind", ["beta", "isotonic", "binning"])
@pytest.mark.parametrize("ties", [False, True])
def test_baseline_is_the_global_calibrator(rng, kind, ties):
    cal, test = _data(rng, ties)
    fitted, applied = _fit_apply("baseline", cal, test, Settings(calibrator=kind, bins=8))
    mapping = reference.calibrator(kind, cal[0], cal[1], bins=8)
    np.testing.assert_allclose(applied.confidence, [mapping(s) for s in test[0]], rtol=1e-12)
    np.testing.assert_array_equal(applied.decision, test[0])
    assert fitted.n_fallbacks == 0 and not applied.fallback.any()
    # the calibrator's own name is the baseline with that calibrator
    _, named = _fit_apply(kind, cal, test, Settings(calibrator="beta", bins=8))
    np.testing.assert_array_equal(named.confidence, applied.confidence)


@pytest.mark.parametrize("kind", ["beta", "isotonic", "binning"])
@pytest.mark.parametrize("ties", [False, True])
def test_faircal_and_oracle_match_their_references(rng, kind, ties):
    cal, test = _data(rng, ties)
    settings = Settings(calibrator=kind, bins=25)
    for method, build in (("faircal", reference.faircal), ("oracle", reference.oracle)):
        fitted, applied = _fit_apply(method, cal, test, settings)
        confidence, fallback, n_fallbacks = build(cal, test, kind, N_KEYS)
        np.testing.assert_allclose(applied.confidence, confidence, rtol=1e-9, atol=1e-12)
        np.testing.assert_array_equal(applied.decision, applied.confidence)
        np.testing.assert_array_equal(applied.fallback, fallback)
        assert fitted.n_fallbacks == n_fallbacks
    # the one-image key falls back (too few pairs for both classes) in this data, or is fitted
    assert n_fallbacks >= 1  # oracle: group 3 has no impostor pairs within it


@pytest.mark.parametrize("kind", ["beta", "isotonic", "binning"])
@pytest.mark.parametrize("ties", [False, True])
def test_fsn_gst_and_group_norm_match_their_references(rng, kind, ties):
    cal, test = _data(rng, ties)
    settings = Settings(calibrator=kind, fit_fpr=TARGET)
    for method, build in (("fsn", lambda *a: reference.fsn(*a, TARGET)),
                          ("gst", lambda *a: reference.gst(*a, TARGET)),
                          ("group-norm", reference.group_norm)):
        fitted, applied = _fit_apply(method, cal, test, settings)
        confidence, decision, fallback, n_fallbacks = build(cal, test, kind, N_KEYS)
        np.testing.assert_allclose(applied.decision, decision, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(applied.confidence, confidence, rtol=1e-9, atol=1e-12)
        np.testing.assert_array_equal(applied.fallback, fallback)
        assert fitted.n_fallbacks == n_fallbacks, method
    # group 3 has no same-group impostor: gst leaves it unshifted, and counts it
    fitted, _ = _fit_apply("gst", cal, test, settings)
    assert fitted.fallback[3] and fitted.tables["shift"][3] == 0.0


def test_an_unseen_group_falls_back_and_is_counted(rng):
    cal, test = _data(rng, False)
    unseen = (test[0], test[1], test[2].copy(), test[3].copy())
    unseen[2][:10] = -1
    unseen[3][:10] = -1
    for method in ("gst", "oracle", "group-norm"):
        build = {"gst": lambda *a: reference.gst(*a, TARGET), "oracle": reference.oracle,
                 "group-norm": reference.group_norm}[method]
        _, applied = _fit_apply(method, cal, unseen, Settings(fit_fpr=TARGET))
        found = build(cal, unseen, "beta", N_KEYS)
        np.testing.assert_allclose(applied.confidence, found[0], rtol=1e-9)
        assert applied.fallback[:10].all()


def test_the_threshold_is_the_smallest_impostor_score_meeting_the_target(rng):
    for scores in (rng.normal(size=50), np.round(rng.normal(size=200), 1), np.zeros(7)):
        for target in (1e-3, 0.02, 0.1, 0.5):
            assert threshold_at(scores, target) == reference.threshold(scores, target)
    assert threshold_at(np.array([]), 0.1) is None


def test_calibration_pairs_need_both_classes(rng):
    pairs = PairKeys(rng.normal(size=5), np.zeros(5, int), np.zeros(5, int), np.ones(5, bool))
    with pytest.raises(MfftoolsError, match="5 genuine and 0 impostor pairs"):
        fit_method("faircal", pairs, 1)
    with pytest.raises(MfftoolsError, match="unknown method 'fairest'"):
        fit_method("fairest", pairs, 1)


def test_beta_and_isotonic_maps_never_decrease(rng):
    cal, _ = _data(rng, False)
    grid = np.linspace(-1, 1, 401)
    for method in ("baseline", "faircal", "fsn", "gst", "oracle", "group-norm"):
        for kind in ("beta", "isotonic"):
            fitted = fit_method(method, PairKeys(cal[0], cal[2], cal[3], cal[1]), N_KEYS,
                                Settings(calibrator=kind, fit_fpr=TARGET))
            for a, b in ((0, 0), (1, 2), (3, 3), (4, 0)):
                keys = np.full(len(grid), a), np.full(len(grid), b)
                applied = apply_method(fitted, PairKeys(grid, *keys))
                assert np.all(np.diff(applied.confidence) >= 0), (method, kind)
                assert np.all(np.diff(applied.decision) >= 0), (method, kind)
