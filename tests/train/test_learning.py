"""The demo recipe learns: pair accuracy from chance to clearly above, through the eval hooks.

The recipe is configs/demo_tiny.yaml (its head, margins, SGD schedule and epochs);
the tiny stand-in network replaces IResNet so that the run takes seconds. Evaluation goes
through the same extraction and pair protocol as `mfftools extract` / `pair-eval`.
"""
import json
from pathlib import Path

import torch

from mfftools.train import trainer
from mfftools.train.checkpoint import load_checkpoint
from mfftools.train.config import load_config
from mfftools.train.metrics import read_metrics

from trainer_fixtures import tiny_builder, write_pattern_data

DEMO_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "demo_tiny.yaml"


def test_demo_recipe_goes_from_chance_to_clearly_above(tmp_path, monkeypatch):
    train_zip, bin_folder, instance_zip = write_pattern_data(tmp_path / "data")
    monkeypatch.setattr(trainer, "build_network", tiny_builder())
    config = load_config(DEMO_CONFIG, [
        f"data.train={train_zip}", f"eval.pair_bin={bin_folder}", "device=cpu", "data.workers=0",
        "optim.batch_size=16", "optim.epochs=6", "optim.milestones=[4]", "eval.every=3",
        "eval.at_start=true", "eval.flip=false", f"eval.instance_zip={instance_zip}",
        "eval.target_fpr=0.01",
    ])
    run = tmp_path / "run"
    summary = trainer.train(config, run, progress=False)

    accuracy = {r["epoch"]: r["pair/mean_accuracy"] for r in read_metrics(run) if r["kind"] == "eval"}
    assert sorted(accuracy) == [0, 3, 6]
    assert accuracy[0] < 70  # near chance (50) before training
    assert accuracy[6] > 85 and accuracy[6] - accuracy[0] > 20
    # The same numbers as the pair protocol's own JSON, kept per evaluation.
    saved = json.loads((run / "eval" / "epoch_0006_pair.json").read_text())
    assert saved["protocol"] == "pair" and saved["mean_accuracy"] == accuracy[6]
    assert (run / "eval" / "epoch_0000_pair.json").is_file()
    # The instance protocol ran too (24 images, 8 identities), its numbers logged under instance/.
    last = [r for r in read_metrics(run) if r["kind"] == "eval"][-1]
    instance = json.loads((run / "eval" / "epoch_0006_instance.json").read_text())
    assert instance["protocol"] == "instance" and instance["n_images"] == 24
    assert last["instance/tpr"] == instance["results"][0]["tpr"]
    assert last["instance/G0/tpr_mean"] == instance["results"][0]["groups"]["G0"]["tpr_mean"]
    assert last["instance/tpr"] > 0.5  # genuine pairs of the learnt colours are accepted

    best_epoch = max((epoch for epoch in (3, 6)), key=lambda epoch: (accuracy[epoch], -epoch))
    assert summary["best"] == {"metric": "pair/mean_accuracy", "mode": "max",
                               "value": accuracy[best_epoch], "epoch": best_epoch}
    best = load_checkpoint(run / "best.pt")
    assert best["epoch"] == best_epoch and best["best"]["value"] == accuracy[best_epoch]
    if best_epoch == 6:
        last = load_checkpoint(run / "checkpoints" / "epoch_0006.pt")
        assert all(torch.equal(value, last["model"][key]) for key, value in best["model"].items())
