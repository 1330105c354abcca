"""The calibrators against references written from their definitions, on random and tied data."""
import numpy as np
import pytest

from mfftools.calibration.calibrators import (
    BETA_C,
    CalibratorBank,
    beta_features,
    equal_mass_cuts,
    fit_beta,
    fit_binning,
    fit_calibrator,
    fit_isotonic,
    logistic_fit,
    predict_beta,
    predict_binning,
    predict_isotonic,
)


def _overlapping(rng, n=400):
    """Cosine-like scores whose genuine and impostor distributions overlap."""
    issame = rng.random(n) < 0.4
    scores = np.where(issame, rng.normal(0.45, 0.15, n), rng.normal(0.05, 0.12, n))
    return np.clip(scores, -0.99, 0.99), issame


def _penalised_gradient(features, labels, intercept, weights, c=BETA_C):
    design = np.column_stack([np.ones(len(labels)), features])
    w = np.concatenate([[intercept], weights])
    p = 1.0 / (1.0 + np.exp(-(design @ w)))
    return design.T @ (p - labels) + np.concatenate([[0.0], weights / c])


def _reference_logistic(features, labels, iterations=200):
    """Plain gradient ascent-free reference: Newton's method without step control, many steps
    (fine on overlapping data, where the likelihood is strictly concave with a finite optimum)."""
    design = np.column_stack([np.ones(len(labels)), features])
    w = np.zeros(design.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(design @ w)))
        hessian = design.T @ (design * (p * (1 - p))[:, None])
        w -= np.linalg.solve(hessian, design.T @ (p - labels))
    return w


def test_logistic_fit_is_the_maximum_likelihood(rng):
    scores, issame = _overlapping(rng)
    features = beta_features(scores, -1.0, 1.0)
    intercept, weights = logistic_fit(features, issame)
    assert np.abs(_penalised_gradient(features, issame, intercept, weights)).max() < 1e-8
    np.testing.assert_allclose(np.r_[intercept, weights],
                               _reference_logistic(features, issame.astype(float)), rtol=1e-7,
                               atol=1e-9)


def test_beta_map_is_the_logistic_model_on_its_two_features(rng):
    scores, issame = _overlapping(rng)
    a, b, c = fit_beta(scores, issame, -1.0, 1.0)
    x = (scores + 1.0) / 2.0
    expected = 1.0 / (1.0 + np.exp(-(c + a * np.log(x) - b * np.log(1.0 - x))))
    np.testing.assert_allclose(predict_beta(scores, a, b, c, -1.0, 1.0), expected, rtol=1e-12)
    if a > 0 and b > 0:  # both kept: the two-feature maximum likelihood
        intercept, weights = logistic_fit(beta_features(scores, -1.0, 1.0), issame)
        np.testing.assert_allclose([a, b, c], [*weights, intercept], rtol=1e-12)
    # mapped to [eps, 1 - eps] at the ends of the range, never NaN
    ends = predict_beta(np.array([-1.0, 1.0, -5.0, 5.0]), a, b, c, -1.0, 1.0)
    assert np.isfinite(ends).all()
    assert ends[0] == ends[2] and ends[1] == ends[3]


def test_beta_refits_with_one_feature_when_a_coefficient_is_negative(rng):
    # genuine pairs at both ends, impostors in the middle: the two-feature fit has a < 0
    # (p grows as x -> 0) or b < 0; the rule refits with the other feature alone.
    n = 600
    x = rng.uniform(0.02, 0.98, n)
    issame = rng.random(n) < np.where(x < 0.3, 0.7, np.where(x > 0.8, 0.9, 0.1))
    scores = 2 * x - 1
    features = beta_features(scores, -1.0, 1.0)
    _, (a_free, b_free) = logistic_fit(features, issame)
    assert a_free < 0 or b_free < 0
    a, b, c = fit_beta(scores, issame, -1.0, 1.0)
    if a_free < 0:
        intercept, (weight,) = logistic_fit(features[:, 1:], issame)
        assert a == 0.0 and (b, c) == pytest.approx((weight, intercept), rel=1e-12)
    else:
        intercept, (weight,) = logistic_fit(features[:, :1], issame)
        assert b == 0.0 and (a, c) == pytest.approx((weight, intercept), rel=1e-12)
    assert a >= 0 and b >= 0


def test_beta_keeps_only_the_intercept_when_the_refit_is_negative_too(rng):
    # p falls with the score everywhere: every refit coefficient is negative
    scores = rng.uniform(-0.9, 0.9, 500)
    issame = rng.random(500) < (0.9 - 0.8 * (scores + 0.9) / 1.8)
    a, b, c = fit_beta(scores, issame, -1.0, 1.0)
    assert a == 0.0 and b == 0.0
    assert 1.0 / (1.0 + np.exp(-c)) == pytest.approx(issame.mean(), rel=1e-9)


