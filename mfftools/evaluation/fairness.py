"""Fairness measures across demographic groups (beyond the paper).

Inputs are per-group rates (FMR, FNMR, or errors), one value per group. A measure that is
undefined for the given rates (fewer than two groups, a zero mean, a zero minimum) is None, which
the results file writes as null: with one group there is nothing to compare.
"""
import math

import numpy as np

DEFAULT_ALPHA = 0.5


def _rates(values):
    return np.asarray([float(value) for value in values], dtype=np.float64)


def _spread(values):
    values = _rates(values)
    return float(values.max() - values.min()) if len(values) >= 2 else None


def fdr(fmr, fnmr, alpha=DEFAULT_ALPHA):
    """Fairness Discrepancy Rate: 1 - (alpha max|FMR_i - FMR_j| + (1 - alpha) max|FNMR_i - FNMR_j|)."""
    fmr_spread, fnmr_spread = _spread(fmr), _spread(fnmr)
    if fmr_spread is None or fnmr_spread is None:
        return None
    return 1.0 - (alpha * fmr_spread + (1.0 - alpha) * fnmr_spread)


def gini(values):
    """Gini coefficient with the small-sample correction: D/(D-1) sum|x_i - x_j| / (2 D^2 mean).

    0 means all groups equal; undefined (None) for fewer than two groups or a zero mean.
    """
    values = _rates(values)
    count = len(values)
    if count < 2 or values.mean() == 0.0:
        return None
    differences = np.abs(values[:, None] - values[None, :]).sum()
    return float(count / (count - 1) * differences / (2 * count**2 * values.mean()))


def garbe(fmr, fnmr, alpha=DEFAULT_ALPHA):
    """Gini Aggregation Rate for Biometric Equitability: alpha G(FMR) + (1 - alpha) G(FNMR)."""
    fmr_gini, fnmr_gini = gini(fmr), gini(fnmr)
    if fmr_gini is None or fnmr_gini is None:
        return None
    return alpha * fmr_gini + (1.0 - alpha) * fnmr_gini


def max_geomean(values):
    """Largest rate over the geometric mean of the rates (1 means parity); None with fewer than
    two groups or a rate of 0."""
    values = _rates(values)
    if len(values) < 2 or values.min() <= 0.0:
        return None
    return float(values.max() / math.exp(np.log(values).mean()))


def ser(errors):
    """Skewed Error Ratio: largest error over smallest error across groups; None with fewer than
    two groups or an error of 0."""
    errors = _rates(errors)
    if len(errors) < 2 or errors.min() <= 0.0:
        return None
    return float(errors.max() / errors.min())


def group_fairness(fmr, fnmr, alpha=DEFAULT_ALPHA):
    """All measures at one threshold, keyed as in the results file."""
    return {
        "fdr": fdr(fmr, fnmr, alpha),
        "fpd": gini(fmr),
        "fnd": gini(fnmr),
        "garbe": garbe(fmr, fnmr, alpha),
        "fmr_max_geomean": max_geomean(fmr),
        "fnmr_max_geomean": max_geomean(fnmr),
    }
