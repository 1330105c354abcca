"""k-means, the calibration file, and fit / apply / cross-validation of whole files, against the
dense references with the clusters fixed."""
import json
import zipfile

import numpy as np
import pytest

import calibration_reference as reference
from embedding_files import write_images_file
from mfftools.calibration import pipeline
from mfftools.calibration.kmeans import assign, fit_centroids
from mfftools.calibration.methods import Applied, Settings
from mfftools.calibration.metrics import average, evaluate
from mfftools.calibration.store import FORMAT, load, save
from mfftools.data.synthetic_embeddings import biased_pairs, write_biased_pairs
from mfftools.embeddings import open_embeddings
from mfftools.errors import MfftoolsError
from mfftools.pair_data import read_pair_set

GROUPS = ["A", "B", "C", "D"]


@pytest.fixture(scope="module")
def biased(tmp_path_factory):
    pairs = biased_pairs(group_names=GROUPS, identities_per_group=20, images_per_identity=4,
                         pairs_per_group=400, dim=16, bias=0.2, seed=3)
    path = tmp_path_factory.mktemp("biased") / "b.h5"
    return write_biased_pairs(path, pairs, model="net", checkpoint_sha256="abc")


def _scored(path):
    return pipeline.ScoredPairs.of(read_pair_set(open_embeddings(path)))


