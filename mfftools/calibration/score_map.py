"""A calibration as the evaluation engine sees it: the score of a pair is mapped, tile by tile.

The calibrated score of the pair (i, j) is c = float32(p), p the calibration's confidence for the
canonical score s of the pair and the keys (cluster or group) of its two images: c depends on s,
key_i and key_j only. For every pair of keys (a, b) the map s -> G_ab(s) = p is non-decreasing
(beta and isotonic calibrators, and the weighted means and shifts the methods build on them).

Screening stays exact without scoring any cell it can rule out: with the screened score s~ of a
cell within E of s (the engine's proven bound), the engine asks this map for raw-score bounds in
place of `cut - E` and `t + E`:
  * floor(cut): a raw value s0 with G_ab(s) < cut for every s <= s0 and every key pair present,
    so a pair whose calibrated score reaches `cut` has s > s0 and s~ > s0 - E;
  * ceiling(t): a raw value s1 with G_ab(s) > t for every s >= s1, so s~ >= s1 + E means the
    pair's calibrated score is above t;
  * lower(v): a lower bound of the calibrated score of a pair whose raw score is at least v.
They come from two envelopes tabulated once on a grid of raw scores -1 = g_0 < ... < g_M = 1,
for each key a of a row: U_a(g_m) = max over the column keys b present of G_ab(g_m), and
L_a(g_m) = min of the same. Since each G_ab is non-decreasing, so are U_a and L_a, and
  floor(cut) = g_{m-1}, m the first grid point with U_a(g_m) >= cut - u(cut),
  ceiling(t) = g_m, m the first grid point with L_a(g_m) > t + u(t),
  lower(v) = L_a(g_m) - u, g_m the last grid point <= v (g_0 when v < -1: s >= -1 always),
where u(x) is a float32 unit in the last place of x plus 1e-12, which covers the rounding of p to
float32 and the last bits of the float64 evaluation; without a row's key, the envelopes over
all row keys are used. A wider grid step only lets more cells be rescored, never fewer than
needed; 2,048 steps of 0.001 keep the floors within 0.001 of the exact preimages. This needs no
bound on the slope of G: a map with slope at most L would allow s~ >= G^-1(cut) - E, the same
cells as a calibrated screening bound L x E, and the preimage is never looser.

Binning calibrations are not monotone (a bin's genuine fraction need not exceed the one below)
and are refused here.
"""
import math

import numpy as np
import torch

from mfftools.calibration.methods import PairKeys, apply_method
from mfftools.errors import MfftoolsError

GRID_STEPS = 2048
_SLACK = 1e-12


def _ulp32(values):
    """A float32 unit in the last place of each value, plus a little slack."""
    values = np.abs(np.asarray(values, dtype=np.float64))
    spacing = np.spacing(values.astype(np.float32)).astype(np.float64)
    return spacing + _SLACK


