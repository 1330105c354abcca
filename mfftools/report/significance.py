"""Whether the groups' instance means differ by more than sampling noise, over identities.

Two views, both over per-identity TPR (identities without a genuine pair left out) and,
separately, per-identity FPR:

- a permutation test: the group labels are shuffled across identities (each group keeps its
  number of identities) and the statistic, the gap between the highest and the lowest group
  mean, recomputed; p = (1 + shuffles whose gap is at least the observed one) / (1 + shuffles).
  A small p says the group means differ more than a chance assignment of identities to groups
  would make them;
- for each group, whether its bootstrap interval of the mean (`bootstrap.bootstrap_instance`)
  excludes the mean over the other groups' identities, pooled.
"""
from dataclasses import dataclass

import numpy as np

# Shuffles drawn at once: bounds memory to CHUNK x identities floats.
CHUNK = 100
# The permutation test's random stream, apart from the bootstrap's (both seeded by --seed).
STREAM = 1
# A shuffle that rebuilds the observed groups reaches the observed gap, whatever the order in
# which its sums were taken: gaps within this relative margin count as equal.
RELATIVE_TIE = 1e-12


@dataclass(frozen=True)
class PermutationTest:
    observed: float  # the gap between the highest and the lowest group mean
    p_value: float
    n_resamples: int


def permutation_test(columns, n_resamples=1000, seed=0):
    """{"tpr_mean": PermutationTest, "fpr_mean": PermutationTest} of per-identity columns (as
    `results.per_identity` gives them); a rate with fewer than two groups to compare is missing.

    Shuffle k orders the identities by `rng.random(n).argsort()`, rng seeded by (seed, STREAM),
    TPR's shuffles drawn first.
    """
    if n_resamples < 1:
        raise ValueError("n_resamples must be at least 1")
    rng = np.random.default_rng((seed, STREAM))
    tests = {}
    for rate in ("tpr", "fpr"):
        values = columns[rate]
        defined = ~np.isnan(values)
        values = values[defined]
        present, labels = np.unique(columns["group"][defined], return_inverse=True)
        if len(present) < 2:
            continue
        observed = _gaps(values, labels[None, :], len(present))[0]
        reached = 0
        for start in range(0, n_resamples, CHUNK):
            count = min(CHUNK, n_resamples - start)
            shuffled = labels[rng.random((count, len(values))).argsort(axis=1)]
            gaps = _gaps(values, shuffled, len(present))
            reached += int(np.count_nonzero(gaps >= observed - RELATIVE_TIE * abs(observed)))
        tests[f"{rate}_mean"] = PermutationTest(
            observed=float(observed), p_value=(1 + reached) / (1 + n_resamples),
            n_resamples=n_resamples)
    return tests


def _gaps(values, labels, n_groups):
    """Highest minus lowest group mean of `values` for each row of group labels [rows, n]."""
    rows = len(labels)
    flat = (np.arange(rows)[:, None] * n_groups + labels).ravel()
    sums = np.bincount(flat, weights=np.broadcast_to(values, labels.shape).ravel(),
                       minlength=rows * n_groups).reshape(rows, n_groups)
    means = sums / np.bincount(labels[0], minlength=n_groups)
    return means.max(axis=1) - means.min(axis=1)


def excludes_others(columns, group_names, intervals):
    """{group: {"tpr_mean": bool, "fpr_mean": bool}}: whether the group's bootstrap interval of
    the mean (`intervals`, `bootstrap_instance` output) excludes the mean over the identities of
    the other groups. A group without an interval, or without other identities, is missing."""
    found = {}
    for index, name in enumerate(group_names):
        own = intervals["groups"].get(name, {})
        for rate in ("tpr", "fpr"):
            interval = own.get(f"{rate}_mean")
            others = columns[rate][columns["group"] != index]
            others = others[~np.isnan(others)]
            if interval is None or not len(others):
                continue
            pooled = others.mean()
            found.setdefault(name, {})[f"{rate}_mean"] = bool(
                pooled < interval.low or pooled > interval.high)
    return found