def test_kmeans_is_seeded_and_assigns_the_nearest_centroid(rng):
    centres = rng.normal(size=(4, 8)) * 5
    rows = (np.repeat(centres, 50, axis=0) + rng.normal(size=(200, 8))).astype(np.float32)
    first, again = fit_centroids(rows, 4, seed=1), fit_centroids(rows, 4, seed=1)
    np.testing.assert_array_equal(first, again)
    assigned = assign(rows, first)
    distances = ((rows[:, None, :].astype(np.float64) - first[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(assigned, distances.argmin(1))
    # Lloyd's fixed point: each centroid is the mean of the rows nearest to it
    for k in range(4):
        np.testing.assert_allclose(first[k], rows[assigned == k].mean(0), atol=1e-4)
    with pytest.raises(MfftoolsError, match="5 clusters need at least as many distinct images"):
        fit_centroids(rows[:4], 5)


def _keys(scored, image_keys, chosen):
    """(scores in float64, labels, key of each image) of the pairs `chosen`."""
    index = scored.pairs.pair_index[chosen]
    return (scored.scores[chosen].astype(np.float64), scored.pairs.issame[chosen],
            image_keys[index[:, 0]], image_keys[index[:, 1]])


def test_fit_records_every_image_cluster_and_apply_equals_the_reference(tmp_path, biased):
    settings = Settings(clusters=6, seed=2)
    pair_set = read_pair_set(open_embeddings(biased))
    calibration = pipeline.fit_calibration(pair_set, "faircal", settings,
                                           open_embeddings(biased))
    save(calibration, tmp_path / "cal.npz")
    loaded = load(tmp_path / "cal.npz")
    scored = _scored(biased)
    np.testing.assert_array_equal(loaded.cluster_of_image,
                                  assign(scored.rows.numpy(), loaded.centroids))
    assert loaded.origin["model"] == "net" and loaded.origin["checkpoint_sha256"] == "abc"
    assert loaded.data_sha256 == pair_set.data_sha256 and loaded.dim == 16
    everything = np.ones(pair_set.n_pairs, bool)
    keys = _keys(scored, loaded.cluster_of_image, everything)
    expected, fallback, _ = reference.faircal(keys, keys, "beta", 6)
    applied = pipeline.apply_calibration(loaded, scored)
    np.testing.assert_allclose(applied.confidence, expected, rtol=1e-9)
    np.testing.assert_array_equal(applied.fallback, fallback)
    measures = pipeline.evaluate_applied(applied, scored, n_bins=settings.bins)
    direct = evaluate(Applied(expected, expected, fallback), pair_set.issame,
                      pair_set.image_group, pair_set.pair_index, GROUPS, pipeline.TARGETS, 25)
    assert measures["auroc"] == pytest.approx(direct["auroc"], rel=1e-9)
    for name in GROUPS:
        assert measures["groups"][name]["ece"] == pytest.approx(direct["groups"][name]["ece"],
                                                                rel=1e-9, abs=1e-12)


def test_cross_validation_with_fixed_clusters_equals_the_reference(biased, monkeypatch):
    scored = _scored(biased)
    fixed = np.arange(len(scored.pairs.rows)) % 5  # a fixed assignment, whatever the rows
    monkeypatch.setattr(pipeline.ScoredPairs, "clusters", lambda self, images, s: (None, fixed))
    settings = Settings(clusters=5, fit_fpr=0.01)
    methods = ["baseline", "faircal", "fsn", "gst", "oracle", "group-norm"]
    found = pipeline.cross_validate(scored.pairs, methods, settings, targets=(0.01, 0.05))
    assert found["folds"] == 5 and found["fold_assignment"] == "file"
    groups = scored.pairs.image_group
    per_method = {method: [] for method in methods}
    for fold in range(5):
        test = scored.pairs.fold == fold
        for method in methods:
            keys = groups if method in ("gst", "oracle", "group-norm") else fixed
            cal, held = _keys(scored, keys, ~test), _keys(scored, keys, test)
            if method == "baseline":
                mapping = reference.calibrator("beta", cal[0], cal[1])
                confidence = np.array([mapping(s) for s in held[0]])
                decision = held[0]
            elif method in ("faircal", "oracle"):
                confidence = getattr(reference, method)(cal, held, "beta", 5)[0]
                decision = confidence
            elif method == "group-norm":
                confidence, decision, _, _ = reference.group_norm(cal, held, "beta", 4)
            else:
                n_keys = 5 if method == "fsn" else 4
                confidence, decision, _, _ = getattr(reference, method)(cal, held, "beta",
                                                                        n_keys, 0.01)
            per_method[method].append(evaluate(
                Applied(confidence, decision, None), held[1], groups,
                scored.pairs.pair_index[test], GROUPS, (0.01, 0.05), 25))
    for method in methods:
        expected = average(per_method[method])
        entry = found["methods"][method]
        assert entry["auroc"] == pytest.approx(expected["auroc"], rel=1e-9)
        for key in ("0.01", "0.05"):
            assert entry["tpr_at_fpr"][key] == pytest.approx(expected["tpr_at_fpr"][key],
                                                             rel=1e-9)
            for stat in ("aad", "mad", "std"):
                assert entry["fpr_spread"][key][stat] == pytest.approx(
                    expected["fpr_spread"][key][stat], rel=1e-9, abs=1e-15), (method, stat)
        for measure in ("ks", "ece", "brier"):
            assert entry["calibration"][measure]["mean"] == pytest.approx(
                expected["calibration"][measure]["mean"], rel=1e-9), (method, measure)


def test_the_planted_bias_is_reduced_by_faircal_fsn_and_gst(tmp_path):
    # the first of four groups has impostor scores about 0.3 / (1 + noise^2) higher
    pairs = biased_pairs(group_names=GROUPS, identities_per_group=60, images_per_identity=5,
                         pairs_per_group=12000, dim=32, bias=0.3, seed=6)
    path = write_biased_pairs(tmp_path / "b.h5", pairs)
    found = pipeline.cross_validate(read_pair_set(open_embeddings(path)),
                                    ["baseline", "faircal", "fsn", "gst"],
                                    Settings(clusters=16, fit_fpr=0.01), targets=(0.01,))
    methods = found["methods"]
    before = methods["baseline"]
    for method in ("faircal", "fsn", "gst"):
        after = methods[method]
        # the spread of the groups' FPRs at one global threshold shrinks by at least a third
        assert after["fpr_spread"]["0.01"]["aad"] < 0.67 * before["fpr_spread"]["0.01"]["aad"]
        # while accuracy stays within a margin: AUROC and TPR no lower than 0.005 below
        assert after["auroc"] > before["auroc"] - 0.005
        assert after["tpr_at_fpr"]["0.01"] > before["tpr_at_fpr"]["0.01"] - 0.005


def test_a_calibration_file_holds_plain_arrays_only(tmp_path, biased):
    for method in ("baseline", "fsn", "gst", "group-norm"):
        pair_set = read_pair_set(open_embeddings(biased))  # a fit lets its rows go
        calibration = pipeline.fit_calibration(pair_set, method, Settings(clusters=4,
                                                                          calibrator="isotonic"))
        save(calibration, tmp_path / f"{method}.npz")
        with np.load(tmp_path / f"{method}.npz", allow_pickle=False) as archive:
            meta = json.loads(str(archive["meta"]))
        assert meta["format"] == FORMAT and meta["method"] == method
        assert meta["calibrator"] == "isotonic" and meta["data_sha256"] == pair_set.data_sha256
        scored = _scored(biased)
        np.testing.assert_array_equal(
            pipeline.apply_calibration(load(tmp_path / f"{method}.npz"), scored).confidence,
            pipeline.apply_calibration(calibration, scored).confidence)
    bad = tmp_path / "pickled.npz"
    np.savez(bad, meta=np.array([{"format": FORMAT}], dtype=object))
    with pytest.raises(MfftoolsError, match="not a readable calibration file"):
        load(bad)
    np.savez(tmp_path / "other.npz", meta=np.array(json.dumps({"format": "other/1"})))
    with pytest.raises(MfftoolsError, match="format 'other/1'"):
        load(tmp_path / "other.npz")
    with zipfile.ZipFile(tmp_path / "empty.npz", "w"):
        pass
    with pytest.raises(MfftoolsError, match="no readable 'meta' entry"):
        load(tmp_path / "empty.npz")


def test_a_calibration_is_refused_on_other_embeddings(tmp_path, biased, rng):
    calibration = pipeline.fit_calibration(read_pair_set(open_embeddings(biased)), "baseline",
                                           embeddings=open_embeddings(biased))
    calibration.check_embeddings(open_embeddings(biased))
    rows = rng.normal(size=(4, 16)).astype(np.float32)
    labels = (np.arange(4) // 2, np.zeros(4, int), ["A"])
    cases = [
        (write_images_file(tmp_path / "dim.h5", rows[:, :8], *labels, model="net",
                           checkpoint_sha256="abc"), "embeddings of dimension 8"),
        (write_images_file(tmp_path / "model.h5", rows, *labels, model="other",
                           checkpoint_sha256="abc"), "model is 'other', but"),
        (write_images_file(tmp_path / "hash.h5", rows, *labels, model="net",
                           checkpoint_sha256="def"), "checkpoint_sha256 is 'def', but"),
        (write_images_file(tmp_path / "none.h5", rows, *labels, model="net"),
         "checkpoint_sha256 is None, but"),
    ]
    for path, message in cases:
        with pytest.raises(MfftoolsError, match=message):
            calibration.check_embeddings(open_embeddings(path))


def test_other_embeddings_of_the_model_get_their_nearest_clusters(tmp_path, biased):
    calibration = pipeline.fit_calibration(read_pair_set(open_embeddings(biased)), "fsn",
                                           Settings(clusters=4))
    pairs = biased_pairs(group_names=GROUPS, identities_per_group=20, images_per_identity=4,
                         pairs_per_group=100, dim=16, seed=9)
    other = _scored(write_biased_pairs(tmp_path / "other.h5", pairs))
    np.testing.assert_array_equal(pipeline.image_keys_for(calibration, other),
                                  assign(other.rows.numpy(), calibration.centroids))
    same = _scored(biased)
    assert pipeline.image_keys_for(calibration, same) is not None
    np.testing.assert_array_equal(pipeline.image_keys_for(calibration, same),
                                  calibration.cluster_of_image)
