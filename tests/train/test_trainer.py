"""The training loop: records, checkpoints, crash and resume, DDP against one process."""
import functools
import logging
import math
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
import yaml

from mfftools.errors import MfftoolsError
from mfftools.models.iresnet import iresnet
from mfftools.train import step, trainer
from mfftools.train.checkpoint import epoch_checkpoints, load_checkpoint
from mfftools.train.config import config_from_dict
from mfftools.train.metrics import read_metrics

from trainer_fixtures import small_config, tiny_builder, write_training_zip


@pytest.fixture(scope="module")
def train_zip(tmp_path_factory):
    return write_training_zip(tmp_path_factory.mktemp("data") / "train.zip")


def _losses(run_dir, kinds=("train", "epoch")):
    return [(r["kind"], r["epoch"], r["step"], r["loss"], r["lr"]) for r in read_metrics(run_dir) if r["kind"] in kinds]


def _final_weights(run_dir):
    return load_checkpoint(epoch_checkpoints(run_dir / "checkpoints")[-1])


def test_run_writes_records_checkpoints_and_config(train_zip, tmp_path, monkeypatch):
    monkeypatch.setattr(trainer, "build_network", tiny_builder())
    config = small_config(train_zip, keep_checkpoints=2)
    summary = trainer.train(config, tmp_path / "run", progress=False)
    run = tmp_path / "run"
    # 36 images, batch 8 -> 4 steps per epoch (drop_last), 3 epochs.
    assert summary["epochs"] == 3 and summary["step"] == 12
    records = read_metrics(run)
    assert [r["step"] for r in records if r["kind"] == "train"] == list(range(1, 13))
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert [r["lr"] for r in epochs] == pytest.approx([0.05, 0.005, 0.0005])
    assert all(r["images_per_s"] > 0 for r in epochs)
    # Only the newest two epoch checkpoints are kept; no temporary files remain.
    assert [p.name for p in epoch_checkpoints(run / "checkpoints")] == ["epoch_0002.pt", "epoch_0003.pt"]
    assert not list((run / "checkpoints").glob(".*tmp"))
    state = _final_weights(run)
    assert state["epoch"] == 3 and state["step"] == 12 and state["model_type"] == "mixfair"
    assert state["scheduler"]["last_epoch"] == 3
    assert config_from_dict(state["config"]) == config
    assert yaml.safe_load((run / "config.yaml").read_text()) == config.to_dict()
    log = (run / "train.log").read_text()
    assert "epoch: epoch 3, step 12: loss=" in log
    # The loss went down on this easy data.
    assert epochs[-1]["loss"] < epochs[0]["loss"]


def test_crash_and_resume_reproduce_the_uninterrupted_run(train_zip, tmp_path, monkeypatch):
    config = small_config(train_zip)
    monkeypatch.setattr(trainer, "build_network", tiny_builder())
    trainer.train(config, tmp_path / "straight", progress=False)

    # Crash during epoch 2 (each MixFair step calls the trunk once; 4 steps per epoch).
    monkeypatch.setattr(trainer, "build_network", tiny_builder(crash_at_call=7))
    with pytest.raises(RuntimeError, match="simulated crash"):
        trainer.train(config, tmp_path / "crashed", progress=False)
    assert [p.name for p in epoch_checkpoints(tmp_path / "crashed" / "checkpoints")] == ["epoch_0001.pt"]
    with pytest.raises(MfftoolsError, match="--resume auto"):
        trainer.train(config, tmp_path / "crashed", progress=False)

    monkeypatch.setattr(trainer, "build_network", tiny_builder())
    trainer.train(config, tmp_path / "crashed", resume="auto", progress=False)

    assert _losses(tmp_path / "crashed") == _losses(tmp_path / "straight")
    resumed, straight = _final_weights(tmp_path / "crashed"), _final_weights(tmp_path / "straight")
    for key, value in straight["model"].items():
        assert torch.equal(resumed["model"][key], value), key
    assert resumed["optimizer"]["state"].keys() == straight["optimizer"]["state"].keys()
    for index, entry in straight["optimizer"]["state"].items():
        assert torch.equal(resumed["optimizer"]["state"][index]["momentum_buffer"], entry["momentum_buffer"])


def test_resume_refuses_a_changed_recipe(train_zip, tmp_path, monkeypatch):
    monkeypatch.setattr(trainer, "build_network", tiny_builder())
    config = small_config(train_zip, optim__epochs=1)
    trainer.train(config, tmp_path / "run", progress=False)
    changed = small_config(train_zip, optim__epochs=2, optim__lr=0.2)
    with pytest.raises(MfftoolsError, match=r"optim.lr: 0.05 -> 0.2"):
        trainer.train(changed, tmp_path / "run", resume="auto", progress=False)
    # Extending the number of epochs is allowed, and continues from the checkpoint's step.
    longer = small_config(train_zip, optim__epochs=2)
    summary = trainer.train(longer, tmp_path / "run", resume="auto", progress=False)
    assert summary["epochs"] == 2 and summary["step"] == 8


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ddp_worker(rank, world_size, port, config_dict, run_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size))
    torch.set_num_threads(1)
    trainer.build_network = tiny_builder(with_norm=False)
    trainer.train(config_from_dict(config_dict), run_dir, progress=False)


