"""Permutation tests over identities: the report's significance statements rest on them.

Every test here is exact under its null, whatever the number of groups: the p-value of B random
rearrangements is p = (1 + rearrangements whose statistic reaches the observed one) / (1 + B),
never below 1 / (1 + B), and P(p <= alpha) <= alpha when the null holds.

- Groups (`group_tests`): per-identity TPR (identities without a genuine pair left out) and,
  separately, per-identity FPR, at the entry's threshold. The group labels are shuffled across
  identities, each group keeping its number of identities. The null is that the labels are
  exchangeable (identities assigned to groups at random). The global threshold is set over all
  impostor pairs whatever the labels, so holding it fixed is exact here. Two statistics from the
  same shuffles: the range (highest minus lowest group mean: "the groups differ"), and for each
  group the distance of its mean from the mean of the other groups' identities pooled ("this
  group differs from the rest"), two-sided.
- Models (`paired_test`): two models' per-identity values on the same identities; each
  identity's pair of values is swapped at random (the null: for every identity the two models
  are exchangeable). Statistics: the difference of the std over identities, and the difference
  of the range of group means. Conditional on each model's threshold.
- `holm`: Holm's step-down adjustment, which keeps the chance of any false statement in a family
  at most alpha under any dependence between the tests.
"""
from dataclasses import dataclass

import numpy as np

# Rearrangements drawn at once: bounds memory to CHUNK x identities values.
CHUNK = 100
# The permutation tests' random stream, apart from the bootstrap's (both seeded by --seed).
STREAM = 1
# A rearrangement that rebuilds the observed data reaches the observed statistic, whatever the
# order in which its sums were taken: statistics within this relative margin count as equal.
RELATIVE_TIE = 1e-12
RATES = ("tpr", "fpr")


@dataclass(frozen=True)
class PermutationTest:
    observed: float  # the statistic on the data as labelled
    p_value: float  # not adjusted for multiplicity
    n_resamples: int


@dataclass(frozen=True)
class GroupTests:
    """The tests of one rate's group means: `range` ("the groups differ") and, per group index,
    `versus_rest` (observed: the group's mean minus the other groups' pooled mean)."""

    range: PermutationTest
    versus_rest: dict
    means: dict  # group index -> (the group's mean, the pooled mean of the others)
    n_identities: int


def group_tests(columns, n_resamples=1000, seed=0):
    """{"tpr_mean": GroupTests, "fpr_mean": GroupTests} of per-identity columns (as
    `results.per_identity` gives them); a rate with fewer than two groups to compare is missing.

    Shuffles are `rng.permuted` rows of the labels, rng seeded by (seed, STREAM), TPR's drawn
    first.
    """
    if n_resamples < 1:
        raise ValueError("n_resamples must be at least 1")
    rng = np.random.default_rng((seed, STREAM))
    tests = {}
    for rate in RATES:
        values = columns[rate]
        defined = ~np.isnan(values)
        values = values[defined]
        present, labels = np.unique(columns["group"][defined], return_inverse=True)
        if len(present) < 2:
            continue
        sizes = np.bincount(labels, minlength=len(present))
        observed_means = _group_means(values, labels[None, :], sizes)
        observed_range = _range(observed_means)[0]
        observed_rest = _from_rest(observed_means, values.sum(), sizes)[0]
        reached_range = 0
        reached_rest = np.zeros(len(present), dtype=np.int64)
        for start in range(0, n_resamples, CHUNK):
            count = min(CHUNK, n_resamples - start)
            shuffled = rng.permuted(np.broadcast_to(labels, (count, len(values))), axis=1)
            means = _group_means(values, shuffled, sizes)
            reached_range += int(np.count_nonzero(_reaches(_range(means), observed_range)))
            rest = np.abs(_from_rest(means, values.sum(), sizes))
            reached_rest += np.count_nonzero(_reaches(rest, np.abs(observed_rest)), axis=0)
        tests[f"{rate}_mean"] = GroupTests(
            range=PermutationTest(float(observed_range), _p(reached_range, n_resamples),
                                  n_resamples),
            versus_rest={
                int(group): PermutationTest(float(observed_rest[k]),
                                            _p(int(reached_rest[k]), n_resamples), n_resamples)
                for k, group in enumerate(present)
            },
            means={
                int(group): (float(observed_means[0, k]),
                             float((values.sum() - values[labels == k].sum())
                                   / (len(values) - sizes[k])))
                for k, group in enumerate(present)
            },
            n_identities=int(len(values)),
        )
    return tests


