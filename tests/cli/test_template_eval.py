"""`mfftools template-eval` through the command line, on a small IJB-style file."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from mfftools.cli import main
from mfftools.data.synthetic_embeddings import biased_pairs, write_biased_pairs
from embedding_files import write_ijb_file, write_images_file


@pytest.fixture
def ijb(tmp_path, rng):
    template = np.repeat(np.arange(1, 13), 3)
    media = np.arange(len(template)) // 2 + 100
    subject = (template - 1) // 3  # four subjects of three templates
    embeddings = (rng.normal(size=(4, 8))[subject] + 0.3 * rng.normal(size=(36, 8))).astype(np.float32)
    path = write_ijb_file(tmp_path / "ijb.h5", embeddings, template, media,
                          rng.uniform(0.5, 1, 36), flip=True)
    lines = [f"{a} {b} {int((a - 1) // 3 == (b - 1) // 3)}\n"
             for a in range(1, 13) for b in range(a + 1, 13)]
    (tmp_path / "pairs.txt").write_text("".join(lines) + "12 99 0\n")
    return path, tmp_path


def _run(*args):
    return _run_command("template-eval", *args)


def _run_command(*args):
    return CliRunner().invoke(main, [*map(str, args)])


def test_one_to_one_prints_and_writes_both_readings(ijb):
    path, folder = ijb
    result = _run(path, "--pairs", folder / "pairs.txt", "--far", "0.01", "--far", "0.1",
                  "--skip-missing", "--json", folder / "r.json")
    assert result.exit_code == 0, result.output
    assert "1:1: 66 pairs (12 genuine)" in result.output
    assert "skipped: 1 pairs and 1 templates without images in the file" in result.output
    results = json.loads((folder / "r.json").read_text())
    assert set(results["tar_at_far"]) == {"0.01", "0.1"}
    assert set(results["tar_at_far"]["0.1"]) >= {"nearest_roc_point", "exact"}
    assert results["skipped"] == {"pairs": 1, "n_templates": 1, "templates": [99]}
    assert 0.5 < results["auc"] <= 1.0


def test_bad_input_is_a_clean_error(ijb, rng):
    path, folder = ijb
    result = _run(path, "--pairs", folder / "pairs.txt")
    assert result.exit_code == 1 and "line 67: template 99 has no images" in result.output
    assert "Traceback" not in result.output
    result = _run(path)
    assert result.exit_code == 1 and "nothing to evaluate" in result.output
    (folder / "g.csv").write_text("TEMPLATE_ID,SUBJECT_ID\n1,0\n")
    result = _run(path, "--gallery", folder / "g.csv")
    assert result.exit_code == 1 and "1:N needs both --gallery" in result.output
    result = _run(path, "--pairs", folder / "pairs.txt", "--metadata", folder / "g.csv")
    assert result.exit_code == 1 and "--metadata joins subjects to templates" in result.output
    plain = write_images_file(folder / "plain.h5", rng.normal(size=(4, 8)).astype(np.float32),
                              np.array([0, 0, 1, 1]), np.zeros(4, np.int64), ["g"])
    result = _run(plain, "--pairs", folder / "pairs.txt")
    assert result.exit_code == 1 and "no 'template' and 'media' datasets" in result.output


IJB_GROUPS = ["skintone1-female", "skintone1-male", "skintone2-female", "skintone2-male"]


@pytest.fixture
def ijb_with_lists(tmp_path, rng):
    """Eight subjects of three templates (two media of three and two images each), two galleries
    of four subjects, every other template a probe; metadata for every subject; model `net`."""
    template = np.repeat(np.arange(1, 25), 5)
    media = template * 10 + (np.arange(len(template)) % 5 >= 3)
    subject = (template - 1) // 3
    centres = rng.normal(size=(8, 8))
    embeddings = (centres[subject] + 0.8 * rng.normal(size=(len(template), 8))).astype(np.float32)
    path = write_ijb_file(tmp_path / "ijb.h5", embeddings, template, media,
                          rng.uniform(0.5, 1, len(template)), model="net")
    lines = [f"{a} {b} {int((a - 1) // 3 == (b - 1) // 3)}\n"
             for a in range(1, 25) for b in range(a + 1, 25)]
    (tmp_path / "pairs.txt").write_text("".join(lines))
    first = {s: 3 * s + 1 for s in range(8)}
    for name, subjects in (("G1", range(4)), ("G2", range(4, 8))):
        (tmp_path / f"ijbc_1N_gallery_{name}.csv").write_text(
            "TEMPLATE_ID,SUBJECT_ID\n" + "".join(f"{first[s]},{s}\n" for s in subjects))
    (tmp_path / "ijbc_1N_probe_mixed.csv").write_text("TEMPLATE_ID,SUBJECT_ID\n" + "".join(
        f"{t},{(t - 1) // 3}\n" for t in range(1, 25) if t not in first.values()))
    (tmp_path / "metadata.csv").write_text("SUBJECT_ID,SKINTONE,GENDER\n" + "".join(
        f"{s},{1 + s % 2},{s // 2 % 2}\n" for s in range(8)))
    pairs = biased_pairs(group_names=IJB_GROUPS, identities_per_group=10, images_per_identity=3,
                         pairs_per_group=300, dim=8, bias=0.2, seed=5)
    write_biased_pairs(tmp_path / "cal_pairs.h5", pairs, model="net")
    return path, tmp_path


def _lists(folder):
    return ["--pairs", folder / "pairs.txt", "--gallery", folder / "ijbc_1N_gallery_G1.csv",
            "--gallery", folder / "ijbc_1N_gallery_G2.csv", "--probes",
            folder / "ijbc_1N_probe_mixed.csv", "--far", "0.01", "--far", "0.1",
            "--fpir", "0.25"]


@pytest.mark.parametrize("method", ["gst", "faircal"])
def test_a_calibration_scores_every_pair_and_search(ijb_with_lists, method):
    path, folder = ijb_with_lists
    fitted = _run_command("calibrate", "fit", folder / "cal_pairs.h5", "--method", method,
                          "--clusters", "4", "--out", folder / "cal.npz")
    assert fitted.exit_code == 0, fitted.output
    common = [path, *_lists(folder), "--metadata", folder / "metadata.csv"]
    plain = _run(*common, "--json", folder / "plain.json")
    calibrated = _run(*common, "--calibration", folder / "cal.npz", "--json", folder / "cal.json")
    assert plain.exit_code == 0, plain.output
    assert calibrated.exit_code == 0, calibrated.output
    assert "calibrated scores" in calibrated.output
    before = json.loads((folder / "plain.json").read_text())
    after = json.loads((folder / "cal.json").read_text())
    assert before["model"] == "net" and after["model"] == f"net + {method}"
    assert "calibration" not in before
    entry = after["calibration"]
    assert entry["method"] == method and entry["file"] == str(folder / "cal.npz")
    assert entry["templates_with_fallback"] == 0  # every template's group was fitted
    assert set(after["groups"]) == set(IJB_GROUPS)
    for result in (before, after):
        assert result["n_pairs"] == 276 and result["images"] == before["images"]
    for reading in after["tar_at_far"].values():
        assert reading["threshold"] is None or 0 <= reading["threshold"] <= 1
    for gallery in after["identification"]["galleries"].values():
        assert all(0 <= entry["threshold"] <= 1 for entry in gallery["results"])
        assert "calibration" not in gallery
    from mfftools.reporting.build import write_report

    report = write_report([folder / "plain.json", folder / "cal.json"], folder / "report",
                          bootstrap=19, permutations=0).report
    (section,) = [section for section in report.sections
                  if section.title == "1:N protocol before and after calibration"]
    assert [label for label, _ in section.items[-1].rows] == [
        f"net + {method}, gallery {name}, FPIR 0.25, {rate}" for name in ("G1", "G2")
        for rate in ("FNIR", "FPIR")]


def test_a_calibration_that_cannot_apply_is_refused(ijb_with_lists, rng):
    path, folder = ijb_with_lists
    for method, calibrator in (("gst", "beta"), ("baseline", "binning")):
        fitted = _run_command("calibrate", "fit", folder / "cal_pairs.h5", "--method", method,
                              "--calibrator", calibrator, "--out", folder / f"{method}.npz")
        assert fitted.exit_code == 0, fitted.output
    result = _run(path, "--pairs", folder / "pairs.txt", "--calibration", folder / "gst.npz")
    assert result.exit_code == 1 and "give --metadata" in result.output
    result = _run(path, "--pairs", folder / "pairs.txt", "--calibration",
                  folder / "baseline.npz")
    assert result.exit_code == 1 and "binning calibrator is not monotone" in result.output
    other = write_ijb_file(folder / "other.h5", rng.normal(size=(6, 8)).astype(np.float32),
                           np.array([1, 1, 2, 2, 3, 3]), np.arange(6), model="another")
    result = _run(other, "--pairs", folder / "pairs.txt", "--skip-missing", "--calibration",
                  folder / "gst.npz")
    assert result.exit_code == 1
    assert "model is 'another', but the calibration was fitted" in result.output
    assert "Traceback" not in result.output
