"""The embeddings file and the report from Python."""
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import mfftools
from mfftools.cli import main
from mfftools.embeddings import partial_path

from .conftest import GROUPS


def test_save_writes_a_file_every_command_reads(tmp_path, faces):
    rows, identity, group = faces
    names = np.array(GROUPS)[group]
    path = mfftools.save(tmp_path / "e.h5", torch.from_numpy(rows), identity, names,
                         image_paths=[f"img/{k}.jpg" for k in range(len(rows))], model="mine")
    loaded = mfftools.load(path)
    assert isinstance(loaded, mfftools.Embeddings) and loaded.layout == "images"
    np.testing.assert_array_equal(loaded.read(), rows)
    np.testing.assert_array_equal(loaded.identity, identity)
    assert loaded.group_names == GROUPS and loaded.model_name == "mine"
    assert np.array(GROUPS)[loaded.group].tolist() == names.tolist()
    assert loaded.identity_names.tolist() == [str(label) for label in identity]
    assert loaded.image_paths[3] == "img/3.jpg"
    result = CliRunner().invoke(main, ["inst-eval", str(path), "--fpr", "1e-2", "--device",
                                       "cpu", "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    # the loaded object goes wherever a path does, its labels read once
    assert mfftools.instance(loaded, fpr=1e-2, device="cpu").to_dict() == json.loads(
        (tmp_path / "r.json").read_text())


def test_save_refuses_bad_rows_and_leaves_nothing(tmp_path, faces):
    rows, identity, group = faces
    rows = rows.copy()
    rows[70] = np.nan
    with pytest.raises(mfftools.MfftoolsError, match="embeddings row 70 contains NaN or Inf"):
        mfftools.save(tmp_path / "e.h5", rows, identity, group)
    assert not (tmp_path / "e.h5").exists() and not partial_path(tmp_path / "e.h5").exists()
    with pytest.raises(mfftools.MfftoolsError, match="image_paths must hold one path per"):
        mfftools.save(tmp_path / "e.h5", rows[:3], identity[:3], image_paths=["a"])
    assert not list(tmp_path.iterdir())


def test_report_of_results_in_memory_is_the_report_of_their_files(tmp_path, faces, rng):
    rows, identity, group = faces
    noisy = rows + 0.8 * rng.standard_normal(rows.shape).astype(np.float32)
    first = mfftools.instance(rows, identity, group, group_names=GROUPS, fpr=1e-2, device="cpu")
    second = mfftools.instance(noisy, identity, group, group_names=GROUPS, fpr=1e-2,
                               device="cpu")
    options = dict(bootstrap=20, permutations=99)
    files = mfftools.report({"clean": first, "noisy": second.to_dict()}, tmp_path / "api",
                            **options)
    assert isinstance(files, mfftools.ReportFiles)
    claims = json.loads(files.claims.read_text())
    compared = [claim for claim in claims if claim["model"] == "clean vs noisy"]
    assert len(compared) == 2 and all(claim["p_value"] <= 1 for claim in compared)
    first.save(tmp_path / "clean.json")
    second.save(tmp_path / "noisy.json")
    result = CliRunner().invoke(main, [
        "report", str(tmp_path / "clean.json"), str(tmp_path / "noisy.json"), "--out",
        str(tmp_path / "cli"), "--bootstrap", "20", "--permutations", "99", "--name",
        f"clean={tmp_path / 'clean.json'}", "--name", f"noisy={tmp_path / 'noisy.json'}"])
    assert result.exit_code == 0, result.output
    assert claims == json.loads((tmp_path / "cli" / "claims.json").read_text())
    # a list names its results by their model, else by position
    named = mfftools.report([first, tmp_path / "noisy.json"], tmp_path / "list", bootstrap=0,
                            permutations=0)
    models = [model for model, _, _ in named.report.sources]
    assert models == ["result 1", "noisy"]


def test_report_refuses_what_is_not_a_result(tmp_path):
    with pytest.raises(mfftools.MfftoolsError, match="result 1: a result of mfftools"):
        mfftools.report([42], tmp_path / "r")
    with pytest.raises(mfftools.MfftoolsError, match="<result 1>: key 'protocol' must be"):
        mfftools.report([{"protocol": "nothing"}], tmp_path / "r")
    assert not (tmp_path / "r").exists()