def test_two_process_ddp_equals_one_process_on_the_same_global_batch(train_zip, tmp_path, monkeypatch):
    # Per-sample loss (no batch norm, no dropout, no flips, CosFace head): the global batch of
    # 2 x 8 images split over two gloo processes must give the single process's 16-image steps.
    common = dict(model__type="mixfair", model__head="cosface", data__horizontal_flip=False, log_every=1)
    single = small_config(train_zip, optim__batch_size=16, **common)
    monkeypatch.setattr(trainer, "build_network", tiny_builder(with_norm=False))
    trainer.train(single, tmp_path / "single", progress=False)

    distributed = small_config(train_zip, optim__batch_size=8, **common)
    mp.start_processes(_ddp_worker, args=(2, _free_port(), distributed.to_dict(), tmp_path / "ddp"),
                       nprocs=2, start_method="spawn")

    single_losses, ddp_losses = _losses(tmp_path / "single"), _losses(tmp_path / "ddp")
    assert [row[:3] for row in ddp_losses] == [row[:3] for row in single_losses]
    assert len(single_losses) == 3 * 2 + 3  # 36 images, 16 per step: 2 steps per epoch
    torch.testing.assert_close(
        torch.tensor([row[3] for row in ddp_losses]), torch.tensor([row[3] for row in single_losses]),
        rtol=1e-5, atol=1e-5,
    )
    ddp_state, single_state = _final_weights(tmp_path / "ddp"), _final_weights(tmp_path / "single")
    for key, value in single_state["model"].items():
        torch.testing.assert_close(ddp_state["model"][key], value, rtol=1e-4, atol=1e-5, msg=key)
    # The run moved away from its initial weights, so the comparison above means something.
    torch.manual_seed(single.seed)
    initial, _ = tiny_builder(with_norm=False)(single.model, 6)
    assert not torch.allclose(initial.mid.weight, single_state["model"]["mid.weight"])


def test_the_head_is_sized_to_the_networks_embedding(train_zip, tmp_path, monkeypatch):
    # An IResNet with a 128-d embedding: the margin head must take 128-d inputs.
    monkeypatch.setattr(step, "iresnet", functools.partial(iresnet, num_features=128))
    config = small_config(train_zip, optim__epochs=1, optim__max_steps_per_epoch=2)
    config.model.type, config.model.arch, config.model.head = "iresnet", "r10-mini", "cosface"
    summary = trainer.train(config, tmp_path / "run", progress=False)
    state = _final_weights(tmp_path / "run")
    assert state["head"]["weight"].shape == (6, 128) and state["model"]["fc.weight"].shape[0] == 128
    assert summary["step"] == 2 and math.isfinite(summary["loss"])


def test_checkpoint_of_the_real_network_loads_for_extraction(tmp_path):
    from mfftools.models.loading import load_model
    from mfftools.models.mixfair import MixFairFaceNet

    train_zip = write_training_zip(tmp_path / "train.zip", n_classes=3, per_class=2)
    config = small_config(train_zip, optim__epochs=1, optim__batch_size=2, optim__max_steps_per_epoch=1)
    config.model.arch = "r18"
    trainer.train(config, tmp_path / "run", progress=False)
    path = epoch_checkpoints(tmp_path / "run" / "checkpoints")[-1]
    model, info = load_model(path)
    assert isinstance(model, MixFairFaceNet) and (info.arch, info.model_type) == ("r18", "mixfair")
    assert info.checkpoint_format == "mfftools" and info.num_classes == 3
    saved = load_checkpoint(path)["model"]
    assert all(torch.equal(value, saved[key]) for key, value in model.state_dict().items())


def _assert_same_run(run, reference):
    """Bit-identical losses, learning rates and final weights."""
    assert _losses(run) == _losses(reference)
    got, want = _final_weights(run), _final_weights(reference)
    assert got["step"] == want["step"]
    for key, value in want["model"].items():
        assert torch.equal(got["model"][key], value), key


def test_resume_mid_epoch_with_loader_workers_repeats_the_uninterrupted_run(train_zip, tmp_path, monkeypatch):
    # Persistent loader workers start once per process: a resumed process starts them in a later
    # epoch than the uninterrupted one, and that must not move any random draw (dropout here).
    config = small_config(train_zip, data__workers=1)
    monkeypatch.setattr(trainer, "build_network", tiny_builder())
    trainer.train(config, tmp_path / "straight", progress=False)

    # Crash during epoch 3 (4 steps per epoch, one trunk call per step), resume from epoch 2.
    monkeypatch.setattr(trainer, "build_network", tiny_builder(crash_at_call=10))
    with pytest.raises(RuntimeError, match="simulated crash"):
        trainer.train(config, tmp_path / "crashed", progress=False)
    assert epoch_checkpoints(tmp_path / "crashed" / "checkpoints")[-1].name == "epoch_0002.pt"
    monkeypatch.setattr(trainer, "build_network", tiny_builder())
    trainer.train(config, tmp_path / "crashed", resume="auto", progress=False)

    _assert_same_run(tmp_path / "crashed", tmp_path / "straight")


