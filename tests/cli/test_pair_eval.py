"""`mfftools pair-eval` through click's CliRunner: embeddings files, .bin folders, bad input."""
import json
import pickle
import sys
import types

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import write_images_file, write_pairs_file
from mfftools.cli import main
from mfftools.data.images import encode_image
from mfftools.data.pair_bin import PairBinFolder
from mfftools.embeddings import EmbeddingsWriter, open_embeddings
from mfftools.evaluation.pair import evaluate_pairs

GROUPS = ["African", "Asian", "Caucasian", "Indian"]
PAIR_KEYS = {"protocol", "group_names", "groups", "mean_accuracy", "std", "ser"}
GROUP_KEYS = {"accuracy", "fold_accuracies", "tar_at_far_1e-3"}


def run(*args):
    return CliRunner().invoke(main, ["pair-eval", *map(str, args)])


@pytest.fixture
def pairs_file(tmp_path, rng):
    n_pairs = 4 * 40
    pair_group = np.repeat(np.arange(4), 40)
    issame = np.tile([True, False], n_pairs // 2)
    first = rng.normal(size=(n_pairs, 16))
    noise = np.where(pair_group == 2, 1.5, 0.7)[:, None]
    second = np.where(issame[:, None], first + noise * rng.normal(size=first.shape),
                      rng.normal(size=first.shape))
    rows = np.empty((2 * n_pairs, 16), np.float32)
    rows[0::2], rows[1::2] = first, second
    return write_pairs_file(tmp_path / "pairs.h5", rows, issame, pair_group, GROUPS)


def test_embeddings_file_table_json_and_plots(tmp_path, pairs_file):
    result = run(pairs_file, "--json", tmp_path / "out" / "pairs.json", "--plots", tmp_path / "figs")
    assert result.exit_code == 0, result.output
    expected = evaluate_pairs(open_embeddings(pairs_file))
    for name in GROUPS:
        group = expected["groups"][name]
        row = f"{group['accuracy'] * 100:.2f} +- {group['accuracy_std'] * 100:.2f}"
        assert any(line.startswith(name) and row in line for line in result.output.splitlines())
    assert f"{expected['mean_accuracy']:.2f}" in result.output
    assert f"{expected['std']:.2f}" in result.output
    assert f"{expected['ser']:.3f}" in result.output

    written = json.loads((tmp_path / "out" / "pairs.json").read_text())
    assert PAIR_KEYS <= set(written)
    assert written["protocol"] == "pair"
    assert written["group_names"] == GROUPS
    for name in GROUPS:
        assert GROUP_KEYS <= set(written["groups"][name])
        assert len(written["groups"][name]["fold_accuracies"]) == 10
        assert written["groups"][name]["accuracy"] == expected["groups"][name]["accuracy"]
    assert written["mean_accuracy"] == expected["mean_accuracy"]
    assert written["groups"]["Caucasian"]["accuracy"] < written["groups"]["African"]["accuracy"]
    for figure in ("pair_roc.png", "pair_accuracy.png"):
        assert (tmp_path / "figs" / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_images_layout_is_refused(tmp_path, rng):
    path = write_images_file(tmp_path / "images.h5", rng.normal(size=(4, 4)).astype(np.float32),
                             np.array([0, 0, 1, 1]), np.zeros(4, np.int64), ["A"])
    result = run(path)
    assert result.exit_code == 1
    assert "needs a 'pairs'-layout embeddings file" in result.output
    assert "Traceback" not in result.output


def test_incomplete_file_is_refused(tmp_path):
    writer = EmbeddingsWriter.create(tmp_path / "partial.h5", layout="pairs", dim=4,
                                     group_names=["A"], pairs={"issame": [True], "pair_group": [0]})
    writer.close()
    result = run(tmp_path / "partial.h5")
    assert result.exit_code == 1
    assert "incomplete" in result.output


def test_model_options_need_a_bin_folder(pairs_file, tmp_path):
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"x")
    result = run(pairs_file, "--model", checkpoint)
    assert result.exit_code == 1
    assert "apply only to a folder of .bin files" in result.output


def write_bin(path, n_pairs, seed, content=None):
    rng = np.random.default_rng(seed)
    if content is None:
        bins = [encode_image(rng.integers(0, 256, (112, 112, 3)), fmt="PNG")
                for _ in range(2 * n_pairs)]
        content = (bins, [bool(k % 2) for k in range(n_pairs)])
    path.write_bytes(pickle.dumps(content, protocol=pickle.HIGHEST_PROTOCOL))


@pytest.fixture
def bin_folder(tmp_path):
    folder = tmp_path / "rfw_bin"
    folder.mkdir()
    for seed, name in enumerate(GROUPS[:2]):
        write_bin(folder / f"{name}_test.bin", 10, seed)
    return folder


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"checkpoint")
    return path


