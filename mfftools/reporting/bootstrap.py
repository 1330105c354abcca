"""Confidence intervals by bootstrap over identities, for the instance statistics.

The instance protocol's statistics are means and standard deviations over identities, so the
resampling unit is the identity. Each resample draws, within every group, as many of the group's
identities as it has, with replacement (the group sizes are the design, held fixed), and
recomputes every statistic, overall and per group, from the same draw.

The threshold is estimated from the same data, so where the results entry carries its `ladder`
(per-identity accepted pairs at exact thresholds for FPR levels from 0.5x to 2x the target) each
resample chooses its own threshold: its FPR at each ladder threshold is its accepted impostor
pairs over its impostor pairs, and its statistics are taken where that FPR equals the target,
linearly interpolated (in FPR) between the two ladder thresholds around it. A resample whose FPR
does not cross the target within the ladder takes the nearest end (counted in `n_clamped`). These
intervals are conditional on the identities' images (identities are resampled, not the images
within them) and on the impostor pairs each identity has against the full set. Without a ladder
(older files) the threshold is held at the value chosen on all the data, and the intervals are
conditional on it too.

Intervals are percentile intervals, except the gap between the groups with the highest and the
lowest mean: the groups are picked after looking at the data, so its interval is simultaneous over
every pair of groups (studentised maximum over pairs), and covers the picked pair's difference
whichever it is (with groups tied at an end, the widest of their pairs). It is a description of
uncertainty, not a test: significance statements come from the permutation tests
(`significance`).
"""
from dataclasses import dataclass

import numpy as np

# Resamples drawn at once: bounds memory to CHUNK x identities floats.
CHUNK = 100
RATES = ("tpr", "fpr")


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


@dataclass(frozen=True)
class Ladder:
    """Per-identity rates at the thresholds of a results entry's ladder (one column per level,
    levels in increasing FPR), and what a resample's FPR is computed from."""

    target: float
    levels: np.ndarray  # [L] the FPR of each level on all the data
    tpr: np.ndarray  # [n, L], NaN where the identity has no genuine pair
    fpr: np.ndarray  # [n, L]
    impostor_accepted: np.ndarray  # [n, L] accepted impostor pairs with the probe in the identity
    impostor_pairs: np.ndarray  # [n] impostor pairs with the probe in the identity


CONDITIONAL_RECHOSEN = (
    "the threshold chosen again in each resample (at the target FPR of the resample, from the "
    "entry's FPR ladder); conditional on each identity's images and its impostor pairs against "
    "the full set; group sizes fixed")
CONDITIONAL_FIXED = (
    "the threshold held at the value chosen on all the data (the file has no FPR ladder), and "
    "conditional on it; group sizes fixed")


def bootstrap_instance(columns, group_names, n_resamples=1000, seed=0, confidence=0.95,
                       ladder=None):
    """Intervals for the instance mean/std of TPR and FPR, overall and per group, and for the
    gap between the highest and the lowest group mean.

    Parameters
    ----------
    columns : dict of numpy arrays "group" (index into group_names), "tpr" (NaN = no genuine
        pair) and "fpr", one row per identity, as `results.per_identity` gives them (the rates at
        the entry's threshold, used when there is no ladder).
    ladder : a `Ladder` aligned with the same identities, to choose the threshold again.

    Returns {"overall": {stat: Interval}, "groups": {name: {stat: Interval}},
    "gap": {"tpr_mean": Interval, "fpr_mean": Interval}, "rechosen": bool, "conditional_on": str,
    "n_clamped": int} where stat is tpr_mean, tpr_std, fpr_mean, fpr_std; a statistic with no
    identity to resample is missing, and so is a gap with fewer than two groups to compare.
    """
    if n_resamples < 1:
        raise ValueError("n_resamples must be at least 1")
    group = np.asarray(columns["group"])
    if ladder is None:
        rates = _Rates(tpr=columns["tpr"][:, None], fpr=columns["fpr"][:, None])
    else:
        rates = _Rates(tpr=ladder.tpr, fpr=ladder.fpr)
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(group == g) for g in range(len(group_names))]
    full = _statistics(np.ones((1, len(group))), rates, members, ladder)
    samples, n_clamped = [], 0
    for start in range(0, n_resamples, CHUNK):
        weights = _stratified_weights(rng, members, len(group), min(CHUNK, n_resamples - start))
        found = _statistics(weights, rates, members, ladder)
        n_clamped += found.pop("n_clamped")
        samples.append(found)
    tail = 100 * (1 - confidence) / 2
    result = {"overall": {}, "groups": {name: {} for name in group_names}, "gap": {},
              "rechosen": ladder is not None,
              "conditional_on": CONDITIONAL_RECHOSEN if ladder is not None else CONDITIONAL_FIXED,
              "n_clamped": n_clamped}
    for key in full:
        if key == "n_clamped":
            continue
        draws = np.concatenate([sample[key] for sample in samples])  # [B, 1 + groups]
        for column in range(draws.shape[1]):
            interval = _percentile(draws[:, column], tail)
            if interval is None:
                continue
            if column == 0:
                result["overall"][key] = interval
            else:
                result["groups"][group_names[column - 1]][key] = interval
        if key.endswith("_mean"):
            gap = _simultaneous_gap(full[key][0, 1:], draws[:, 1:], confidence)
            if gap is not None:
                result["gap"][key] = gap
    return result


