"""The measures of FairCal's evaluation, computed exactly on one set of test pairs.

Accuracy, over all test pairs, of the method's decision score d:
  auroc       the probability that a genuine pair scores above an impostor pair, ties counting
              one half (the Mann-Whitney statistic; scikit-learn's roc_auc_score);
  tpr_at_fpr  the fraction of genuine pairs with d > t, t the exact threshold at the target FPR
              over the test impostor pairs (the (K+1)-th largest, K = floor(target x impostors)).
Equal false-positive rates, at that global threshold t: each group's FPR over its impostor pairs
with both images in the group (None for a group without any), and their spread across groups:
AAD (the mean absolute deviation from their mean), MAD (the largest absolute deviation), STD
(ddof 0), max/geomean and Gini (mfftools.evaluation.fairness).
Calibration per group, of the confidence p over the group's pairs (both images in it):
  ks     max over thresholds of |sum of p - number of genuine pairs| / n along the pairs sorted by
         p, taken at the end of each run of equal p (FairCal's KS, without splitting ties);
  ece    sum over equal-mass bins b of n_b / n x |mean p - genuine fraction| (the bins of the
         binning calibrator, `equal_mass_cuts`, over the sorted p; equal p share a bin);
  brier  the mean of (p - y)^2;
each summarised across groups by its mean, AAD, MAD and STD.
FairCal interpolates its ROC curves where this takes exact thresholds and counts.
"""
import numpy as np

from mfftools.calibration.calibrators import equal_mass_cuts
from mfftools.calibration.methods import threshold_at
from mfftools.evaluation.fairness import gini, max_geomean

CALIBRATION_MEASURES = ("ks", "ece", "brier")


def target_key(target):
    """The results key of a target FPR: 0.001 -> "0.001"."""
    return format(target, "g")


def auroc(scores, issame):
    """Mann-Whitney AUROC with midranks (None without genuine or impostor pairs)."""
    scores = np.asarray(scores, dtype=np.float64)
    issame = np.asarray(issame, dtype=bool)
    n_genuine, n_impostor = int(issame.sum()), int((~issame).sum())
    if n_genuine == 0 or n_impostor == 0:
        return None
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], len(scores)]
    midranks = (starts + ends + 1) / 2.0  # 1-based mean rank of each run of ties
    ranks = np.repeat(midranks, ends - starts)
    genuine_rank_sum = float(ranks[issame[order]].sum())
    return (genuine_rank_sum - n_genuine * (n_genuine + 1) / 2.0) / (n_genuine * n_impostor)


def spread(values):
    """AAD, MAD, STD (ddof 0), max/geomean and Gini of the defined values (None when none)."""
    values = np.array([value for value in values if value is not None], dtype=np.float64)
    if len(values) == 0:
        return {"aad": None, "mad": None, "std": None, "max_geomean": None, "gini": None}
    deviation = np.abs(values - values.mean())
    return {"aad": float(deviation.mean()), "mad": float(deviation.max()),
            "std": float(values.std()), "max_geomean": max_geomean(values), "gini": gini(values)}


def summary(values):
    """Mean, AAD, MAD and STD of the defined values across groups."""
    found = spread(values)
    defined = [value for value in values if value is not None]
    return {"mean": float(np.mean(defined)) if defined else None,
            **{key: found[key] for key in ("aad", "mad", "std")}}


def ks(confidence, issame):
    confidence = np.asarray(confidence, dtype=np.float64)
    order = np.argsort(confidence, kind="stable")
    sorted_confidence = confidence[order]
    gap = np.cumsum(sorted_confidence) - np.cumsum(np.asarray(issame, dtype=np.float64)[order])
    run_ends = np.r_[sorted_confidence[1:] != sorted_confidence[:-1], True]
    return float(np.abs(gap[run_ends]).max() / len(confidence))


def ece(confidence, issame, n_bins):
    confidence = np.asarray(confidence, dtype=np.float64)
    order = np.argsort(confidence, kind="stable")
    sorted_confidence = confidence[order]
    labels = np.asarray(issame, dtype=np.float64)[order]
    bounds = np.r_[0, equal_mass_cuts(sorted_confidence, n_bins), len(confidence)]
    total = 0.0
    for start, stop in zip(bounds[:-1], bounds[1:]):
        total += abs(sorted_confidence[start:stop].sum() - labels[start:stop].sum())
    return float(total / len(confidence))


def brier(confidence, issame):
    confidence = np.asarray(confidence, dtype=np.float64)
    return float(np.mean((confidence - np.asarray(issame, dtype=np.float64)) ** 2))


def evaluate(applied, issame, image_group, pair_index, group_names, targets, n_bins):
    """The measures of one method on one set of test pairs (see the module docstring).

    applied: the method's output (methods.Applied) for the pairs; image_group: each image's
    group; pair_index [P, 2]: the images of each pair.
    """
    issame = np.asarray(issame, dtype=bool)
    decision, confidence = applied.decision, applied.confidence
    group_a = image_group[pair_index[:, 0]]
    within = group_a == image_group[pair_index[:, 1]]
    impostor = decision[~issame]
    n_genuine = max(int(issame.sum()), 1)
    result = {"auroc": auroc(decision, issame), "tpr_at_fpr": {}, "threshold": {},
              "fpr_spread": {}, "groups": {}}
    group_fpr = {name: {} for name in group_names}
    for target in targets:
        key = target_key(target)
        threshold = threshold_at(impostor, target)
        result["threshold"][key] = threshold
        result["tpr_at_fpr"][key] = (None if threshold is None else
                                     float(np.sum(decision[issame] > threshold) / n_genuine))
        for index, name in enumerate(group_names):
            chosen = within & (group_a == index) & ~issame
            group_fpr[name][key] = (None if threshold is None or not chosen.any() else
                                    float(np.mean(decision[chosen] > threshold)))
        result["fpr_spread"][key] = spread([group_fpr[name][key] for name in group_names])
    for index, name in enumerate(group_names):
        chosen = within & (group_a == index)
        entry = {"fpr": group_fpr[name], "n_pairs": int(chosen.sum())}
        for measure, value in (("ks", ks), ("ece", ece), ("brier", brier)):
            arguments = (confidence[chosen], issame[chosen]) + ((n_bins,) if measure == "ece"
                                                                else ())
            entry[measure] = value(*arguments) if chosen.any() else None
        result["groups"][name] = entry
    result["calibration"] = {
        measure: summary([result["groups"][name][measure] for name in group_names])
        for measure in CALIBRATION_MEASURES
    }
    return result


def average(results):
    """The mean over folds of every number of the fold results (same keys), leaving out the
    folds where it is None (None when it is None in every fold)."""
    first = results[0]
    if isinstance(first, dict):
        return {key: average([result[key] for result in results]) for key in first}
    defined = [value for value in results if value is not None]
    if not defined:
        return None
    return float(np.mean(defined))
