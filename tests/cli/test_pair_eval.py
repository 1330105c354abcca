"""`mfftools pair-eval` through click's CliRunner: embeddings files, .bin folders, bad input."""
import json
import pickle
import tempfile

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from embedding_files import write_images_file, write_pairs_file
from mfftools.cli import main
from mfftools.data.images import encode_image
from mfftools.embeddings import EmbeddingsWriter, open_embeddings
from mfftools.evaluation.pair import evaluate_pairs
from mfftools.models import loading
from mfftools.models.loading import ModelInfo

GROUPS = ["African", "Asian", "Caucasian", "Indian"]
PAIR_KEYS = {"protocol", "group_names", "groups", "mean_accuracy", "std", "ser"}
GROUP_KEYS = {"accuracy", "fold_accuracies", "tar_at_far_1e-3"}


def run(*args):
    return CliRunner().invoke(main, ["pair-eval", *map(str, args)])


def printed(result):
    """The lines the command printed, without the log lines (INFO ..., WARNING ...)."""
    return [line for line in result.output.splitlines()
            if not line.startswith(("DEBUG ", "INFO ", "WARNING "))]


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
    result = run(pairs_file, "--json", tmp_path / "out" / "pairs.json",
                 "--plots", tmp_path / "figs")
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


def test_images_layout_without_a_pair_list_is_refused(tmp_path, rng):
    path = write_images_file(tmp_path / "images.h5", rng.normal(size=(4, 4)).astype(np.float32),
                             np.array([0, 0, 1, 1]), np.zeros(4, np.int64), ["A"])
    result = run(path)
    assert result.exit_code == 1
    assert "an images-layout file without a pair list" in result.output
    assert "Traceback" not in result.output


def test_incomplete_file_is_refused(tmp_path):
    writer = EmbeddingsWriter.create(tmp_path / "partial.h5", layout="pairs", dim=4,
                                     group_names=["A"], pairs={"issame": [True], "pair_group": [0]})
    writer.close()
    result = run(tmp_path / "partial.h5.partial")
    assert result.exit_code == 1
    assert "incomplete" in result.output


def test_an_embeddings_file_is_evaluated_alone(pairs_file, bin_folder):
    result = run(pairs_file, bin_folder)
    assert result.exit_code == 1
    assert f"{pairs_file} is an embeddings file: evaluate it alone, not with other sources" in (
        result.output)


def test_model_options_need_images_to_extract(pairs_file, checkpoint):
    result = run(pairs_file, "--model", checkpoint[0])
    assert result.exit_code == 1
    assert f"{pairs_file} is an embeddings file: --model applies only to images to extract" in (
        result.output)


def write_bin(path, n_pairs, seed, content=None):
    """Genuine pairs: an image and a lightly noised copy; impostor pairs: two random images."""
    rng = np.random.default_rng(seed)
    if content is None:
        bins, issame = [], []
        for k in range(n_pairs):
            first = rng.integers(0, 256, (112, 112, 3))
            same = k % 2 == 0
            if same:
                second = first + rng.integers(-8, 9, first.shape)
            else:
                second = rng.integers(0, 256, first.shape)
            bins += [encode_image(np.clip(image, 0, 255), fmt="PNG") for image in (first, second)]
            issame.append(same)
        content = (bins, issame)
    path.write_bytes(pickle.dumps(content, protocol=pickle.HIGHEST_PROTOCOL))


@pytest.fixture
def bin_folder(tmp_path):
    folder = tmp_path / "rfw_bin"
    folder.mkdir()
    for seed, name in enumerate(GROUPS[:2]):
        write_bin(folder / f"{name}_test.bin", 10, seed)
    return folder


