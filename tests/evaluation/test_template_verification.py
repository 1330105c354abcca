import numpy as np
import pytest
import torch

from mfftools.data.ijb_protocol import TemplatePairs
from mfftools.errors import MfftoolsError
from mfftools.evaluation.engine.scoring import canonical_scores, normalise_rows_
from mfftools.evaluation.template_verification import (
    TARGETS,
    evaluate_verification,
    far_key,
)
from mfftools.evaluation.templates import Templates


def random_templates(rng, n=60, dim=8, duplicates=10):
    rows = rng.normal(size=(n, dim)).astype(np.float32)
    rows[n - duplicates:] = rows[:duplicates]  # equal templates: tied scores
    rows = normalise_rows_(torch.from_numpy(rows))
    return Templates(np.arange(n) * 3 + 1, rows, np.ones(n, np.int64), np.ones(n, np.int64))


def random_pairs(rng, n_templates, n_pairs=1500, subjects=15):
    subject = rng.integers(0, subjects, n_templates)
    left = rng.integers(0, n_templates, n_pairs).astype(np.int32)
    right = rng.integers(0, n_templates, n_pairs).astype(np.int32)
    return TemplatePairs(left, right, subject[left] == subject[right], n_pairs), subject


def scores_of(templates, pairs):
    return canonical_scores(templates.rows, templates.rows, torch.from_numpy(pairs.left.astype(np.int64)),
                            torch.from_numpy(pairs.right.astype(np.int64))).numpy()


def dense_nearest(negatives, positives, target):
    """scikit-learn's roc_curve (drop_intermediate) read as insightface does, densely."""
    labels = np.r_[np.zeros(len(negatives)), np.ones(len(positives))]
    scores = np.r_[negatives, positives].astype(np.float64)
    order = np.argsort(scores, kind="mergesort")[::-1]
    scores, labels = scores[order], labels[order]
    at = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    tps = np.cumsum(labels)[at]
    fps = 1 + at - tps
    if len(fps) > 2:
        kept = np.flatnonzero(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])
        fps, tps = fps[kept], tps[kept]
    fpr = np.flipud(np.r_[0, fps] / fps[-1])
    tpr = np.flipud(np.r_[0, tps] / tps[-1])
    best = np.argmin(np.abs(fpr - target))
    return fpr[best], tpr[best]


def assert_matches_dense(result, scores, pairs, targets):
    """The 1:1 readings of `result` equal the dense ones of every pair's score `scores`."""
    genuine, impostor = scores[pairs.genuine], scores[~pairs.genuine]
    assert result["n_genuine"] == len(genuine) and result["n_impostor"] == len(impostor)
    wins = (genuine[:, None] > impostor[None, :]).sum() + 0.5 * (genuine[:, None] == impostor[None, :]).sum()
    assert result["auc"] == pytest.approx(wins / (len(genuine) * len(impostor)), abs=1e-12)
    descending = np.sort(impostor)[::-1]
    for target in targets:
        reading = result["tar_at_far"][far_key(target)]
        k = int(np.floor(target * len(impostor)))
        if k < 1:
            assert reading["exact"] is None and reading["threshold"] is None
            continue
        threshold = descending[k]
        assert reading["threshold"] == threshold
        assert reading["exact"] == np.mean(genuine > threshold)
        assert reading["far"] == np.mean(impostor > threshold) <= target
        fpr, tpr = dense_nearest(impostor, genuine, target)
        assert (reading["nearest_roc_point_far"], reading["nearest_roc_point"]) == (fpr, tpr)
    roc = result["roc"]
    assert roc["far"] == sorted(roc["far"]) and len(roc["far"]) == len(roc["tar"])
    for threshold, far, tar in zip(roc["threshold"], roc["far"], roc["tar"]):
        assert far == pytest.approx(np.mean(impostor > np.float32(threshold)))
        assert tar == pytest.approx(np.mean(genuine > np.float32(threshold)))


