"""The score map's raw-score bounds, checked against every pair of keys on a fine grid of raw
scores: a floor never cuts a pair that reaches the cut, a ceiling never passes one that does not
exceed the threshold, a lower bound is never above a calibrated score. Adversarial maps too: a
calibrator fitted on separable pairs (a near-vertical step) and isotonic flats."""
import numpy as np
import pytest
import torch

from mfftools.calibration.methods import PairKeys, Settings, apply_method, fit_method
from mfftools.calibration.score_map import ScoreMap
from mfftools.errors import MfftoolsError

N_KEYS = 4


def _fitted(rng, method, calibrator, separable=False):
    n = 1500
    key_a, key_b = rng.integers(0, N_KEYS, n), rng.integers(0, N_KEYS, n)
    key_b = np.where(rng.random(n) < 0.6, key_a, key_b)
    issame = rng.random(n) < 0.3
    if separable:  # every genuine above every impostor: a near-vertical step at 0.25
        scores = np.where(issame, rng.uniform(0.3, 0.9, n), rng.uniform(-0.5, 0.2, n))
    else:
        scores = np.where(issame, rng.normal(0.45, 0.15, n), rng.normal(0.05, 0.12, n))
        scores += 0.05 * key_a
    scores = np.clip(scores, -1, 1)
    return fit_method(method, PairKeys(scores, key_a, key_b, issame), N_KEYS,
                      Settings(calibrator=calibrator, fit_fpr=0.01))


def _calibrated(fitted, scores, key_a, key_b):
    found = apply_method(fitted, PairKeys(scores, key_a, key_b)).confidence
    return found.astype(np.float32).astype(np.float64)


CASES = [("faircal", "beta", False), ("fsn", "beta", False), ("gst", "isotonic", False),
         ("group-norm", "beta", False), ("oracle", "isotonic", False),
         ("baseline", "beta", True), ("faircal", "beta", True)]


@pytest.mark.parametrize("method, calibrator, separable", CASES)
def test_bounds_hold_for_every_pair_of_keys(rng, method, calibrator, separable):
    fitted = _fitted(rng, method, calibrator, separable)
    left = np.array([0, 1, 2, 3, 1])
    right = np.array([3, 2, 2, 0])
    score_map = ScoreMap(fitted, left, right)
    raw = np.linspace(-1, 1, 4001)
    rows = np.repeat(np.arange(len(left)), len(right))
    cols = np.tile(np.arange(len(right)), len(left))
    table = np.stack([_calibrated(fitted, raw, np.full(len(raw), left[i]),
                                  np.full(len(raw), right[j])) for i, j in zip(rows, cols)])
    cuts = np.unique(np.quantile(table, np.linspace(0, 1, 41)))
    for cut in cuts:
        floor = score_map.floors(cut)[0]
        assert not (table[:, raw <= floor] >= cut).any()  # pairs reaching the cut lie above
        ceiling = score_map.ceilings(cut)[0]
        assert (table[:, raw >= ceiling] > cut).all()  # pairs at or above it exceed the cut
        per_row = score_map.floors(np.full(len(left), cut), torch.arange(len(left)))
        per_row_ceiling = score_map.ceilings(np.full(len(left), cut), torch.arange(len(left)))
        for row in range(len(left)):
            mine = table[rows == row]
            assert per_row[row] >= floor and per_row_ceiling[row] <= ceiling
            assert not (mine[:, raw <= per_row[row]] >= cut).any()
            assert (mine[:, raw >= per_row_ceiling[row]] > cut).all()
    for value in (-1.5, -1.0, -0.3, 0.0, 0.2, 0.25, 0.5, 1.0):
        bound = score_map.lowers(value)[0]
        assert (table[:, raw >= value] >= bound).all()
    pairs_i, pairs_j = torch.from_numpy(rows), torch.from_numpy(cols)
    values = rng.uniform(-1, 1, len(rows))
    bounds = score_map.pair_lowers(values, pairs_i, pairs_j)
    for k in range(len(rows)):
        assert (table[k, raw >= values[k]] >= bounds[k]).all()
    # the map itself: float32 confidences of the pair's keys
    scores = torch.from_numpy(rng.uniform(-1, 1, len(rows)).astype(np.float32))
    mapped = score_map(scores, pairs_i, pairs_j)
    assert mapped.dtype == torch.float32
    np.testing.assert_array_equal(mapped.numpy(), _calibrated(
        fitted, scores.double().numpy(), left[rows], right[cols]).astype(np.float32))