class ScoreMap:
    """The calibrated scores of pairs of left rows (keys `left_keys`) and right rows
    (`right_keys`): the engine's Scorer calls it (module docstring)."""

    def __init__(self, fitted, left_keys, right_keys):
        if fitted.calibrator == "binning":
            raise MfftoolsError(
                f"a {fitted.method} calibration with the binning calibrator is not monotone in "
                "the score, so it cannot screen pairs tile by tile; fit it with --calibrator beta "
                "or isotonic for inst-eval and ident-eval"
            )
        self.fitted = fitted
        self.left_keys = np.asarray(left_keys, dtype=np.int64)
        self.right_keys = np.asarray(right_keys, dtype=np.int64)
        self.grid = np.linspace(-1.0, 1.0, GRID_STEPS + 1)
        self._row_keys, self._upper, self._lower = self._envelopes()
        self._lower_all = self._lower.min(axis=0)
        # Running maxima: the first grid point where an envelope reaches a value is the first
        # where its running maximum does, and those are sorted (a binary search finds it).
        self._rising_upper = np.maximum.accumulate(self._upper, axis=1)
        self._rising_lower = np.maximum.accumulate(self._lower, axis=1)
        self._rising_upper_all = self._rising_upper.max(axis=0)
        self._rising_lower_all = np.maximum.accumulate(self._lower_all)

    def _envelopes(self):
        """(row keys, U [A, M+1], L [A, M+1]): max and min over the column keys present of the
        map of each row key, on the grid."""
        row_keys = np.unique(self.left_keys)
        column_keys = np.unique(self.right_keys)
        if self.fitted.method == "faircal":
            values = self._faircal_values
        elif self.fitted.method == "fsn":
            values = self._fsn_values
        else:
            values = self._values
        upper = np.empty((len(row_keys), len(self.grid)))
        lower = np.empty_like(upper)
        for index, key in enumerate(row_keys):
            found = values(key, column_keys)
            upper[index] = found.max(axis=0)
            lower[index] = found.min(axis=0)
        return row_keys, upper, lower

    def _values(self, key, column_keys):
        """G_ab on the grid for a = key and each b of `column_keys` ([B, M+1])."""
        scores = np.tile(self.grid, len(column_keys))
        keys = PairKeys(scores, np.full(len(scores), key), np.repeat(column_keys, len(self.grid)))
        return apply_method(self.fitted, keys).confidence.reshape(len(column_keys), -1)

    def _fsn_values(self, key, column_keys):
        """fsn's G_ab(s) = C'(s - (d_a + d_b) / 2) rises as d_b falls: the smallest and largest
        shift of the column keys give the envelopes."""
        shift = self.fitted.tables["shift"][column_keys]
        extremes = column_keys[[int(np.argmin(shift)), int(np.argmax(shift))]]
        return self._values(key, extremes)

    def _faircal_values(self, key, column_keys):
        """faircal's G_ab = (n_a C_a + n_b C_b) / (n_a + n_b), from each calibrator on the grid
        (computed once), C_0 where n_a + n_b = 0."""
        if not hasattr(self, "_calibrated_grid"):
            bank = self.fitted.bank
            members = np.arange(len(bank))
            self._calibrated_grid = bank.predict(
                np.tile(self.grid, len(members)), np.repeat(members, len(self.grid))
            ).reshape(len(members), -1)
        member, weight = self.fitted.tables["member"], self.fitted.tables["weight"]
        grid_values = self._calibrated_grid
        total = weight[key] + weight[column_keys]
        mixed = (weight[key] * grid_values[member[key]][None, :]
                 + weight[column_keys][:, None] * grid_values[member[column_keys]])
        found = np.where(total[:, None] > 0, mixed / np.maximum(total, 1e-300)[:, None],
                         grid_values[0][None, :])
        return found

    def __call__(self, scores, rows_i, rows_j):
        """Calibrated scores (float32, on the scores' device) of pairs with canonical `scores`."""
        keys_i = self.left_keys[rows_i.cpu().numpy()]
        keys_j = self.right_keys[rows_j.cpu().numpy()]
        confidence = apply_method(self.fitted, PairKeys(scores.cpu().double().numpy(), keys_i,
                                                        keys_j)).confidence
        return torch.from_numpy(confidence.astype(np.float32)).to(scores.device)

    def _slots(self, rows):
        """The envelope (row of the tables) of each row of `rows`, by its key."""
        keys = self.left_keys[np.asarray(rows.cpu() if torch.is_tensor(rows) else rows)]
        return np.searchsorted(self._row_keys, keys)

    def _first(self, rising, rising_all, values, rows, side):
        """Per value: the first grid point whose envelope (of its row's key, or over every row
        without rows) is at least the value (`side` "left") or above it ("right");
        len(grid) where none is. One binary search per value, on the running maxima: nothing
        of size rows x grid is built."""
        if rows is None:
            return np.searchsorted(rising_all, values, side=side)
        slots = self._slots(rows)
        first = np.empty(len(values), dtype=np.int64)
        for slot in np.unique(slots):
            chosen = slots == slot
            first[chosen] = np.searchsorted(rising[slot], values[chosen], side=side)
        return first

    def floors(self, cuts, rows=None):
        """Raw floors (float64 numpy, one per cut; module docstring); -inf where the lowest grid
        point already reaches the cut."""
        cuts = np.atleast_1d(np.asarray(cuts, dtype=np.float64))
        first = self._first(self._rising_upper, self._rising_upper_all, cuts - _ulp32(cuts),
                            rows, "left")
        return np.where(first == 0, -math.inf, self.grid[np.maximum(first - 1, 0)])

    def ceilings(self, thresholds, rows=None):
        """Raw ceilings (float64 numpy, one per threshold); +inf where no grid point is surely
        above the threshold."""
        thresholds = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
        first = self._first(self._rising_lower, self._rising_lower_all,
                            thresholds + _ulp32(thresholds), rows, "right")
        return np.where(first < len(self.grid),
                        self.grid[np.minimum(first, len(self.grid) - 1)], math.inf)

    def lowers(self, values, rows=None):
        """Lower bounds (float64 numpy) of the calibrated score of a pair whose raw score is at
        least each value."""
        values = np.atleast_1d(np.asarray(values, dtype=np.float64))
        point = np.clip(np.searchsorted(self.grid, values, side="right") - 1, 0,
                        len(self.grid) - 1)
        found = (self._lower_all[point] if rows is None
                 else self._lower[self._slots(rows), point])
        return found - _ulp32(found)

    def pair_lowers(self, values, rows_i, rows_j):
        """Lower bounds of the calibrated scores of these pairs, each with a raw score of at least
        its value: the pair's own map at that value (clipped to [-1, 1])."""
        values = np.clip(np.asarray(values, dtype=np.float64), -1.0, 1.0)
        keys = PairKeys(values, self.left_keys[np.asarray(rows_i.cpu())],
                        self.right_keys[np.asarray(rows_j.cpu())])
        found = apply_method(self.fitted, keys).confidence
        return found - _ulp32(found)
