"""1:1 verification of template pairs (IJB-B / IJB-C), streamed, with two readings of TAR@FAR.

Every pair's score is the canonical score of its two templates (PROTOCOLS 3.1). The genuine
scores are all kept (IJB-C: 19,557); the impostor scores pass through a top set that keeps the
largest ones, as many as the largest target FAR needs and a quarter more, and through exact
counters: the AUC is the probability that a genuine pair outscores an impostor pair (ties count
one half), which equals the trapezoid area under the full ROC.

TAR at each target FAR is read two ways:
  * `exact`: at the exact threshold (threshold.py), the (K+1)-th largest impostor score,
    K = floor(FAR x impostor pairs): the share of genuine pairs scoring above it;
  * `nearest_roc_point`: insightface's reading (ijb_11.py), the TAR of the ROC point whose FPR is
    nearest the target, on scikit-learn's ROC (`roc_curve` with its default drop_intermediate:
    a point is dropped when its neighbours' steps in FPs and TPs are equal on both sides; the
    point (0, 0) put first), the last such point on ties. The quarter beyond the largest target
    is what lets this reading see the points just past it; when it cannot, it is null.

With a score map (a calibration, mfftools.calibration.score_map), a pair's score is its
calibrated confidence, float32(p) of its canonical score and its two templates' keys, and it
replaces the canonical score everywhere: every count, threshold, reading and curve above is then
that of the calibrated scores, with nothing else changed (each is a function of the scores only,
ties included).
"""
import logging
import math

import numpy as np
import torch

from mfftools.errors import MfftoolsError
from mfftools.evaluation import threshold as search
from mfftools.evaluation.engine.scoring import canonical_scores
from mfftools.evaluation.engine.topset import PairTopSet

logger = logging.getLogger(__name__)

TARGETS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
# The top set reaches this far past the largest target (the nearest-point reading's margin).
REACH = 1.25
# Each group's top set reaches the largest DET level, so its DET and EER can be read.
GROUP_REACH = max(search.DET_LEVELS)
CHUNK = 1 << 18


def far_key(target):
    """The results file's key of a target: `1e-06`, `0.001`, ..."""
    return f"{target:g}"


def _keep(n_negatives, reach):
    return max(1, min(n_negatives, math.ceil(reach * n_negatives) + 2))


def _scores(rows, left, right, score_map=None):
    """The canonical scores of template pairs (rows `left`, `right`), mapped by `score_map`."""
    left, right = torch.from_numpy(left.astype(np.int64)), torch.from_numpy(right.astype(np.int64))
    scores = canonical_scores(rows, rows, left, right)
    if score_map is not None and len(scores):
        scores = score_map(scores, left, right)
    return scores.numpy()


class _Stream:
    """What the impostor scores leave behind: the top set, exact AUC counts and, with groups,
    each group's top set of its same-group impostor pairs."""

    def __init__(self, n_impostor, reach, genuine_scores, group_impostors=()):
        self.top = PairTopSet(_keep(n_impostor, reach))
        self.genuine_sorted = np.sort(genuine_scores)
        self.below = 0  # (impostor, genuine) combinations with the genuine score above
        self.tied = 0
        self.groups = [PairTopSet(_keep(int(count), GROUP_REACH)) for count in group_impostors]

    def add(self, scores, left, right, group_left=None, group_right=None):
        self.top.add(torch.from_numpy(scores), torch.from_numpy(left), torch.from_numpy(right))
        above = np.searchsorted(self.genuine_sorted, scores, side="right")
        at_or_above = np.searchsorted(self.genuine_sorted, scores, side="left")
        self.below += int(len(self.genuine_sorted) * len(scores) - above.sum())
        self.tied += int((above - at_or_above).sum())
        if group_left is not None:
            same = group_left == group_right
            for g, topset in enumerate(self.groups):
                chosen = same & (group_left == g)
                if chosen.any():
                    topset.add(torch.from_numpy(scores[chosen]), torch.from_numpy(left[chosen]),
                               torch.from_numpy(right[chosen]))