def _p(reached, n_resamples):
    return (1 + reached) / (1 + n_resamples)


def _reaches(statistics, observed):
    """Whether each statistic is at least the observed one, up to RELATIVE_TIE."""
    return statistics >= observed - RELATIVE_TIE * np.abs(observed)


def _group_means(values, labels, sizes):
    """Group means [rows, groups] of `values` for each row of group labels [rows, n]."""
    rows, n_groups = len(labels), len(sizes)
    flat = (np.arange(rows)[:, None] * n_groups + labels).ravel()
    sums = np.bincount(flat, weights=np.broadcast_to(values, labels.shape).ravel(),
                       minlength=rows * n_groups).reshape(rows, n_groups)
    return sums / sizes


def _range(means):
    return means.max(axis=1) - means.min(axis=1)


def _from_rest(means, total, sizes):
    """Each group's mean minus the mean of the other groups' values pooled, [rows, groups]."""
    rest = (total - means * sizes) / (sizes.sum() - sizes)
    return means - rest


@dataclass(frozen=True)
class PairedTest:
    """A paired permutation test of two models on the same identities: `observed` = statistic
    of the first model minus that of the second."""

    first: float
    second: float
    observed: float
    p_value: float
    n_resamples: int
    n_identities: int


PAIRED_STATISTICS = ("tpr_std", "tpr_range")


def paired_test(first, second, group, statistic, n_resamples=1000, seed=0):
    """Paired permutation test of `statistic` (one of PAIRED_STATISTICS) between two models'
    per-identity TPRs `first` and `second` (aligned; NaN where an identity has no genuine pair in
    either, left out), `group` the identities' group indices. Returns a PairedTest, or None when
    the statistic is undefined (no identity; fewer than two groups for a range).

    Swap k exchanges the two values of each identity where `rng.random((k, n)) < 0.5`.
    """
    if statistic not in PAIRED_STATISTICS:
        raise ValueError(f"unknown statistic {statistic!r}")
    if n_resamples < 1:
        raise ValueError("n_resamples must be at least 1")
    defined = ~(np.isnan(first) | np.isnan(second))
    first, second = first[defined], second[defined]
    present, labels = np.unique(group[defined], return_inverse=True)
    if not len(first) or (statistic == "tpr_range" and len(present) < 2):
        return None
    sizes = np.bincount(labels, minlength=len(present))

    def measure(values):
        if statistic == "tpr_std":
            return values.std(axis=1)
        return _range(_group_means_rows(values, labels, sizes))

    a, b = measure(first[None, :])[0], measure(second[None, :])[0]
    observed = a - b
    rng = np.random.default_rng((seed, STREAM))
    reached = 0
    for start in range(0, n_resamples, CHUNK):
        count = min(CHUNK, n_resamples - start)
        swap = rng.random((count, len(first))) < 0.5
        differences = measure(np.where(swap, second, first)) - measure(np.where(swap, first,
                                                                                second))
        reached += int(np.count_nonzero(_reaches(np.abs(differences), abs(observed))))
    return PairedTest(first=float(a), second=float(b), observed=float(observed),
                      p_value=_p(reached, n_resamples), n_resamples=n_resamples,
                      n_identities=int(len(first)))


def _group_means_rows(values, labels, sizes):
    """Group means [rows, groups] of each row of `values` [rows, n] under one labelling."""
    one_hot = np.zeros((len(labels), len(sizes)))
    one_hot[np.arange(len(labels)), labels] = 1.0
    return (values @ one_hot) / sizes


def holm(p_values):
    """Holm's step-down adjusted p-values, in the order given: the k-th smallest p times the
    number of hypotheses not yet rejected, made monotone, at most 1. Rejecting where the adjusted
    p is at most alpha keeps the family-wise error rate at most alpha."""
    p_values = np.asarray(p_values, dtype=np.float64)
    m = len(p_values)
    order = np.argsort(p_values, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate(p_values[order] * (m - np.arange(m))))
    result = np.empty(m)
    result[order] = adjusted
    return result.tolist()