def test_the_number_of_loader_workers_does_not_change_the_numbers(train_zip, tmp_path, monkeypatch):
    monkeypatch.setattr(trainer, "build_network", tiny_builder())
    for workers in (0, 2):
        trainer.train(small_config(train_zip, data__workers=workers), tmp_path / f"workers{workers}", progress=False)
    _assert_same_run(tmp_path / "workers2", tmp_path / "workers0")


def _doctor(path, change):
    """Rewrite the checkpoint at `path` with `change(state)` applied."""
    state = load_checkpoint(path)
    change(state)
    torch.save(state, path)


def test_a_checkpoint_of_an_older_version_resumes(train_zip, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(trainer, "build_network", tiny_builder())
    config = small_config(train_zip)
    trainer.train(config, tmp_path / "straight", progress=False)

    trainer.train(small_config(train_zip, optim__epochs=1), tmp_path / "old", progress=False)

    def as_older_versions_wrote_it(state):
        # No schedule, world size or input record; a config without the keys added since, and
        # the training data under its former name.
        for key in ("scheduler", "world_size", "global_batch", "preprocessing", "pretrained"):
            del state[key]
        saved = state["config"]
        del saved["optim"]["max_steps_per_epoch"], saved["optim"]["backbone_lr_scale"]
        del saved["model"]["pretrained"], saved["data"]["input_mean"], saved["data"]["input_std"]
        saved["data"]["train_zip"] = saved["data"].pop("train")

    _doctor(tmp_path / "old" / "checkpoints" / "epoch_0001.pt", as_older_versions_wrote_it)
    (tmp_path / "old" / "config.yaml").write_text(yaml.safe_dump(
        load_checkpoint(tmp_path / "old" / "checkpoints" / "epoch_0001.pt")["config"]))
    with caplog.at_level(logging.WARNING, logger="mfftools"):
        trainer.train(config, tmp_path / "old", resume="auto", progress=False)
    assert "epoch_0001.pt holds no learning-rate schedule: it continues from epoch 1's" in caplog.text
    assert "epoch_0001.pt does not record how many processes trained it" in caplog.text
    # The milestones still fall where they did: the same learning rates, losses and weights.
    _assert_same_run(tmp_path / "old", tmp_path / "straight")


def test_resuming_on_another_number_of_processes_is_refused_unless_allowed(train_zip, tmp_path, monkeypatch,
                                                                          caplog):
    caplog.set_level(logging.INFO, logger="mfftools")  # the command line's default level
    monkeypatch.setattr(trainer, "build_network", tiny_builder())
    run = tmp_path / "run"
    trainer.train(small_config(train_zip, optim__epochs=1), run, progress=False)
    state = load_checkpoint(run / "checkpoints" / "epoch_0001.pt")
    assert (state["world_size"], state["global_batch"]) == (1, 8)
    assert "global batch 8 (8 per process x 1 process); mixfair head, s=64, m=0.35" in (run / "train.log").read_text()

    # As if it had run on two processes.
    _doctor(run / "checkpoints" / "epoch_0001.pt", lambda state: state.update(world_size=2, global_batch=16))
    before = {name: (run / name).read_bytes() for name in ("metrics.jsonl", "train.log", "config.yaml")}
    longer = small_config(train_zip, optim__epochs=2)
    with pytest.raises(MfftoolsError) as caught:
        trainer.train(longer, run, resume="auto", progress=False)
    assert str(caught.value) == (
        f"cannot resume from {run / 'checkpoints' / 'epoch_0001.pt'}: it was trained on 2 processes "
        "(global batch 16), this run has 1 (global batch 8) at the same learning rate, and the data "
        "order differs from the uninterrupted run's; resume on 2 processes, or pass "
        "--allow-world-size-change to continue so"
    )
    assert {name: (run / name).read_bytes() for name in before} == before  # refused: untouched

    summary = trainer.train(longer, run, resume="auto", progress=False, allow_world_size_change=True)
    assert summary["epochs"] == 2
    log = (run / "train.log").read_text()
    assert "WARNING mfftools.train.trainer: resuming from" in log and "global batch 16), this run has 1" in log
    assert load_checkpoint(run / "checkpoints" / "epoch_0002.pt")["world_size"] == 1


def test_a_resume_refused_at_set_up_leaves_the_run_as_it_was(train_zip, tmp_path, monkeypatch):
    monkeypatch.setattr(trainer, "build_network", tiny_builder())
    run = tmp_path / "run"
    trainer.train(small_config(train_zip, optim__epochs=2), run, progress=False)
    before = {path: path.read_bytes() for path in run.rglob("*") if path.is_file()}
    other = write_training_zip(tmp_path / "other.zip", n_classes=5, per_class=8)
    with pytest.raises(MfftoolsError, match="it has 6 classes, config data.train .*other.zip has 5"):
        trainer.train(small_config(other, optim__epochs=3), run, resume="auto", progress=False)
    assert {path: path.read_bytes() for path in run.rglob("*") if path.is_file()} == before