def evaluate_verification(templates, pairs, targets=TARGETS, template_group=None,
                          group_names=None, chunk=CHUNK, score_map=None):
    """The 1:1 results dict of `pairs` (a TemplatePairs) on `templates` (Templates); per group
    when `template_group` (each template's group index, -1 for none) and `group_names` are
    given; of the calibrated scores with a `score_map` (keyed by template row)."""
    targets = tuple(sorted(dict.fromkeys(float(target) for target in targets)))
    for target in targets:
        if not 0.0 < target < 1.0:
            raise MfftoolsError(f"target FAR {target!r} is outside (0, 1)")
    genuine = np.flatnonzero(pairs.genuine)
    n_genuine = len(genuine)
    n_impostor = len(pairs) - n_genuine
    if not n_genuine or not n_impostor:
        raise MfftoolsError("the pair list needs genuine (label 1) and impostor (label 0) pairs")
    genuine_scores = _scores(templates.rows, pairs.left[genuine], pairs.right[genuine], score_map)
    grouped = template_group is not None
    if grouped:
        group_left = template_group[pairs.left]
        group_right = template_group[pairs.right]
        same = (group_left == group_right) & (group_left >= 0)
        group_impostors = np.bincount(group_left[same & ~pairs.genuine],
                                      minlength=len(group_names))
    stream = _Stream(n_impostor, REACH * max(targets), genuine_scores,
                     group_impostors=group_impostors if grouped else ())
    for first in range(0, len(pairs), chunk):
        chosen = first + np.flatnonzero(~pairs.genuine[first : first + chunk])
        left, right = pairs.left[chosen], pairs.right[chosen]
        scores = _scores(templates.rows, left, right, score_map)
        if grouped:
            stream.add(scores, left, right, group_left[chosen], group_right[chosen])
        else:
            stream.add(scores, left, right)
    top = stream.top.finalize()
    impostor = ~pairs.genuine
    readings = {}
    thresholds = {}
    for target in targets:
        reading = _tar_readings(target, top, n_impostor, genuine_scores)
        thresholds[target] = reading.pop("_threshold")
        readings[far_key(target)] = reading
    result = {
        "n_pairs": n_genuine + n_impostor,
        "n_genuine": n_genuine,
        "n_impostor": n_impostor,
        "auc": (stream.below + 0.5 * stream.tied) / (n_genuine * n_impostor),
        "tar_at_far": readings,
        "roc": _roc(top, n_impostor, genuine_scores),
    }
    if grouped:
        result["groups"], result["group_far_matrix"] = _groups(
            top, [topset.finalize() for topset in stream.groups], thresholds, genuine_scores,
            group_left[genuine], group_left, group_right, impostor, template_group, group_names)
    return result


def _tar_readings(target, top, n_impostor, genuine_scores):
    """Both readings of TAR at one target FAR, the threshold and the FAR it gives."""
    resolvable = search.rank_at(target, n_impostor) >= 1
    threshold = (search.exact_threshold(target, n_impostor, top.value_at) if resolvable
                 else None)
    nearest = nearest_roc_point(top, n_impostor, genuine_scores, target)
    exact = far = None
    if threshold is not None:
        exact = float(search.count_above(genuine_scores, [threshold])[0] / len(genuine_scores))
        far = top.count_above(threshold)[0] / n_impostor
    return {
        "nearest_roc_point": None if nearest is None else nearest[1],
        "nearest_roc_point_far": None if nearest is None else nearest[0],
        "exact": exact,
        "threshold": threshold,
        "far": far,
        "_threshold": threshold,
    }


def nearest_roc_point(top, n_negatives, positive_scores, target):
    """(FPR, TPR) of insightface's nearest ROC point to `target` (see the module), or None when
    the negatives the top set holds cannot tell it."""
    values, _, _ = top.pairs()
    negatives = values.numpy()
    complete = top.filling
    if not complete and top.ties:
        negatives = np.concatenate([negatives, np.full(top.ties, top.cut, np.float32)])
    positives = np.sort(np.asarray(positive_scores, dtype=np.float32))
    if complete:
        known_positives = positives
    else:
        known_positives = positives[positives >= np.float32(top.cut)]
    distinct = np.unique(np.concatenate([negatives, known_positives]))[::-1]
    ascending_negatives = np.sort(negatives)
    fps = len(negatives) - np.searchsorted(ascending_negatives, distinct, side="left")
    tps = len(positives) - np.searchsorted(positives, distinct, side="left")
    kept = np.ones(len(distinct), dtype=bool)
    if len(distinct) > 2:
        kept[1:-1] = (np.diff(fps, 2) != 0) | (np.diff(tps, 2) != 0)
    decided = len(distinct) if complete else len(distinct) - 1
    fpr = np.r_[0.0, fps[:decided][kept[:decided]] / n_negatives]
    tpr = np.r_[0.0, tps[:decided][kept[:decided]] / len(positives)]
    distance = np.abs(fpr - target)
    best = len(distance) - 1 - int(np.argmin(distance[::-1]))  # the last point on ties
    if not complete:
        edge = fps[-1] / n_negatives  # every point not decided lies at or beyond it
        if not distance[best] < edge - target:
            return None
    return float(fpr[best]), float(tpr[best])