class TinyNet(torch.nn.Module):
    """A small embedding network that is not flip-symmetric."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, kernel_size=8, stride=8)
        self.fc = torch.nn.Linear(4 * 14 * 14, 16)

    def forward(self, images):
        return self.fc(torch.relu(self.conv(images)).flatten(1))


@pytest.fixture
def checkpoint(tmp_path, monkeypatch):
    """A checkpoint file that `load_model` turns into a TinyNet (an IResNet is too slow here)."""
    path = tmp_path / "tiny.pt"
    path.write_bytes(b"tiny weights")
    loads = []

    def load_tiny(model_path, arch=None):
        assert model_path == path
        loads.append(arch)
        info = ModelInfo(path=str(path), arch=arch or "tiny", model_type="iresnet",
                         checkpoint_format="mfftools", sha256="0" * 64)
        return TinyNet().eval(), info

    monkeypatch.setattr(loading, "load_model", load_tiny)
    return path, loads


def test_bin_folder_needs_a_model(bin_folder):
    result = run(bin_folder)
    assert result.exit_code == 1
    assert f"{bin_folder}: give --model to extract the embeddings of these images" in result.output


def test_bin_folder_is_extracted_into_save_path(tmp_path, bin_folder, checkpoint):
    save = tmp_path / "saved.h5"
    result = run(bin_folder, "--model", checkpoint[0], "--arch", "r18", "--save", save,
                 "--no-flip", "--batch-size", "8", "--workers", "0", "--device", "cpu",
                 "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    assert checkpoint[1] == ["r18"]
    embeddings = open_embeddings(save, layout="pairs")
    assert embeddings.group_names == ["African", "Asian"]
    assert embeddings.n_rows == 40 and embeddings.dim == 16
    assert not embeddings.attrs["flip"]
    written = json.loads((tmp_path / "r.json").read_text())
    assert written["source"] == str(bin_folder)
    assert written["model"] == embeddings.attrs["model"] == "iresnet-r18"
    expected = evaluate_pairs(embeddings)
    for name in ("African", "Asian"):
        folds = expected["groups"][name]["fold_accuracies"]
        assert written["groups"][name]["fold_accuracies"] == folds


def test_bin_folder_without_save_uses_a_temporary_file(tmp_path, bin_folder, checkpoint,
                                                       monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "temporary"))
    (tmp_path / "temporary").mkdir()
    result = run(bin_folder, "--model", checkpoint[0], "--workers", "0", "--device", "cpu",
                 "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    assert list((tmp_path / "temporary").iterdir()) == []
    written = json.loads((tmp_path / "r.json").read_text())
    # Flip TTA on by default; noised copies are far closer than random images.
    assert written["groups"]["African"]["accuracy"] >= 0.8
    assert "African" in result.output and "Asian" in result.output


def test_groups_select_from_a_folder(tmp_path, bin_folder, checkpoint):
    result = run(bin_folder, "--model", checkpoint[0], "--groups", "Asian", "--workers", "0",
                 "--device", "cpu", "--save", tmp_path / "asian.h5")
    assert result.exit_code == 0, result.output
    assert open_embeddings(tmp_path / "asian.h5").group_names == ["Asian"]
    assert printed(result)[0] == "Pair protocol: Asian, 10 pairs, 10 contiguous folds, mixfairface grid"
    missing = run(bin_folder, "--model", checkpoint[0], "--groups", ",".join(GROUPS))
    assert missing.exit_code == 1
    assert f"Error: {bin_folder}: no group Caucasian, Indian (it holds African, Asian)" in (
        missing.output)


def test_groups_select_from_an_embeddings_file(tmp_path, pairs_file):
    result = run(pairs_file, "--groups", "Indian,African", "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "r.json").read_text())
    assert written["group_names"] == ["African", "Indian"]
    assert written["n_pairs"] == 80
    everything = evaluate_pairs(open_embeddings(pairs_file))
    assert written["groups"]["Indian"] == everything["groups"]["Indian"]
    missing = run(pairs_file, "--groups", "Asian,Martian")
    assert missing.exit_code == 1
    assert f"Error: {pairs_file}: no group Martian (it holds {', '.join(GROUPS)})" in (
        missing.output)


def test_empty_folder(tmp_path, checkpoint):
    (tmp_path / "empty").mkdir()
    result = run(tmp_path / "empty", "--model", checkpoint[0])
    assert result.exit_code == 1
    assert "no .bin pair files (such as <Group>_test.bin or lfw.bin)" in result.output


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
def test_bad_bin_files_are_clean_errors(bin_folder, checkpoint, content, message):
    write_bin(bin_folder / "Indian_test.bin", 0, 0, content=content)
    result = run(bin_folder, "--model", checkpoint[0])
    assert result.exit_code == 1
    assert "Indian_test.bin" in result.output and message in result.output
    assert "unpickled code ran" not in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("attrs, name, expected", [
    ({}, None, None),
    ({"checkpoint": "/runs/a/best.pt"}, None, "best"),
    ({"checkpoint": "/runs/a/best.pt", "model": "iresnet-r34"}, None, "iresnet-r34"),
    ({"model": "iresnet-r34"}, "a", "a"),
])
def test_one_rule_for_the_model_name(tmp_path, rng, attrs, name, expected):
    rows = rng.normal(size=(40, 8)).astype(np.float32)
    path = write_pairs_file(tmp_path / "p.h5", rows, np.tile([True, False], 10), np.zeros(20, int),
                            ["A"], **attrs)
    result = run(path, "--json", tmp_path / "r.json", *(["--name", name] if name else []))
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "r.json").read_text()).get("model") == expected


def test_tar_at_far_is_shown_with_its_far_or_marked_unresolved(tmp_path, rng):
    # "small": 100 impostor pairs (90 to choose each threshold on); "large": 1,200 (1,080).
    sizes = {"small": 200, "large": 2400}
    issame = np.concatenate([np.tile([True, False], size // 2) for size in sizes.values()])
    pair_group = np.repeat([0, 1], list(sizes.values()))
    first = rng.normal(size=(len(issame), 8))
    second = np.where(issame[:, None], first + 0.8 * rng.normal(size=first.shape),
                      rng.normal(size=first.shape))
    rows = np.empty((2 * len(issame), 8), np.float32)
    rows[0::2], rows[1::2] = first, second
    path = write_pairs_file(tmp_path / "p.h5", rows, issame, pair_group, list(sizes))
    result = run(path, "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "r.json").read_text())
    small, large = written["groups"]["small"], written["groups"]["large"]
    assert not small["tar_at_far_resolvable"] and large["tar_at_far_resolvable"]
    lines = printed(result)
    assert lines[2].split()[-3:-1] == ["unresolved*", f"{small['far_at_tar_threshold']:.2g}"]
    assert lines[3].split()[-3:-1] == [f"{large['tar_at_far_1e-3']:.4f}",
                                       f"{large['far_at_tar_threshold']:.2g}"]
    assert lines[-2] == (
        "* unresolved: choosing a threshold at FAR=0.001 needs at least 1,000 impostor pairs "
        "besides the test fold, and there are as few as 90 (FAR steps of 1/90); 'at FAR' is what "
        "the thresholds found give"
    )
    assert min(written["roc"]["small"]["far"]) >= 1 / 100
    assert min(written["roc"]["large"]["far"]) >= 1 / 1200


def test_one_set_reads_as_one(tmp_path, rng):
    issame = np.tile([True, False], 30)
    rows = rng.normal(size=(120, 8)).astype(np.float32)
    path = write_pairs_file(tmp_path / "lfw.h5", rows, issame, np.zeros(60, int), ["lfw"])
    result = run(path)
    assert result.exit_code == 0, result.output
    lines = printed(result)
    assert lines[0] == "Pair protocol: lfw, 60 pairs, 10 contiguous folds, insightface grid"
    assert lines[2].startswith("lfw ")
    assert not any(line.startswith(("mean", "STD", "SER")) for line in lines)


def test_verification_sets_use_insightfaces_grid_and_stand_alone(tmp_path, rng):
    """lfw and cfp_fp are benchmarks of their own: insightface's grid, one line each, no mean,
    STD or SER across them; beside two demographic groups, those are over the groups only."""
    issame = np.tile([True, False], 40)
    rows = rng.normal(size=(160, 8)).astype(np.float32)
    rows[1::2][issame] = rows[0::2][issame] + 0.3 * rng.normal(size=(40, 8))
    sets = write_pairs_file(tmp_path / "sets.h5", rows, issame, np.repeat([0, 1], 40),
                            ["lfw", "cfp_fp"])
    result = run(sets, "--json", tmp_path / "sets.json")
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "sets.json").read_text())
    assert written["grid"] == "insightface" and written["verification_sets"] == ["lfw", "cfp_fp"]
    assert written["mean_accuracy"] is None and written["std"] is None and written["ser"] is None
    assert printed(result)[0].startswith("Pair protocol: 2 verification sets, 80 pairs")
    assert not any(line.startswith(("mean", "STD", "SER")) for line in printed(result))
    four = np.concatenate([rows, rows])
    mixed = write_pairs_file(tmp_path / "mixed.h5", four, np.tile(issame, 2),
                             np.repeat([0, 1, 2, 3], 40), ["lfw", "cfp_fp", "A", "B"])
    result = run(mixed, "--json", tmp_path / "mixed.json")
    written = json.loads((tmp_path / "mixed.json").read_text())
    groups = written["groups"]
    assert written["grid"] == "mixed"
    assert [groups[name]["grid"] for name in ("lfw", "cfp_fp", "A", "B")] == [
        "insightface", "insightface", "mixfairface", "mixfairface"]
    expected = [100 * groups[name]["accuracy"] for name in ("A", "B")]
    assert written["mean_accuracy"] == pytest.approx(np.mean(expected), rel=1e-15)
    assert written["std"] == pytest.approx(np.std(expected, ddof=1), rel=1e-12)
    assert "mean, STD and SER over the groups only: lfw, cfp_fp are benchmarks" in result.output
    result = run(mixed, "--grid", "insightface", "--json", tmp_path / "forced.json")
    forced = json.loads((tmp_path / "forced.json").read_text())
    assert forced["grid"] == "insightface"
    assert all(group["grid"] == "insightface" for group in forced["groups"].values())
