"""`mfftools calibrate fit | apply | cross-val` and `pair-eval --calibration` through CliRunner."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from embedding_files import write_pairs_file
from mfftools.calibration.pipeline import ScoredPairs, apply_calibration
from mfftools.calibration.store import load
from mfftools.cli import main
from mfftools.data.synthetic_embeddings import biased_pairs, write_biased_pairs
from mfftools.embeddings import open_embeddings
from mfftools.evaluation.pair import evaluate_pair_distances
from mfftools.pair_data import read_pair_set

GROUPS = ["A", "B", "C", "D"]
METHOD_KEYS = {"auroc", "tpr_at_fpr", "fpr_spread", "groups"}


def run(*args):
    return CliRunner().invoke(main, [*map(str, args)])


@pytest.fixture(scope="module")
def biased(tmp_path_factory):
    folder = tmp_path_factory.mktemp("calibrate")
    pairs = biased_pairs(group_names=GROUPS, identities_per_group=20, images_per_identity=4,
                         pairs_per_group=600, dim=16, bias=0.2, seed=1)
    return write_biased_pairs(folder / "b.h5", pairs, model="net")


def test_cross_val_writes_the_fixed_results_keys(tmp_path, biased):
    result = run("calibrate", "cross-val", biased, "--method", "baseline", "--method", "faircal",
                 "--method", "fsn", "--method", "gst", "--method", "oracle", "--method",
                 "group-norm", "--clusters", "8", "--json", tmp_path / "cv.json")
    assert result.exit_code == 0, result.output
    found = json.loads((tmp_path / "cv.json").read_text())
    assert found["protocol"] == "calibration" and found["folds"] == 5
    assert list(found["methods"]) == ["baseline", "faircal", "fsn", "gst", "oracle",
                                      "group-norm"]
    for entry in found["methods"].values():
        assert METHOD_KEYS <= set(entry)
        assert set(entry["tpr_at_fpr"]) == {"0.001", "0.01"}
        assert set(entry["fpr_spread"]["0.001"]) >= {"aad", "mad", "std"}
        assert list(entry["groups"]) == GROUPS
        for group in entry["groups"].values():
            assert set(group["fpr"]) == {"0.001", "0.01"}
            assert {"ks", "ece", "brier"} <= set(group)
    lines = result.output.splitlines()
    assert "Calibration: 2400 pairs, 4 groups, 5 folds (file)" in result.output
    row = next(line for line in lines if line.startswith("faircal "))
    assert row.split()[1] == f"{found['methods']['faircal']['auroc']:.4f}"
    assert "fold 5/5" in result.output


def test_fit_then_apply_gives_the_fitted_scores(tmp_path, biased):
    fitted = run("calibrate", "fit", biased, "--method", "faircal", "--clusters", "6", "--out",
                 tmp_path / "cal.npz")
    assert fitted.exit_code == 0, fitted.output
    assert "faircal (beta) fitted on 2400 pairs of 320 images" in fitted.output
    applied = run("calibrate", "apply", tmp_path / "cal.npz", biased, "--out",
                  tmp_path / "scores.npz", "--json", tmp_path / "a.json")
    assert applied.exit_code == 0, applied.output
    scores = np.load(tmp_path / "scores.npz")
    calibration = load(tmp_path / "cal.npz")
    scored = ScoredPairs.of(read_pair_set(open_embeddings(biased)))
    np.testing.assert_array_equal(scores["confidence"],
                                  apply_calibration(calibration, scored).confidence)
    np.testing.assert_array_equal(scores["score"], scored.scores)
    found = json.loads((tmp_path / "a.json").read_text())
    assert list(found["methods"]) == ["faircal"] and found["folds"] == 1


def test_pair_eval_with_a_calibration_reads_p_as_the_score_2p_minus_1(tmp_path, biased):
    run("calibrate", "fit", biased, "--method", "oracle", "--out", tmp_path / "cal.npz")
    result = run("pair-eval", biased, "--calibration", tmp_path / "cal.npz", "--json",
                 tmp_path / "p.json")
    assert result.exit_code == 0, result.output
    found = json.loads((tmp_path / "p.json").read_text())
    pair_set = read_pair_set(open_embeddings(biased))
    confidence = apply_calibration(load(tmp_path / "cal.npz"),
                                   ScoredPairs.of(pair_set)).confidence
    expected = evaluate_pair_distances(4 * (1 - confidence), pair_set.issame,
                                       pair_set.pair_group, GROUPS, fold=pair_set.fold)
    assert found["groups"] == json.loads(json.dumps(expected["groups"]))
    assert found["calibration"]["method"] == "oracle"
    assert found["fold_assignment"] == "file"
    raw = run("pair-eval", biased).output
    assert "Pair protocol: 4 groups, 2400 pairs, 5 folds from the file" in raw


def test_a_calibration_for_another_model_is_refused(tmp_path, biased, rng):
    run("calibrate", "fit", biased, "--method", "baseline", "--out", tmp_path / "cal.npz")
    rows = rng.normal(size=(8, 16)).astype(np.float32)
    other = write_pairs_file(tmp_path / "other.h5", rows, np.array([True, False] * 2),
                             np.zeros(4, int), ["A"], model="another")
    for command in (["calibrate", "apply", tmp_path / "cal.npz", other],
                    ["pair-eval", other, "--calibration", tmp_path / "cal.npz"]):
        result = run(*command)
        assert result.exit_code == 1
        assert "model is 'another', but the calibration was fitted on embeddings with model " \
               "'net'" in result.output
        assert "Traceback" not in result.output


def test_fallbacks_are_counted_and_printed(tmp_path, rng):
    # one group has no impostor pair within it: gst leaves it unshifted, and says so
    pairs = biased_pairs(group_names=GROUPS, identities_per_group=20, images_per_identity=4,
                         pairs_per_group=600, dim=16, seed=2)
    pairs.pair_issame[pairs.group[pairs.pair_index[:, 0]] == 3] = True
    path = write_biased_pairs(tmp_path / "f.h5", pairs)
    result = run("calibrate", "cross-val", path, "--method", "gst", "--json", tmp_path / "f.json")
    assert result.exit_code == 0, result.output
    found = json.loads((tmp_path / "f.json").read_text())["methods"]["gst"]
    test_pairs = int((pairs.group[pairs.pair_index[:, 0]] == 3).sum())
    assert found["fallbacks"] == {"fitted": 5, "test_pairs": test_pairs}
    assert f"fallbacks to the global fit: gst 5 fitted, {test_pairs} test pairs" in result.output
    assert found["groups"]["D"]["fpr"]["0.001"] is None


def test_bad_input_is_a_one_line_error(tmp_path, biased):
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    result = run("calibrate", "apply", tmp_path / "junk.npz", biased)
    assert result.exit_code == 1 and "not a readable calibration file" in result.output
    result = run("calibrate", "cross-val", biased, "--method", "faircal", "--folds", "3")
    assert result.exit_code == 1
    assert "the file assigns its pairs to folds; --folds applies only" in result.output
    result = run("calibrate", "fit", biased, "--method", "faircal", "--clusters", "5000",
                 "--out", tmp_path / "c.npz")
    assert result.exit_code == 1 and "lower --clusters" in result.output
    assert not (tmp_path / "c.npz").exists()
    assert "Traceback" not in result.output


def test_inst_eval_and_ident_eval_take_a_calibration(tmp_path, biased):
    fitted = run("calibrate", "fit", biased, "--method", "gst", "--out", tmp_path / "cal.npz")
    assert fitted.exit_code == 0, fitted.output
    plain = run("inst-eval", biased, "--fpr", "0.01", "--method", "exact", "--json",
                tmp_path / "plain.json")
    calibrated = run("inst-eval", biased, "--fpr", "0.01", "--method", "exact", "--calibration",
                     tmp_path / "cal.npz", "--json", tmp_path / "cal.json")
    assert plain.exit_code == 0 and calibrated.exit_code == 0, calibrated.output
    before = json.loads((tmp_path / "plain.json").read_text())
    after = json.loads((tmp_path / "cal.json").read_text())
    assert before["model"] == "net" and after["model"] == "net + gst"
    assert after["calibration"]["file"] == str(tmp_path / "cal.npz")
    assert after["calibration"]["method"] == "gst"
    assert 0 <= after["results"][0]["threshold"] <= 1
    assert "calibrated scores" in calibrated.output
    ident = run("ident-eval", biased, "--fpir", "0.1", "--calibration", tmp_path / "cal.npz",
                "--json", tmp_path / "ident.json")
    assert ident.exit_code == 0, ident.output
    assert json.loads((tmp_path / "ident.json").read_text())["model"] == "net + gst"


def test_protocols_refuse_a_calibration_for_another_model(tmp_path, biased, rng):
    run("calibrate", "fit", biased, "--method", "baseline", "--out", tmp_path / "cal.npz")
    from embedding_files import write_images_file

    other = write_images_file(tmp_path / "other.h5", rng.normal(size=(40, 16)).astype(np.float32),
                              np.arange(40) // 4, np.zeros(40, int), ["A"], model="another")
    for command in ("inst-eval", "ident-eval"):
        result = run(command, other, "--calibration", tmp_path / "cal.npz")
        assert result.exit_code == 1
        assert "model is 'another', but the calibration was fitted" in result.output