@pytest.fixture
def fake_extract(monkeypatch):
    """Stands in for `mfftools.extract.extract`: reads the folder, writes a pairs-layout file."""
    calls = []

    def extract(source, model_path, out_path, **options):
        calls.append(dict(source=source, model_path=model_path, out_path=out_path, **options))
        folder = PairBinFolder(source)
        rng = np.random.default_rng(0)
        rows = rng.normal(size=(folder.n_rows, 8)).astype(np.float32)
        rows[1::2][folder.issame] = rows[0::2][folder.issame] + 0.1
        write_pairs_file(out_path, rows, folder.issame, folder.pair_group, folder.group_names)
        return out_path

    monkeypatch.setitem(sys.modules, "mfftools.extract", types.SimpleNamespace(extract=extract))
    return calls


def test_bin_folder_needs_a_model(bin_folder):
    result = run(bin_folder)
    assert result.exit_code == 1
    assert "give --model CHECKPOINT" in result.output


def test_bin_folder_is_extracted_into_save_path(tmp_path, bin_folder, checkpoint, fake_extract):
    save = tmp_path / "saved.h5"
    result = run(bin_folder, "--model", checkpoint, "--arch", "r18", "--save", save, "--no-flip",
                 "--batch-size", "8", "--device", "cpu", "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    (call,) = fake_extract
    assert call["out_path"] == save and call["model_path"] == checkpoint
    assert (call["arch"], call["flip"], call["batch_size"], call["device"]) == ("r18", False, 8, "cpu")
    assert open_embeddings(save, layout="pairs").group_names == ["African", "Asian"]
    written = json.loads((tmp_path / "r.json").read_text())
    assert written["source"] == str(bin_folder)
    expected = evaluate_pairs(open_embeddings(save))
    assert written["groups"]["African"]["accuracy"] == expected["groups"]["African"]["accuracy"]


def test_bin_folder_without_save_uses_a_temporary_file(bin_folder, checkpoint, fake_extract):
    result = run(bin_folder, "--model", checkpoint)
    assert result.exit_code == 0, result.output
    (call,) = fake_extract
    assert call["flip"] is True
    assert not call["out_path"].exists() and not call["out_path"].parent.exists()
    assert "African" in result.output and "Asian" in result.output


def test_missing_group_files(bin_folder, checkpoint, fake_extract):
    result = run(bin_folder, "--model", checkpoint, "--groups", ",".join(GROUPS))
    assert result.exit_code == 1
    assert "missing group files Caucasian_test.bin, Indian_test.bin" in result.output
    result = run(bin_folder, "--model", checkpoint, "--groups", "African")
    assert result.exit_code == 1
    assert "beyond --groups" in result.output
    assert not fake_extract


def test_empty_folder(tmp_path, checkpoint, fake_extract):
    (tmp_path / "empty").mkdir()
    result = run(tmp_path / "empty", "--model", checkpoint)
    assert result.exit_code == 1
    assert "_test.bin files" in result.output


class _Payload:
    def __reduce__(self):
        return (print, ("unpickled code ran",))


@pytest.mark.parametrize(
    "content, message",
    [
        ((_Payload(), [True]), "refused to unpickle a forbidden type"),
        (([b"a", b"b", b"c"], [True]), "holds 3 images"),
        (([b"a", b"b", b"c", b"d"], [True]), "issame has 1 entries for 4 images"),
    ],
)
def test_bad_bin_files_are_clean_errors(bin_folder, checkpoint, fake_extract, content, message):
    write_bin(bin_folder / "Indian_test.bin", 0, 0, content=content)
    result = run(bin_folder, "--model", checkpoint)
    assert result.exit_code == 1
    assert "Indian_test.bin" in result.output and message in result.output
    assert "unpickled code ran" not in result.output
    assert "Traceback" not in result.output