@dataclass(frozen=True)
class _Rates:
    tpr: np.ndarray  # [n, L]
    fpr: np.ndarray  # [n, L]


def _stratified_weights(rng, members, n, count):
    """[count, n] draw counts: each group's identities drawn as many times as it has them."""
    weights = np.zeros((count, n))
    for rows in members:
        if not len(rows):
            continue
        draws = rng.integers(0, len(rows), size=(count, len(rows)))
        flat = (np.arange(count)[:, None] * len(rows) + draws).ravel()
        weights[:, rows] = np.bincount(flat, minlength=count * len(rows)).reshape(count,
                                                                                 len(rows))
    return weights


def _statistics(weights, rates, members, ladder):
    """{stat: [rows, 1 + groups]} (overall first) for each row of weights, at the target's
    threshold re-chosen in each row (with a ladder) or at the fixed one; and "n_clamped"."""
    mix, n_clamped = _level_mix(weights, ladder)
    found = {"n_clamped": n_clamped}
    for rate in RATES:
        values = getattr(rates, rate)
        defined = ~np.isnan(values[:, 0])
        filled = np.where(np.isnan(values), 0.0, values)
        means, stds = [], []
        for rows in [np.arange(len(defined))] + members:
            used = weights[:, rows] * defined[rows]
            total = used.sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = (used @ filled[rows]) / total[:, None]  # [rows, L]
                square = (used @ filled[rows] ** 2) / total[:, None]
            std = np.sqrt(np.clip(square - mean ** 2, 0, None))
            means.append((mix * mean).sum(axis=1))
            stds.append((mix * std).sum(axis=1))
        found[f"{rate}_mean"] = np.stack(means, axis=1)
        found[f"{rate}_std"] = np.stack(stds, axis=1)
    return found


def _level_mix(weights, ladder):
    """[rows, L] weights of the ladder levels at which each row's FPR equals the target (two
    neighbouring levels, linear in FPR), and how many rows had to take an end of the ladder."""
    if ladder is None:
        return np.ones((len(weights), 1)), 0
    fpr = (weights @ ladder.impostor_accepted) / (weights @ ladder.impostor_pairs)[:, None]
    n_levels = fpr.shape[1]
    below = np.count_nonzero(fpr <= ladder.target, axis=1)  # FPR rises with the level
    mix = np.zeros_like(fpr)
    rows = np.arange(len(fpr))
    inside = (below > 0) & (below < n_levels)
    low = np.clip(below - 1, 0, n_levels - 1)
    high = np.clip(below, 0, n_levels - 1)
    step = fpr[rows, high] - fpr[rows, low]
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(inside & (step > 0), (ladder.target - fpr[rows, low]) / step, 0.0)
    mix[rows, low] += 1 - share
    mix[rows, high] += share
    clamped = ~inside & ~(fpr[rows, -1] == ladder.target)
    return mix, int(np.count_nonzero(clamped))


def _percentile(samples, tail):
    samples = samples[~np.isnan(samples)]
    if not len(samples):
        return None
    low, high = np.percentile(samples, [tail, 100 - tail])
    return Interval(float(low), float(high))


def _simultaneous_gap(estimates, draws, confidence):
    """The interval of (highest - lowest) group mean, simultaneous over every pair of groups:
    each pair's difference +- c times its bootstrap standard error, c the `confidence` quantile of
    the largest studentised deviation over pairs. None with fewer than two groups."""
    present = np.flatnonzero(~np.isnan(estimates) & ~np.isnan(draws).all(axis=0))
    if len(present) < 2:
        return None
    estimates, draws = estimates[present], draws[:, present]
    first, second = np.triu_indices(len(present), k=1)
    differences = draws[:, first] - draws[:, second]
    centre = estimates[first] - estimates[second]
    error = np.nanstd(differences, axis=0)
    varying = error > 0
    if varying.any():
        deviations = np.abs(differences[:, varying] - centre[varying]) / error[varying]
        critical = float(np.nanpercentile(np.nanmax(deviations, axis=1), 100 * confidence))
    else:
        critical = 0.0
    # Groups tied at either end: the widest of their pairs' intervals.
    highest = estimates == estimates.max()
    lowest = estimates == estimates.min()
    ends = (highest[first] & lowest[second]) | (lowest[first] & highest[second])
    width = critical * error[ends].max()
    gap = estimates.max() - estimates.min()
    return Interval(float(gap - width), float(gap + width))