def _roc(top, n_impostor, genuine_scores):
    """FAR and TAR at thresholds spread over the ranks of the kept impostor scores."""
    values, _, _ = top.pairs()
    thresholds = search.thresholds_at_ranks(values.numpy())
    return {
        "threshold": [float(t) for t in thresholds],
        "far": [top.count_above(float(t))[0] / n_impostor for t in thresholds],
        "tar": search.rates_above(genuine_scores, thresholds),
    }


def _groups(top, group_tops, thresholds, genuine_scores, genuine_group, group_left, group_right,
            impostor, template_group, group_names):
    """Per group at the global thresholds: FNMR and matched FMR; TAR at FAR on the group's own
    impostors; DET and EER. And the cross-group FAR matrix at each target."""
    size = len(group_names)
    values, rows_left, rows_right = (part.numpy() for part in top.pairs())
    held_left, held_right = template_group[rows_left], template_group[rows_right]
    pair_counts = np.zeros((size, size), dtype=np.int64)
    known = impostor & (group_left >= 0) & (group_right >= 0)
    np.add.at(pair_counts, (group_left[known], group_right[known]), 1)
    pair_counts = pair_counts + pair_counts.T - np.diag(np.diag(pair_counts))
    groups, matrices = {}, {}
    for g, name in enumerate(group_names):
        mine = genuine_scores[genuine_group == g]
        n_impostor_g = int(pair_counts[g, g])
        entry = {"n_templates": int(np.count_nonzero(template_group == g)),
                 "n_genuine": len(mine), "n_impostor": n_impostor_g, "at_far": {}}
        for target, t in thresholds.items():
            fmr = fnmr = None
            if t is not None:
                inside = (held_left == g) & (held_right == g) & (values > np.float32(t))
                fmr = float(inside.sum() / n_impostor_g) if n_impostor_g else None
                fnmr = (1.0 - search.rates_above(mine, [t])[0]) if len(mine) else None
            entry["at_far"][far_key(target)] = {
                "fnmr": fnmr, "fmr": fmr,
                "tar_within_group": _tar_within(group_tops[g], n_impostor_g, mine, target),
            }
        entry["det"] = _det(group_tops[g], n_impostor_g, mine)
        entry["eer"] = search.eer(entry["det"]["fmr"], entry["det"]["fnmr"])
        groups[name] = entry
    for target, t in thresholds.items():
        if t is None:
            matrices[far_key(target)] = None
            continue
        accepted = np.zeros((size, size), dtype=np.int64)
        above = (values > np.float32(t)) & (held_left >= 0) & (held_right >= 0)
        np.add.at(accepted, (held_left[above], held_right[above]), 1)
        accepted = accepted + accepted.T - np.diag(np.diag(accepted))
        with np.errstate(invalid="ignore", divide="ignore"):
            rates = np.where(pair_counts > 0, accepted / np.maximum(pair_counts, 1), np.nan)
        matrices[far_key(target)] = [[None if np.isnan(v) else float(v) for v in row]
                                     for row in rates]
    return groups, matrices


def _tar_within(topset, n_impostor, genuine_scores, target):
    """TAR at `target` FAR set on the group's own impostor pairs; None when they cannot."""
    if not len(genuine_scores) or search.rank_at(target, n_impostor) < 1:
        return None
    t = search.exact_threshold(target, n_impostor, topset.value_at)
    return search.rates_above(genuine_scores, [t])[0]


def _det(topset, n_impostor, genuine_scores):
    """FNMR against matched FMR at the exact threshold of each of threshold.DET_LEVELS the
    group's impostor pairs resolve (as `threshold.det_curve`, from the group's top set)."""
    thresholds = [topset.value_at(search.rank_at(level, n_impostor))
                  for level in search.DET_LEVELS
                  if n_impostor and search.rank_at(level, n_impostor) >= 1]
    thresholds = np.unique(np.array([t for t in thresholds if t is not None],
                                    dtype=np.float32))[::-1]  # tied scores give one point
    hits = search.rates_above(genuine_scores, thresholds)
    return {"threshold": [float(t) for t in thresholds],
            "fmr": [topset.count_above(float(t))[0] / n_impostor for t in thresholds],
            "fnmr": [None if hit is None else 1.0 - hit for hit in hits]}