def assert_groups_match_dense(result, scores, pairs, targets, template_group, names):
    """Each group's rates, TAR within the group, DET and the FAR matrix of `result` equal the
    dense ones of every pair's score `scores`."""
    from mfftools.evaluation.threshold import det_curve

    gl, gr = template_group[pairs.left], template_group[pairs.right]
    impostor_scores = np.sort(scores[~pairs.genuine])[::-1]
    for target in targets:
        t = impostor_scores[int(np.floor(target * len(impostor_scores)))]
        matrix = result["group_far_matrix"][far_key(target)]
        for g, name in enumerate(names):
            entry = result["groups"][name]
            mine_genuine = pairs.genuine & (gl == g)
            mine_impostor = ~pairs.genuine & (gl == g) & (gr == g)
            assert entry["n_genuine"] == mine_genuine.sum()
            assert entry["n_impostor"] == mine_impostor.sum()
            at = entry["at_far"][far_key(target)]
            assert at["fnmr"] == pytest.approx(np.mean(scores[mine_genuine] <= t))
            assert at["fmr"] == pytest.approx(np.mean(scores[mine_impostor] > t))
            own = np.sort(scores[mine_impostor])[::-1]
            rank = int(np.floor(target * len(own)))
            if rank < 1:  # the group's impostor pairs cannot resolve the target
                assert at["tar_within_group"] is None
            else:
                assert at["tar_within_group"] == pytest.approx(
                    np.mean(scores[mine_genuine] > own[rank]))
            for h in range(len(names)):
                between = ~pairs.genuine & (((gl == g) & (gr == h)) | ((gl == h) & (gr == g)))
                assert matrix[g][h] == pytest.approx(np.mean(scores[between] > t))
    for g, name in enumerate(names):
        dense = det_curve(scores[pairs.genuine & (gl == g)],
                          scores[~pairs.genuine & (gl == g) & (gr == g)])
        det = result["groups"][name]["det"]
        assert det["threshold"] == dense["threshold"]
        assert det["fmr"] == pytest.approx(dense["fmr"])
        assert det["fnmr"] == pytest.approx(dense["fnmr"])


def test_one_to_one_matches_a_dense_reference(rng):
    templates = random_templates(rng)
    pairs, _ = random_pairs(rng, len(templates))
    targets = (1e-3, 1e-2, 5e-2, 1e-1)
    result = evaluate_verification(templates, pairs, targets, chunk=97)
    assert_matches_dense(result, scores_of(templates, pairs), pairs, targets)
    same = evaluate_verification(templates, pairs, targets)
    assert same == result  # chunks do not change a number


def test_default_targets_are_read_even_when_unresolvable(rng):
    templates = random_templates(rng)
    pairs, _ = random_pairs(rng, len(templates), n_pairs=400)
    result = evaluate_verification(templates, pairs)
    assert list(result["tar_at_far"]) == ["1e-06", "1e-05", "0.0001", "0.001", "0.01", "0.1"]
    impostor = scores_of(templates, pairs)[~pairs.genuine]
    genuine = scores_of(templates, pairs)[pairs.genuine]
    for target in TARGETS:
        reading = result["tar_at_far"][far_key(target)]
        assert reading["nearest_roc_point"] == dense_nearest(impostor, genuine, target)[1]
    assert result["tar_at_far"]["1e-06"]["exact"] is None


def test_groups_match_a_dense_reference(rng):
    templates = random_templates(rng, n=80)
    pairs, subject = random_pairs(rng, len(templates), n_pairs=3000, subjects=20)
    template_group = subject % 3
    template_group[subject == 0] = -1  # a template in no list: in no group
    names = ["a", "b", "c"]
    result = evaluate_verification(templates, pairs, (1e-2, 1e-1), template_group, names,
                                   chunk=101)
    assert_groups_match_dense(result, scores_of(templates, pairs), pairs, (1e-2, 1e-1),
                              template_group, names)
    det = result["groups"]["a"]["det"]
    assert det["fmr"] == sorted(det["fmr"])


def test_pairs_of_one_kind_are_refused(rng):
    templates = random_templates(rng)
    pairs = TemplatePairs(np.array([0, 1], np.int32), np.array([2, 3], np.int32),
                          np.array([True, True]), 2)
    with pytest.raises(MfftoolsError, match="needs genuine .* and impostor"):
        evaluate_verification(templates, pairs)
