"""Config layering (defaults < YAML < --set), validation, shipped configs, checkpoint files."""
from pathlib import Path

import pytest
import torch

from mfftools.errors import MfftoolsError
from mfftools.train.checkpoint import (
    epoch_checkpoint_path,
    epoch_checkpoints,
    load_checkpoint,
    newest_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from mfftools.train.config import TrainConfig, config_from_dict, load_config, parse_override, run_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_defaults_are_the_papers_recipe():
    config = TrainConfig()
    assert (config.model.type, config.model.arch, config.model.head) == ("mixfair", "r34", "mixfair")
    assert (config.model.s, config.model.m, config.model.cifp) == (64.0, 0.35, True)
    optim = config.optim
    assert (optim.lr, optim.momentum, optim.weight_decay, optim.gamma) == (0.1, 0.9, 5e-4, 0.1)
    assert (optim.milestones, optim.epochs, optim.batch_size) == ([8, 18, 30, 34], 40, 128)
    assert config.data.horizontal_flip


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("data:\n  train_zip: a.zip\noptim:\n  lr: 0.5\n  milestones: [2]\nseed: 7\n")
    config = load_config(path, ["optim.lr=0.01", "model.head=cosface", "optim.milestones=[3, 4]", "model.m=null"])
    assert config.data.train_zip == "a.zip" and config.seed == 7
    assert config.optim.lr == 0.01 and config.optim.milestones == [3, 4]
    assert config.model.head == "cosface" and config.model.m is None
    assert config.optim.momentum == 0.9  # untouched default
    assert isinstance(load_config(path, ["optim.lr=1"]).optim.lr, float)
    assert config_from_dict(config.to_dict()) == config


@pytest.mark.parametrize("override, message", [
    ("optim.lrr=0.1", "unknown config key 'optim.lrr'"),
    ("optim.epochs=1.5", "'optim.epochs': expected int"),
    ("amp=yes please", "'amp': expected bool"),
    ("optim=3", "section optim must be a mapping"),
    ("lr", "expected key=value"),
    ("model.head=mixfair", None),
    ("model.type=iresnet", "model.head mixfair needs model.type mixfair"),
    ("eval.best_mode=median", "eval.best_mode must be max or min"),
    ("eval.identification=true", r"eval.identification needs eval.instance_zip \(1:N "
     r"identification searches the instance embeddings\)"),
    ("eval.target_fpir=1e-1", None),
    ("model.arch=r99", r"model.arch must be one of r18, r34, r50, r100, r200, r10-mini \(got 'r99'\)"),
])
def test_bad_values_are_named(tmp_path, override, message):
    path = tmp_path / "x.yaml"
    path.write_text("data: {train_zip: a.zip}\n")
    if message is None:
        load_config(path, [override])
        return
    with pytest.raises(MfftoolsError, match=message):
        load_config(path, [override])


def test_a_resumed_run_starts_from_its_saved_config(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("optim: {epochs: 3}\n")
    run = tmp_path / "run"
    first = run_config(run, recipe, ["data.train_zip=a.zip", "optim.lr=0.01"])
    run.mkdir()
    first.dump(run / "config.yaml")
    resumed = run_config(run, recipe, ["optim.epochs=5"], resume="auto")
    assert (resumed.data.train_zip, resumed.optim.lr, resumed.optim.epochs) == ("a.zip", 0.01, 5)
    assert run_config(run, None, [], resume="auto") == first
    # A new run in the same folder does not read it.
    with pytest.raises(MfftoolsError, match="data.train_zip is not set"):
        run_config(run, recipe, [])
    with pytest.raises(MfftoolsError) as caught:
        run_config(tmp_path / "elsewhere", None, ["data.train_zip=a.zip"], resume="auto")
    assert str(caught.value) == (
        "--config is required (it may be left out only with --resume on a run folder): "
        f"{tmp_path / 'elsewhere' / 'config.yaml'} does not exist"
    )


def test_missing_training_zip_and_bad_yaml(tmp_path):
    with pytest.raises(MfftoolsError, match="data.train_zip is not set"):
        load_config(None, [])
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: [unclosed\n")
    with pytest.raises(MfftoolsError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(MfftoolsError, match="cannot read config"):
        load_config(tmp_path / "absent.yaml")


def test_override_parsing():
    assert parse_override("optim.lr=0.001") == {"optim": {"lr": 0.001}}
    assert load_config(None, ["data.train_zip=a", "optim.lr=1e-3"]).optim.lr == 1e-3  # YAML 1.1 reads a str
    assert parse_override("data.train_zip=a=b.zip") == {"data": {"train_zip": "a=b.zip"}}


@pytest.mark.parametrize("name", ["mixfair_r34_balancedface.yaml", "demo_tiny.yaml"])
def test_shipped_configs_load(name):
    config = load_config(CONFIGS / name, ["data.train_zip=x.zip"])
    if name.startswith("mixfair_r34"):
        assert config == load_config(None, ["data.train_zip=x.zip", "data.workers=8", "eval.every=1"])


def test_checkpoints_are_atomic_listed_and_pruned(tmp_path):
    folder = tmp_path / "checkpoints"
    for epoch in (1, 2, 10):
        save_checkpoint({"model": {}, "head": {}, "optimizer": {}, "epoch": epoch, "step": epoch * 3,
                         "config": {}, "weights": torch.full((2,), float(epoch))},
                        epoch_checkpoint_path(folder, epoch))
    assert [p.name for p in epoch_checkpoints(folder)] == ["epoch_0001.pt", "epoch_0002.pt", "epoch_0010.pt"]
    assert newest_checkpoint(folder).name == "epoch_0010.pt"
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []
    assert load_checkpoint(newest_checkpoint(folder))["weights"].tolist() == [10.0, 10.0]
    prune_checkpoints(folder, keep=1)
    assert [p.name for p in epoch_checkpoints(folder)] == ["epoch_0010.pt"]
    assert newest_checkpoint(tmp_path / "none") is None


def test_bad_checkpoints_are_refused(tmp_path):
    with pytest.raises(MfftoolsError, match="does not exist"):
        load_checkpoint(tmp_path / "absent.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(MfftoolsError, match="cannot be read"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"model": {}}, tmp_path / "weights.pt")
    with pytest.raises(MfftoolsError, match="not a training checkpoint"):
        load_checkpoint(tmp_path / "weights.pt")