def _isotonic_reference(scores, issame):
    """The min-max formula of isotonic regression on the pooled distinct scores: the fitted
    value at x_i is max over j <= i of min over k >= i of the weighted mean of blocks j..k."""
    x = np.unique(scores)
    counts = np.array([np.sum(scores == value) for value in x], dtype=float)
    genuine = np.array([np.sum(issame[scores == value]) for value in x], dtype=float)
    fitted = np.empty(len(x))
    for i in range(len(x)):
        fitted[i] = max(min(genuine[j:k + 1].sum() / counts[j:k + 1].sum()
                            for k in range(i, len(x))) for j in range(i + 1))
    return x, fitted


@pytest.mark.parametrize("ties", [False, True])
def test_isotonic_is_the_pooled_least_squares_monotone_fit(rng, ties):
    scores, issame = _overlapping(rng, 60)
    if ties:
        scores = np.round(scores, 1)  # many equal scores with mixed labels
    knots_x, knots_y = fit_isotonic(scores, issame)
    x, fitted = _isotonic_reference(scores, issame)
    np.testing.assert_allclose(predict_isotonic(x, knots_x, knots_y), fitted, atol=1e-12)
    between = np.linspace(-1.2, 1.2, 301)  # linear between fitted points, constant beyond
    np.testing.assert_allclose(predict_isotonic(between, knots_x, knots_y),
                               np.interp(between, x, fitted), atol=1e-12)
    assert np.all(np.diff(predict_isotonic(between, knots_x, knots_y)) >= 0)


def test_equal_mass_cuts_never_split_equal_scores():
    values = np.sort(np.array([0.1] * 5 + [0.2] * 7 + [0.3, 0.4, 0.5, 0.6] + [0.7] * 4))
    cuts = equal_mass_cuts(values, 5)
    positions = np.floor(np.arange(1, 5) * (len(values) - 1) / 5).astype(int) + 1
    kept = [k for k in positions if values[k - 1] < values[k]]
    np.testing.assert_array_equal(cuts, kept)
    assert all(values[k - 1] < values[k] for k in cuts)
    assert len(equal_mass_cuts(np.full(10, 0.5), 4)) == 0  # all equal: one bin
    assert len(equal_mass_cuts(np.arange(3.0), 25)) == 2  # more bins than scores: one each


@pytest.mark.parametrize("ties", [False, True])
def test_binning_gives_each_bin_its_genuine_fraction(rng, ties):
    scores, issame = _overlapping(rng, 300)
    if ties:
        scores = np.round(scores, 1)
    edges, values = fit_binning(scores, issame, -1.0, 1.0, n_bins=10)
    assert edges[0] == -1.0 and edges[-1] == 1.0 and np.all(np.diff(edges) > 0)
    for i in range(len(values)):  # bin i: edge_i < s <= edge_{i+1}
        members = (scores > edges[i]) & (scores <= edges[i + 1])
        assert members.any()
        assert values[i] == pytest.approx(issame[members].mean(), abs=1e-15)
    probe = np.concatenate([scores, [-3.0, -1.0, 1.0, 3.0], edges])
    expected = [values[np.clip(np.searchsorted(edges, s, side="left") - 1, 0, len(values) - 1)]
                for s in probe]
    np.testing.assert_array_equal(predict_binning(probe, edges, values), expected)
    if not ties:
        assert len(values) == 10


@pytest.mark.parametrize("kind", ["beta", "isotonic", "binning"])
def test_a_bank_predicts_with_the_calibrator_each_pair_names(rng, kind):
    fitted, ranges = [], []
    for shift in (0.0, 0.1, -0.1):
        scores, issame = _overlapping(rng, 200)
        fitted.append(fit_calibrator(kind, scores + shift, issame, -1.5, 1.5, n_bins=7))
        ranges.append((-1.5, 1.5))
    bank = CalibratorBank.of(kind, fitted, ranges)
    restored = CalibratorBank.from_arrays(bank.arrays())
    scores = rng.uniform(-1, 1, 500)
    which = rng.integers(0, 3, 500)
    for found in (bank.predict(scores, which), restored.predict(scores, which)):
        for member in range(3):
            chosen = which == member
            single = CalibratorBank.of(kind, [fitted[member]], [ranges[member]])
            np.testing.assert_array_equal(found[chosen], single.predict(scores[chosen], 0))
