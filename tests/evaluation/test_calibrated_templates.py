"""IJB templates on calibrated scores (template-eval --calibration) against dense references whose
scores are every pair's canonical score mapped by the calibration with its two templates' keys:
1:1 (every reading, curve and per-group measure) and 1:N (thresholds, TPIR, CMC, per group)."""
import numpy as np
import pytest

from mfftools.calibration.kmeans import assign
from mfftools.calibration.methods import PairKeys, Settings, apply_method
from mfftools.calibration.pipeline import fit_calibration
from mfftools.calibration.protocols import group_keys, score_map
from mfftools.data.synthetic_embeddings import biased_pairs, write_biased_pairs
from mfftools.embeddings import open_embeddings
from mfftools.evaluation.template_identification import evaluate_template_identification
from mfftools.evaluation.template_verification import evaluate_verification
from mfftools.pair_data import read_pair_set
from test_template_identification import dense, setup
from test_template_verification import (
    assert_groups_match_dense,
    assert_matches_dense,
    random_pairs,
    random_templates,
    scores_of,
)

NAMES = ["a", "b", "c"]
METHODS = ("baseline", "faircal", "fsn", "gst", "oracle", "group-norm")


def _calibration(tmp_path, method, dim, calibrator):
    pairs = biased_pairs(group_names=NAMES, identities_per_group=20, images_per_identity=4,
                         pairs_per_group=500, dim=dim, bias=0.2, seed=3)
    path = write_biased_pairs(tmp_path / f"cal_{method}.h5", pairs)
    return fit_calibration(read_pair_set(open_embeddings(path)), method,
                           Settings(clusters=4, calibrator=calibrator, fit_fpr=0.01))


def _keys(calibration, rows, template_group):
    """Each template's key, written from the definition: nearest centroid, or group by name."""
    if calibration.method in ("faircal", "fsn"):
        return assign(rows.numpy(), calibration.centroids)
    if calibration.method in ("gst", "oracle", "group-norm"):
        keys = group_keys(calibration, NAMES, np.maximum(template_group, 0))
        return np.where(template_group < 0, -1, keys)
    return np.zeros(len(rows), dtype=np.int64)


def _mapped(calibration, scores, keys_a, keys_b):
    confidence = apply_method(calibration.fitted, PairKeys(
        np.asarray(scores, dtype=np.float64).reshape(-1), np.asarray(keys_a).reshape(-1),
        np.asarray(keys_b).reshape(-1))).confidence
    return confidence.astype(np.float32).reshape(np.shape(scores))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("calibrator", ["beta", "isotonic"])
def test_one_to_one_matches_the_mapped_dense_reference(tmp_path, rng, method, calibrator):
    templates = random_templates(rng, n=80, dim=16)
    pairs, subject = random_pairs(rng, len(templates), n_pairs=3000, subjects=20)
    template_group = subject % 3
    template_group[subject == 0] = -1  # in no list: no group, the calibration's unknown key
    calibration = _calibration(tmp_path, method, 16, calibrator)
    keys = _keys(calibration, templates.rows, template_group)
    targets = (1e-2, 5e-2, 1e-1)
    result = evaluate_verification(templates, pairs, targets, template_group, NAMES, chunk=97,
                                   score_map=score_map(calibration, keys, keys))
    scores = _mapped(calibration, scores_of(templates, pairs), keys[pairs.left],
                     keys[pairs.right])
    assert scores.min() >= 0 and scores.max() <= 1 and len(np.unique(scores)) > 20
    assert_matches_dense(result, scores, pairs, targets)
    assert_groups_match_dense(result, scores, pairs, targets, template_group, NAMES)
    raw = evaluate_verification(templates, pairs, targets)
    assert raw["tar_at_far"]["0.1"]["threshold"] != result["tar_at_far"]["0.1"]["threshold"]


@pytest.mark.parametrize("method", METHODS)
def test_one_to_n_matches_the_mapped_dense_search(tmp_path, rng, method):
    templates, galleries, probes = setup(rng, dim=16)
    template_group = (np.arange(len(templates)) * 7) % 3
    calibration = _calibration(tmp_path, method, 16, "isotonic")
    keys = _keys(calibration, templates.rows, template_group)
    ranks, targets = (1, 2, 5), (0.1, 0.3)
    result = evaluate_template_identification(templates, galleries, probes, template_group,
                                              NAMES, targets=targets, ranks=ranks,
                                              calibration=calibration, keys=keys)

    def mapped(scores, probe_rows, gallery_rows):
        return _mapped(calibration, scores, keys[probe_rows], keys[gallery_rows])

    probe_group = template_group[templates.rows_of(probes.templates)]
    for name, gallery in zip(("G1", "G2"), galleries):
        entry = result["galleries"][name]
        assert "calibration" not in entry  # recorded once, for every template
        mated = np.isin(probes.subjects, gallery.subjects)
        for k, target in enumerate(targets):
            threshold, tpir, cmc, rank, missed, false_positive = dense(
                templates, gallery, probes, target, ranks, mapped)
            found = entry["results"][k]
            assert found["threshold"] == threshold and 0 <= threshold <= 1
            assert found["tpir"] == pytest.approx(tpir)
            for g, group in enumerate(NAMES):
                in_mated, in_nonmated = probe_group[mated] == g, probe_group[~mated] == g
                assert found["groups"][group]["fnir"] == pytest.approx(missed[in_mated].mean())
                assert found["groups"][group]["fpir"] == pytest.approx(
                    false_positive[in_nonmated].mean())
        assert entry["cmc"]["all"] == pytest.approx(cmc)
