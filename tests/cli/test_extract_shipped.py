"""`mfftools extract` on RFW as shipped and on IJB-C, aligned by their landmarks; template-eval
on the IJB-C look-alike."""
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from mfftools.cli import main
from mfftools.data.synthetic_shipped import write_shipped
from mfftools.embeddings import open_embeddings
from model_files import small_iresnet

SIZES = dict(rfw_identities_per_group=2, rfw_images_per_identity=2, rfw_pairs_per_group=20,
             ijbc_subjects=4, ijbc_templates_per_subject=2)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    out = tmp_path_factory.mktemp("shipped")
    summary = write_shipped(out, seed=1, **SIZES)
    checkpoint = out / "r10.pth"
    torch.save(small_iresnet().state_dict(), checkpoint)
    return out, summary, checkpoint


def _run(*args):
    return CliRunner().invoke(main, [*map(str, args)], catch_exceptions=False)


@pytest.fixture(scope="module")
def ijbc_h5(setup):
    out, summary, checkpoint = setup
    result = _run("extract", summary.ijbc_folder, "--model", checkpoint, "--arch", "r10-mini",
                  "--out", out / "ijbc.h5", "--workers", "0", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "faces aligned to the arcface-112 template" in result.output
    return out / "ijbc.h5"


def test_ijb_folder_gives_templates_media_and_scores(setup, ijbc_h5):
    _, summary, _ = setup
    embeddings = open_embeddings(ijbc_h5)
    tid_mid = [line.split() for line in
               (summary.ijbc_folder / "meta/ijbc_face_tid_mid.txt").read_text().splitlines()]
    np.testing.assert_array_equal(embeddings.template, [int(line[1]) for line in tid_mid])
    np.testing.assert_array_equal(embeddings.media, [int(line[2]) for line in tid_mid])
    assert embeddings.detector_score.dtype == np.float32
    assert len(embeddings.detector_score) == len(tid_mid)
    assert bool(embeddings.attrs["aligned"])
    assert embeddings.attrs["alignment_template"] == "arcface-112"
    assert embeddings.group_names == ["IJBC"]


def test_template_eval_runs_the_ijbc_look_alike_end_to_end(setup, ijbc_h5, tmp_path):
    _, summary, _ = setup
    meta = summary.ijbc_folder / "meta"
    result = _run("template-eval", ijbc_h5, "--pairs", meta / "ijbc_template_pair_label.txt",
                  "--gallery", meta / "ijbc_1N_gallery_G1.csv", "--gallery",
                  meta / "ijbc_1N_gallery_G2.csv", "--probes", meta / "ijbc_1N_probe_mixed.csv",
                  "--metadata", summary.ijbc_folder / "protocols/ijbc_metadata.csv",
                  "--fpir", "0.5", "--json", tmp_path / "t.json")
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "t.json").read_text())
    assert results["protocol"] == "template" and results["n_templates"] == 8
    assert results["settings"] == {"norm": "keep", "detector_score": "weight", "flip": True,
                                   "aligned": True, "alignment_template": "arcface-112"}
    assert results["n_genuine"] == 4 and results["n_pairs"] == 28
    assert set(results["identification"]["galleries"]) == {"G1", "G2"}
    assert all(name.startswith("skintone") for name in results["groups"])
    assert "1:N mean of the galleries" in result.output


def test_rfw_pairs_layout_feeds_pair_eval_with_its_folds(setup):
    out, summary, checkpoint = setup
    result = _run("extract", summary.rfw_folder, "--pairs", "--model", checkpoint, "--arch",
                  "r10-mini", "--out", out / "rfw_pairs.h5", "--workers", "0", "--no-progress")
    assert result.exit_code == 0, result.output
    embeddings = open_embeddings(out / "rfw_pairs.h5", layout="pairs")
    np.testing.assert_array_equal(embeddings.fold, np.tile(np.repeat(np.arange(10), 2), 4))
    result = _run("pair-eval", out / "rfw_pairs.h5")
    assert result.exit_code == 0, result.output
    assert "10 folds from the file" in result.output
    result = _run("extract", summary.rfw_folder, "--model", checkpoint, "--arch", "r10-mini",
                  "--out", out / "rfw.h5", "--workers", "0", "--no-progress")
    assert result.exit_code == 0, result.output
    assert open_embeddings(out / "rfw.h5").n_rows == 4 * 2 * 2


def test_images_without_landmarks_are_refused_or_skipped(setup, tmp_path):
    out, summary, checkpoint = setup
    manifest = tmp_path / "faces.csv"
    names = sorted(path.name for path in (summary.ijbc_folder / "loose_crop").iterdir())[:4]
    lines = [line for line in (summary.ijbc_folder / "meta/ijbc_name_5pts_score.txt")
             .read_text().splitlines() if line.split()[0] in names[:3]]
    (tmp_path / "points.txt").write_text("\n".join(lines) + "\n")
    manifest.write_text("path,identity,group\n" + "".join(
        f"{summary.ijbc_folder}/loose_crop/{name},p{k % 2},g\n" for k, name in enumerate(names)))
    common = ["--model", checkpoint, "--arch", "r10-mini", "--workers", "0", "--no-progress",
              "--landmarks", tmp_path / "points.txt"]
    result = CliRunner().invoke(main, ["extract", str(manifest), "--out", str(tmp_path / "a.h5"),
                                       *map(str, common)])
    assert result.exit_code == 1
    assert f"1 images have no landmarks, so they cannot be aligned: {summary.ijbc_folder}" in result.output
    assert not (tmp_path / "a.h5").exists()
    result = _run("extract", manifest, "--out", tmp_path / "b.h5", "--skip-bad-images", *common)
    assert result.exit_code == 0, result.output
    assert "skipped 1 bad image:" in result.output
    embeddings = open_embeddings(tmp_path / "b.h5")
    assert embeddings.n_rows == 3 and embeddings.detector_score is not None
