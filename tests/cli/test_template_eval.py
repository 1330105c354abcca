"""`mfftools template-eval` through the command line, on a small IJB-style file."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from mfftools.cli import main
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
    return CliRunner().invoke(main, ["template-eval", *map(str, args)])


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