def test_floors_are_tight_to_a_grid_step(rng):
    fitted = _fitted(rng, "baseline", "beta")
    score_map = ScoreMap(fitted, np.zeros(3, int), np.zeros(3, int))
    raw = np.linspace(-1, 1, 200001)
    mapped = _calibrated(fitted, raw, np.zeros(len(raw), int), np.zeros(len(raw), int))
    for cut in (0.01, 0.3, 0.9):
        exact = raw[np.argmax(mapped >= cut)]  # the smallest raw score reaching the cut
        assert exact - 2 * 2 / 2048 <= score_map.floors(cut)[0] < exact


def test_a_binning_calibration_is_refused(rng):
    with pytest.raises(MfftoolsError, match="binning calibrator is not monotone"):
        ScoreMap(_fitted(rng, "faircal", "binning"), np.zeros(2, int), np.zeros(2, int))


@pytest.mark.parametrize("method, calibrator, separable", CASES)
def test_bounds_of_many_rows_follow_the_definition(rng, method, calibrator, separable):
    """Per row, the floor, ceiling and lower bound the module docstring defines from the
    envelopes of the row's key over the column keys, on the grid, computed densely here."""
    from mfftools.calibration.score_map import _ulp32

    fitted = _fitted(rng, method, calibrator, separable)
    left, right = rng.integers(0, N_KEYS, 40), np.array([0, 2, 3, 3])
    left[:3] = -1  # a key the calibration never saw
    score_map = ScoreMap(fitted, left, right)
    grid = score_map.grid
    maps = {a: np.stack([apply_method(fitted, PairKeys(grid, np.full(len(grid), a),
                                                       np.full(len(grid), b))).confidence
                         for b in np.unique(right)]) for a in np.unique(left)}
    rows = rng.integers(0, len(left), 500)
    # values on the envelopes themselves, give or take the slack: ties at the comparisons
    points = rng.integers(0, len(grid), 500)
    upper_at = np.array([maps[left[r]].max(axis=0)[m] for r, m in zip(rows, points)])
    lower_at = np.array([maps[left[r]].min(axis=0)[m] for r, m in zip(rows, points)])
    values = np.r_[rng.uniform(-0.05, 1.05, 280), np.zeros(10), np.ones(10),
                   (upper_at + _ulp32(upper_at))[300:400], (lower_at - _ulp32(lower_at))[400:]]
    floors = score_map.floors(values, torch.from_numpy(rows))
    ceilings = score_map.ceilings(values, torch.from_numpy(rows))
    raw = np.r_[rng.uniform(-1.2, 1.1, 490), -1.0, 1.0, grid[rng.integers(0, len(grid), 8)]]
    lowers = score_map.lowers(raw, rows)
    for k, row in enumerate(rows):
        upper, lower = maps[left[row]].max(axis=0), maps[left[row]].min(axis=0)
        reached = np.flatnonzero(upper >= values[k] - _ulp32(values[k]))
        expected = (1.0 if not len(reached) else -np.inf if reached[0] == 0
                    else grid[reached[0] - 1])
        assert floors[k] == expected
        above = np.flatnonzero(lower > values[k] + _ulp32(values[k]))
        assert ceilings[k] == (grid[above[0]] if len(above) else np.inf)
        point = max(np.searchsorted(grid, raw[k], side="right") - 1, 0)
        assert lowers[k] == lower[point] - _ulp32(lower[point])
