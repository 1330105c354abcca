"""`mfftools train` through click's CliRunner."""
import json
import shlex
from pathlib import Path

import torch
import yaml
from click.testing import CliRunner

from mfftools.cli import main
from mfftools.train import trainer
from mfftools.train.checkpoint import load_checkpoint
from mfftools.train.metrics import read_metrics

from train.trainer_fixtures import tiny_builder, write_folder_tree, write_training_zip

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _config(tmp_path, train_data):
    path = tmp_path / "tiny.yaml"
    path.write_text(
        f"device: cpu\nlog_every: 2\ndata: {{train: {train_data}, workers: 0}}\n"
        "optim: {epochs: 1, batch_size: 8}\neval: {every: 0}\n"
    )
    return path


def test_train_command_runs_resumes_and_reports(tmp_path, monkeypatch):
    monkeypatch.setattr(trainer, "build_network", tiny_builder())
    train_zip = write_training_zip(tmp_path / "train.zip", n_classes=4, per_class=4)
    config = _config(tmp_path, train_zip)
    run = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", "--config", str(config), "--set", "optim.lr=0.01",
                                       "--set", "optim.max_steps_per_epoch=1", "--out", str(run),
                                       "--no-progress"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["epochs"] == 1 and summary["step"] == 1  # 16 images hold 2 batches of 8
    assert [r["lr"] for r in read_metrics(run) if r["kind"] == "epoch"] == [0.01]

    # Resuming without --config takes RUN_DIR/config.yaml; --set extends the run.
    result = CliRunner().invoke(main, ["train", "--resume", "auto", "--set", "optim.epochs=2",
                                       "--out", str(run), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["step"] == 2


def test_resume_keeps_the_runs_earlier_settings_and_applies_what_is_given_now(tmp_path, monkeypatch):
    monkeypatch.setattr(trainer, "build_network", tiny_builder())
    train_zip = write_training_zip(tmp_path / "train.zip", n_classes=4, per_class=4)
    config = _config(tmp_path, train_zip)
    run = tmp_path / "run"
    first = ["train", "--config", str(config), "--set", "optim.lr=0.01", "--set", "optim.max_steps_per_epoch=1",
             "--out", str(run), "--no-progress"]
    assert CliRunner().invoke(main, first).exit_code == 0
    # The same --config again, without the first run's --set values: they are kept.
    result = CliRunner().invoke(main, ["train", "--resume", "auto", "--config", str(config),
                                       "--set", "optim.epochs=2", "--out", str(run), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["step"] == 2
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert (saved["optim"]["lr"], saved["optim"]["max_steps_per_epoch"], saved["optim"]["epochs"]) == (0.01, 1, 2)
    assert [r["lr"] for r in read_metrics(run) if r["kind"] == "epoch"] == [0.01, 0.01]


def test_train_command_errors_are_clean(tmp_path, monkeypatch):
    monkeypatch.setattr(trainer, "build_network", tiny_builder())
    train_zip = write_training_zip(tmp_path / "train.zip", n_classes=4, per_class=4)
    config = _config(tmp_path, train_zip)
    runner = CliRunner()
    result = runner.invoke(main, ["train", "--out", str(tmp_path / "run")])
    assert result.exit_code == 1 and "--config is required" in result.output
    result = runner.invoke(main, ["train", "--config", str(config), "--set", "optim.speed=3",
                                  "--out", str(tmp_path / "run")])
    assert result.exit_code == 1 and "unknown config key 'optim.speed'" in result.output
    result = runner.invoke(main, ["train", "--config", str(config), "--set", "model.arch=r99",
                                  "--out", str(tmp_path / "run")])
    assert result.exit_code == 1 and result.output == (
        "Error: config: model.arch must be one of r18, r34, r50, r100, r200, r10-mini (got 'r99')\n"
    )
    result = runner.invoke(main, ["train", "--config", str(config), "--set", "optim.batch_size=64",
                                  "--out", str(tmp_path / "run")])
    assert result.exit_code == 1 and "fewer than one batch of 64" in result.output
    result = runner.invoke(main, ["train", "--config", str(config), "--set", "eval.pair_bin=/nowhere",
                                  "--set", "eval.every=1", "--out", str(tmp_path / "run")])
    assert result.exit_code == 1 and "eval.pair_bin: /nowhere does not exist" in result.output


def test_the_help_example_runs_as_written(tmp_path, monkeypatch):
    from mfftools.data.synthetic import synthesize

    help_text = CliRunner().invoke(main, ["train", "--help"]).output.replace("\\\n", " ")
    lines = [line.strip() for line in help_text.splitlines()]
    assert "mfftools synth synth/" in lines
    example = next(line for line in lines if line.startswith("mfftools train"))
    # Where the example runs: a checkout's configs/ and `mfftools synth synth/` (smaller here).
    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").symlink_to(CONFIGS)
    synthesize(tmp_path / "synth", identities_per_group=3, images_per_identity=2, max_images_per_identity=3,
               pairs_per_group=20, train_identities_per_group=3, train_images_per_identity=3)
    monkeypatch.setattr(trainer, "build_network", tiny_builder())
    quick = ["--set", "optim.epochs=1", "--set", "optim.max_steps_per_epoch=1", "--no-progress"]
    result = CliRunner().invoke(main, shlex.split(example)[1:] + quick)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / "demo" / "eval" / "epoch_0001_pair.json").is_file()


def test_under_torchrun_rank_0_alone_prints_an_error(tmp_path):
    train_zip = write_training_zip(tmp_path / "train.zip", n_classes=2, per_class=2)
    args = ["train", "--config", str(_config(tmp_path, train_zip)), "--set", "model.arch=r99", "--out",
            str(tmp_path / "run")]
    message = "Error: config: model.arch must be one of r18, r34, r50, r100, r200, r10-mini (got 'r99')\n"
    for rank, output in (("0", message), ("1", "")):
        result = CliRunner().invoke(main, args, env={"RANK": rank, "LOCAL_RANK": rank, "WORLD_SIZE": "2"})
        assert (result.exit_code, result.output) == (1, output)


def test_train_on_a_folder_tree_then_resume_on_another_number_of_processes(tmp_path, monkeypatch):
    monkeypatch.setattr(trainer, "build_network", tiny_builder())
    tree = write_folder_tree(tmp_path / "faces", n_classes=4, per_class=4)
    run = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", "--config", str(_config(tmp_path, tree)), "--out", str(run),
                                       "--no-progress"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["step"] == 2  # 16 images, 2 batches of 8
    checkpoint = run / "checkpoints" / "epoch_0001.pt"
    assert load_checkpoint(checkpoint)["group_names"] == ["GA", "GB"]

    state = load_checkpoint(checkpoint)
    state.update(world_size=2, global_batch=16)  # as if it had run on two processes
    torch.save(state, checkpoint)
    resume = ["train", "--resume", "auto", "--set", "optim.epochs=2", "--out", str(run), "--no-progress"]
    result = CliRunner().invoke(main, resume)
    assert result.exit_code == 1 and result.output.startswith(
        f"Error: cannot resume from {checkpoint}: it was trained on 2 processes (global batch 16)")
    result = CliRunner().invoke(main, resume + ["--allow-world-size-change"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["step"] == 4


def test_training_data_of_another_kind_is_refused_in_one_line(tmp_path):
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("path1,path2,issame\na.png,b.png,1\n")
    run = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", "--config", str(_config(tmp_path, pairs)), "--out", str(run)])
    assert result.exit_code == 1
    assert result.output == (
        f"Error: config data.train {pairs}: a pair list holds no identities to train on; training data "
        "are a training zip (data/index.txt and data/img/), a manifest (.csv/.tsv with columns path, "
        "identity and group) or a folder tree <group>/<identity>/<image>\n")
    assert not run.exists()
