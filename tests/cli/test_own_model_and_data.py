"""Your own model and data, end to end through the command line: an ONNX export of the project's
IResNet on the synthetic manifest, folder tree, BFW-style pair table and named .bin sets."""
import json
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from mfftools.cli import main
from mfftools.data.synthetic import synthesize
from mfftools.embeddings import open_embeddings
from model_files import cosines, export_onnx, small_iresnet

BFW_COLUMNS = "path1=p1,path2=p2,issame=label,group=a1"
SUBGROUPS = [f"{e}-{g}" for e in ("African", "Asian", "Caucasian", "Indian")
             for g in ("Female", "Male")]
FAST = ("--workers", "0", "--device", "cpu", "--batch-size", "32")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    synthesize(folder, identities_per_group=2, images_per_identity=1.5, max_images_per_identity=2,
               pairs_per_group=20, train_identities_per_group=2, train_images_per_identity=1,
               faces_identities_per_group=3, faces_images_per_identity=2,
               faces_pairs_per_group=20)
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    model = small_iresnet()
    torch.save(model.state_dict(), folder / "r10.pth")
    return {"onnx": export_onnx(model, folder / "r10.onnx"), "pth": folder / "r10.pth"}


def run(*args):
    return CliRunner().invoke(main, ["-q", *map(str, args)])


def test_manifest_with_an_onnx_model_then_inst_eval(tmp_path, data, models):
    out = tmp_path / "f.h5"
    result = run("extract", data / "faces.csv", "--model", models["onnx"], "--out", out, *FAST)
    assert result.exit_code == 0, result.output
    assert "model r10 (onnx, sha256 " in result.output
    assert "input 112x112 RGB mean 0.5 std 0.5, flip on" in result.output
    written = open_embeddings(out, layout="images")
    assert written.group_names == ["African", "Asian", "Caucasian", "Indian"]
    assert written.identity_names[0] == "f.0a0"
    evaluated = run("inst-eval", out, "--fpr", "1e-2", "--device", "cpu", "--json",
                    tmp_path / "inst.json")
    assert evaluated.exit_code == 0, evaluated.output
    results = json.loads((tmp_path / "inst.json").read_text())
    assert results["n_images"] == written.n_rows == 8 * 3 * 2
    assert set(results["results"][0]["groups"]) == set(written.group_names)
    checkpoint = run("extract", data / "faces.csv", "--model", models["pth"], "--out",
                     tmp_path / "pth.h5", *FAST)
    assert checkpoint.exit_code == 0, checkpoint.output
    assert cosines(written.read(), open_embeddings(tmp_path / "pth.h5").read()).min() > 0.99999


def test_folder_tree_and_group_by_give_the_eight_subgroups(tmp_path, data, models):
    tree = run("extract", data / "faces", "--model", models["onnx"], "--out", tmp_path / "t.h5",
               *FAST)
    assert tree.exit_code == 0, tree.output
    by_columns = run("extract", data / "faces.csv", "--group-by", "ethnicity,gender", "--model",
                     models["onnx"], "--out", tmp_path / "g.h5", *FAST)
    assert by_columns.exit_code == 0, by_columns.output
    from_tree = open_embeddings(tmp_path / "t.h5")
    from_manifest = open_embeddings(tmp_path / "g.h5")
    assert from_tree.group_names == from_manifest.group_names == SUBGROUPS
    np.testing.assert_array_equal(from_tree.group, from_manifest.group)
    np.testing.assert_array_equal(from_tree.read(), from_manifest.read())
    assert list(from_manifest.image_paths) == [f"faces/{path}" for path in from_tree.image_paths]


def test_bfw_pair_table_is_evaluated_on_its_folds(tmp_path, data, models):
    out = tmp_path / "pairs.h5"
    extracted = run("extract", data / "bfw_pairs.csv", "--columns",
                    BFW_COLUMNS + ",identity1=id1,identity2=id2", "--model", models["onnx"],
                    "--out", out, *FAST)
    assert extracted.exit_code == 0, extracted.output
    written = open_embeddings(out, layout="images")  # each image once, with the table's pairs
    assert written.group_names == SUBGROUPS
    np.testing.assert_array_equal(written.pair_fold, np.tile(np.repeat(np.arange(5), 4), 8))
    table = [line.split(",") for line in (data / "bfw_pairs.csv").read_text().splitlines()[1:]]
    assert sorted(written.image_paths) == sorted({path for row in table for path in row[1:3]})
    named = [[written.image_paths[k] for k in pair] for pair in written.pair_index]
    assert named == [row[1:3] for row in table]
    np.testing.assert_array_equal(written.pair_issame, [row[3] == "1" for row in table])
    identity_of = {path: person for row in table for path, person in zip(row[1:3], row[4:6])}
    assert list(written.identity_names) == [identity_of[path] for path in written.image_paths]
    assert f"{written.n_rows} embeddings of dim" in extracted.output
    assert f"images layout, {len(table)} pairs" in extracted.output
    evaluated = run("pair-eval", out, "--json", tmp_path / "r.json")
    assert evaluated.exit_code == 0, evaluated.output
    lines = evaluated.output.splitlines()
    assert lines[0] == "Pair protocol: 8 groups, 160 pairs, 5 folds from the file, mixfairface grid"
    assert [line.split()[0] for line in lines[2:10]] == SUBGROUPS
    results = json.loads((tmp_path / "r.json").read_text())
    assert results["fold_assignment"] == "file"
    assert all(len(group["fold_accuracies"]) == 5 for group in results["groups"].values())
    direct = run("pair-eval", data / "bfw_pairs.csv", "--columns", BFW_COLUMNS, "--model",
                 models["onnx"], "--groups", "Asian-Female,Indian-Male", *FAST, "--json",
                 tmp_path / "d.json")
    assert direct.exit_code == 0, direct.output
    chosen = json.loads((tmp_path / "d.json").read_text())
    assert chosen["group_names"] == ["Asian-Female", "Indian-Male"]
    for name in chosen["group_names"]:
        assert chosen["groups"][name]["fold_accuracies"] == pytest.approx(
            results["groups"][name]["fold_accuracies"], abs=1e-12)


def test_pair_eval_over_named_bin_sets(tmp_path, data, models):
    sets = tmp_path / "sets"
    sets.mkdir()
    shutil.copy(data / "rfw_bin" / "Asian_test.bin", sets / "lfw.bin")
    shutil.copy(data / "rfw_bin" / "Indian_test.bin", sets / "cfp_fp.bin")
    result = run("pair-eval", sets / "lfw.bin", sets / "cfp_fp.bin", "--model", models["onnx"],
                 *FAST, "--json", tmp_path / "sets.json")
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "sets.json").read_text())
    assert results["group_names"] == ["lfw", "cfp_fp"]
    assert result.output.splitlines()[0] == (
        "Pair protocol: 2 verification sets, 40 pairs, 10 contiguous folds, insightface grid")
    assert result.output.splitlines()[2].startswith("lfw ")
    assert results["mean_accuracy"] is None  # unrelated benchmarks: no mean across them
    folder = run("pair-eval", data / "rfw_bin", "--model", models["onnx"], *FAST)
    assert folder.exit_code == 0, folder.output
    assert [line.split()[0] for line in folder.output.splitlines()[2:6]] == [
        "African", "Asian", "Caucasian", "Indian"]


def test_a_manifest_is_not_pairs(data, models):
    result = run("pair-eval", data / "faces.csv", "--model", models["onnx"], *FAST)
    assert result.exit_code == 1
    assert "is a manifest of images (the instance protocol's input" in result.output
