"""Confidence intervals by bootstrap over identities, for the instance statistics.

The instance protocol's statistics are means and standard deviations over identities, so the
resampling unit is the identity: draw as many identities as there are, with replacement, and
recompute. Overall statistics resample all identities; a group's statistics resample that group's
identities. Identities without a genuine pair (TPR NaN) are left out of the TPR statistics, as
the protocol does. The gap between the groups with the highest and the lowest mean (chosen on the
full sample) gets an interval too: when it excludes 0, the gap is more than sampling noise.
"""
from dataclasses import dataclass

import numpy as np

# Resamples drawn at once: bounds memory to CHUNK x identities floats.
CHUNK = 100


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


def bootstrap_instance(columns, group_names, n_resamples=1000, seed=0, confidence=0.95):
    """Percentile intervals for the instance mean/std of TPR and FPR, overall and per group.

    Parameters
    ----------
    columns : dict of numpy arrays "group" (index into group_names), "tpr" (NaN = no genuine
        pair) and "fpr", one row per identity, as `results.per_identity` gives them.

    Returns {"overall": {stat: Interval}, "groups": {name: {stat: Interval}},
    "gap": {"tpr_mean": Interval, "fpr_mean": Interval}} where stat is tpr_mean, tpr_std,
    fpr_mean, fpr_std; a statistic with no identity to resample is missing, and so is a gap with
    fewer than two groups to compare.
    """
    if n_resamples < 1:
        raise ValueError("n_resamples must be at least 1")
    rng = np.random.default_rng(seed)
    tail = 100 * (1 - confidence) / 2

    def interval(samples):
        low, high = np.percentile(samples, [tail, 100 - tail])
        return Interval(float(low), float(high))

    def resampled(values):
        values = values[~np.isnan(values)]
        if len(values) == 0:
            return None
        means, stds = [], []
        for start in range(0, n_resamples, CHUNK):
            count = min(CHUNK, n_resamples - start)
            sample = values[rng.integers(0, len(values), size=(count, len(values)))]
            means.append(sample.mean(axis=1))
            stds.append(sample.std(axis=1))
        return np.concatenate(means), np.concatenate(stds)

    def stats(rows):
        out, group_means = {}, {}
        for rate in ("tpr", "fpr"):
            values = columns[rate][rows]
            samples = resampled(values)
            if samples is not None:
                out[f"{rate}_mean"], out[f"{rate}_std"] = interval(samples[0]), interval(samples[1])
                group_means[rate] = (np.nanmean(values), samples[0])
        return out, group_means

    overall, _ = stats(np.ones(len(columns["group"]), dtype=bool))
    groups, means_by_rate = {}, {"tpr": [], "fpr": []}
    for index, name in enumerate(group_names):
        groups[name], means = stats(columns["group"] == index)
        for rate, estimate_and_samples in means.items():
            means_by_rate[rate].append(estimate_and_samples)
    gap = {}
    for rate, groups_means in means_by_rate.items():
        if len(groups_means) >= 2:
            estimates = [estimate for estimate, _ in groups_means]
            highest = groups_means[int(np.argmax(estimates))][1]
            lowest = groups_means[int(np.argmin(estimates))][1]
            gap[f"{rate}_mean"] = interval(highest - lowest)
    return {"overall": overall, "groups": groups, "gap": gap}
