"""Config layering (defaults < YAML < --set), validation, shipped configs, checkpoint files."""
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
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
from mfftools.train.step import add_head

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_defaults_are_the_papers_recipe():
    config = TrainConfig()
    assert (config.model.type, config.model.arch, config.model.head) == ("mixfair", "r34", "mixfair")
    assert (config.model.s, config.model.cifp) == (64.0, True)
    optim = config.optim
    assert (optim.lr, optim.momentum, optim.weight_decay, optim.gamma) == (0.1, 0.9, 5e-4, 0.1)
    assert (optim.milestones, optim.epochs, optim.batch_size) == ([8, 18, 30, 34], 40, 128)
    assert config.data.horizontal_flip
    assert not config.amp  # the paper trained in float32
    # Its input scale is not the default (insightface's, which extraction assumes): the shipped
    # recipe sets it.
    assert (config.data.input_mean, config.data.input_std) == (0.5, 0.5)


@pytest.mark.parametrize("head, margin", [("mixfair", 0.35), ("cosface", 0.35), ("arcface", 0.5)])
def test_each_head_takes_its_papers_margin_by_default(head, margin):
    model_type = "mixfair" if head == "mixfair" else "iresnet"
    config = load_config(None, ["data.train=a.zip", f"model.type={model_type}", f"model.head={head}"])
    network = SimpleNamespace(num_features=8)
    assert add_head(network, config.model, num_classes=3).m == margin
    config = load_config(None, ["data.train=a.zip", f"model.type={model_type}", f"model.head={head}",
                                "model.m=0.2"])
    assert add_head(network, config.model, num_classes=3).m == 0.2


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("data:\n  train: a.zip\noptim:\n  lr: 0.5\n  milestones: [2]\nseed: 7\n")
    config = load_config(path, ["optim.lr=0.01", "model.head=cosface", "optim.milestones=[3, 4]", "model.m=null"])
    assert config.data.train == "a.zip" and config.seed == 7
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
    path.write_text("data: {train: a.zip}\n")
    if message is None:
        load_config(path, [override])
        return
    with pytest.raises(MfftoolsError, match=message):
        load_config(path, [override])


def test_a_resumed_run_starts_from_its_saved_config(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("optim: {epochs: 3}\n")
    run = tmp_path / "run"
    first = run_config(run, recipe, ["data.train=a.zip", "optim.lr=0.01"])
    run.mkdir()
    first.dump(run / "config.yaml")
    resumed = run_config(run, recipe, ["optim.epochs=5"], resume="auto")
    assert (resumed.data.train, resumed.optim.lr, resumed.optim.epochs) == ("a.zip", 0.01, 5)
    assert run_config(run, None, [], resume="auto") == first
    # A new run in the same folder does not read it.
    with pytest.raises(MfftoolsError, match="data.train is not set"):
        run_config(run, recipe, [])
    with pytest.raises(MfftoolsError) as caught:
        run_config(tmp_path / "elsewhere", None, ["data.train=a.zip"], resume="auto")
    assert str(caught.value) == (
        "--config is required (it may be left out only with --resume on a run folder): "
        f"{tmp_path / 'elsewhere' / 'config.yaml'} does not exist"
    )


def test_missing_training_zip_and_bad_yaml(tmp_path):
    with pytest.raises(MfftoolsError, match="data.train is not set"):
        load_config(None, [])
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: [unclosed\n")
    with pytest.raises(MfftoolsError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(MfftoolsError, match="cannot read config"):
        load_config(tmp_path / "absent.yaml")


def test_override_parsing():
    assert parse_override("optim.lr=0.001") == {"optim": {"lr": 0.001}}
    assert load_config(None, ["data.train=a", "optim.lr=1e-3"]).optim.lr == 1e-3  # YAML 1.1 reads a str
    assert parse_override("data.train=a=b.zip") == {"data": {"train": "a=b.zip"}}


@pytest.mark.parametrize("name", ["mixfair_r34_balancedface.yaml", "demo_tiny.yaml"])
def test_shipped_configs_load(name):
    config = load_config(CONFIGS / name, ["data.train=x.zip"])
    if name.startswith("mixfair_r34"):  # the defaults, with the paper's [0, 1] input
        assert config == load_config(None, ["data.train=x.zip", "data.workers=8", "eval.every=1",
                                            "model.m=0.35", "data.input_mean=0", "data.input_std=1"])
        assert not config.amp


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
    with pytest.raises(MfftoolsError, match="junk.pt: cannot read as a PyTorch checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    # Read weights only: a pickled Python object is refused, never run.
    torch.save({"model": {}, "head": {}, "optimizer": {}, "epoch": 1, "step": 1,
                "config": {"data": Path("a.zip")}}, tmp_path / "objects.pt")
    with pytest.raises(MfftoolsError, match=r"objects.pt: the file holds Python objects \(pathlib"):
        load_checkpoint(tmp_path / "objects.pt")
    torch.save({"model": {}}, tmp_path / "weights.pt")
    with pytest.raises(MfftoolsError, match="not a training checkpoint"):
        load_checkpoint(tmp_path / "weights.pt")


def test_the_former_name_of_data_train_is_read_as_it():
    assert load_config(None, ["data.train_zip=a.zip"]).data.train == "a.zip"
    with pytest.raises(MfftoolsError, match="'data.train' is given twice"):
        config_from_dict({"data": {"train_zip": "a.zip", "train": "b.zip"}})


def test_keys_a_saved_config_lacks_take_their_defaults():
    saved = TrainConfig().to_dict()
    del saved["optim"]["max_steps_per_epoch"], saved["model"]["pretrained"], saved["data"]["input_std"]
    saved["data"]["train_zip"] = saved["data"].pop("train")
    assert config_from_dict(saved) == TrainConfig()


@pytest.mark.parametrize("override, message", [
    ("data.input_mean=127.5", "config: data.input_mean 127.5 reads as a 0-255 scale, but pixels are "
     "scaled to [0, 1] before normalising: write 0.5 (127.5 / 255)"),
    ("data.input_std=255", "config: data.input_std 255 reads as a 0-255 scale, but pixels are "
     "scaled to [0, 1] before normalising: write 1 (255 / 255)"),
    ("data.input_std=0", "config: data.input_std must be within (0, 1] (got 0)"),
    ("data.input_mean=-0.1", "config: data.input_mean must be within [0, 1] (got -0.1)"),
    ("optim.backbone_lr_scale=-1", "config: optim.backbone_lr_scale must be 0 (a frozen backbone) or more"),
    ("data.group_by=[a, '']", "config: data.group_by must be a list of column names"),
])
def test_input_scale_and_fine_tuning_values_are_checked(override, message):
    with pytest.raises(MfftoolsError) as caught:
        load_config(None, ["data.train=a.zip", override])
    assert str(caught.value).startswith(message)


def test_the_run_config_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    path = tmp_path / "config.yaml"
    TrainConfig().dump(path)
    before = path.read_text()
    original = Path.write_text

    def half_then_fail(self, text, *args, **kwargs):
        original(self, text[: len(text) // 2], *args, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", half_then_fail)
    changed = TrainConfig()
    changed.optim.lr = 0.5
    with pytest.raises(OSError):
        changed.dump(path)
    monkeypatch.undo()
    assert path.read_text() == before and yaml.safe_load(before) == TrainConfig().to_dict()
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]
