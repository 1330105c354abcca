"""Calibration from Python: the same calibration file, measures and tables as `calibrate`, and
calibrated evaluations equal to the commands'."""
import json

import numpy as np
from click.testing import CliRunner

import mfftools
from mfftools.cli import main


def command(*args):
    result = CliRunner().invoke(main, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output
    return result.output


def archive(path):
    with np.load(path, allow_pickle=False) as found:
        return {name: found[name] for name in found.files}


def test_fit_writes_the_commands_calibration_file(tmp_path, pairs_file):
    printed = command("calibrate", "fit", pairs_file, "--method", "faircal", "--clusters", "4",
                      "--out", tmp_path / "cli.npz")
    calibration = mfftools.calibrate(pairs_file, method="faircal", clusters=4)
    assert repr(calibration) in printed and calibration.file is None
    assert calibration.save(tmp_path / "api.npz") == tmp_path / "api.npz"
    assert calibration.file == tmp_path / "api.npz"
    ours, theirs = archive(tmp_path / "api.npz"), archive(tmp_path / "cli.npz")
    assert set(ours) == set(theirs)
    for name in ours:
        np.testing.assert_array_equal(ours[name], theirs[name])
    loaded = mfftools.Calibration.load(tmp_path / "cli.npz")
    assert loaded.method == "faircal" and repr(loaded).startswith("faircal (beta) fitted on")


def test_apply_and_cross_validation_give_the_commands_files(tmp_path, pairs_file):
    command("calibrate", "fit", pairs_file, "--method", "gst", "--out", tmp_path / "gst.npz")
    command("calibrate", "apply", tmp_path / "gst.npz", pairs_file, "--fpr", "0.01", "--json",
            tmp_path / "applied.json")
    applied = mfftools.Calibration.load(tmp_path / "gst.npz").apply(pairs_file, fpr=0.01)
    assert applied.to_dict() == json.loads((tmp_path / "applied.json").read_text())
    printed = command("calibrate", "cross-val", pairs_file, "--method", "baseline", "--method",
                      "oracle", "--folds", "3", "--json", tmp_path / "cv.json")
    result = mfftools.cross_validate(pairs_file, methods=["baseline", "oracle"], n_folds=3)
    assert result.to_dict() == json.loads((tmp_path / "cv.json").read_text())
    assert repr(result) in printed


def test_arrays_calibrate_as_their_file_does(tmp_path, pairs, pairs_file):
    first, second, issame, names = pairs
    from_file = mfftools.cross_validate(pairs_file, methods="gst", n_folds=3).to_dict()
    from_arrays = mfftools.cross_validate(first, second, issame, names, methods="gst",
                                          n_folds=3).to_dict()
    assert "source" not in from_arrays
    assert from_arrays == {key: value for key, value in from_file.items() if key != "source"}
    calibration = mfftools.calibrate(first, second, issame, names, method="gst")
    applied = calibration.apply(first, second, issame, names).to_dict()
    assert applied["calibration_file"] is None and applied["methods"]["gst"]["auroc"] > 0.5


def test_calibrated_evaluations_equal_the_commands(tmp_path, images_file, pairs_file):
    command("calibrate", "fit", pairs_file, "--method", "gst", "--out", tmp_path / "gst.npz")
    command("inst-eval", images_file, "--fpr", "1e-2", "--device", "cpu", "--calibration",
            tmp_path / "gst.npz", "--json", tmp_path / "inst.json")
    expected = json.loads((tmp_path / "inst.json").read_text())
    assert expected["model"] == "toy + gst"
    for calibration in (tmp_path / "gst.npz", mfftools.Calibration.load(tmp_path / "gst.npz")):
        result = mfftools.instance(images_file, fpr=1e-2, device="cpu", calibration=calibration)
        assert result.to_dict() == expected
    # fitted in memory: the same numbers; the results name no calibration file
    fitted = mfftools.calibrate(pairs_file, method="gst")
    result = mfftools.instance(images_file, fpr=1e-2, device="cpu", calibration=fitted)
    expected["calibration"].pop("file")
    assert result.to_dict() == expected
    command("pair-eval", pairs_file, "--calibration", tmp_path / "gst.npz", "--json",
            tmp_path / "pair.json")
    result = mfftools.pairs(pairs_file, calibration=tmp_path / "gst.npz")
    assert result.to_dict() == json.loads((tmp_path / "pair.json").read_text())
    command("ident-eval", images_file, "--fpir", "0.1", "--device", "cpu", "--calibration",
            tmp_path / "gst.npz", "--json", tmp_path / "ident.json")
    result = mfftools.identification(images_file, fpir=0.1, device="cpu",
                                     calibration=tmp_path / "gst.npz")
    assert result.to_dict() == json.loads((tmp_path / "ident.json").read_text())


def test_calibrated_templates_equal_the_command(tmp_path, ijb, rng):
    from embedding_files import write_pairs_file

    rows, template = ijb["rows"], ijb["template"]
    first, second = rng.integers(0, len(rows), 300), rng.integers(0, len(rows), 300)
    same = (template[first] - 1) // 3 == (template[second] - 1) // 3
    second[::2] = np.where(same[::2], second[::2], first[::2] ^ 1)  # about half genuine
    same = (template[first] - 1) // 3 == (template[second] - 1) // 3
    paired = np.empty((600, rows.shape[1]), np.float32)
    paired[0::2], paired[1::2] = rows[first], rows[second]
    pairs_file = write_pairs_file(tmp_path / "ijb_pairs.h5", paired, same, np.zeros(300, int),
                                  ["IJBC"], model="toy")
    command("calibrate", "fit", pairs_file, "--method", "faircal", "--clusters", "2", "--out",
            tmp_path / "cal.npz")
    folder = ijb["folder"]
    command("template-eval", ijb["file"], "--pairs", folder / "pairs.txt", "--far", "0.1",
            "--calibration", tmp_path / "cal.npz", "--json", tmp_path / "t.json")
    expected = json.loads((tmp_path / "t.json").read_text())
    assert expected["model"] == "toy + faircal"
    for calibration in (tmp_path / "cal.npz", mfftools.Calibration.load(tmp_path / "cal.npz")):
        result = mfftools.template(ijb["file"], pairs=folder / "pairs.txt", far=0.1,
                                   calibration=calibration)
        assert result.to_dict() == expected
