"""Evaluation settings are checked before the first step; what the evaluations write to the log."""
import json
import logging
import re

import pytest

from mfftools.errors import MfftoolsError
from mfftools.train import trainer
from mfftools.train.checkpoint import epoch_checkpoints
from mfftools.embeddings import open_embeddings
from mfftools.evaluation.identification import evaluate_identification
from mfftools.train.evaluation import (
    BestTracker,
    identification_fields,
    instance_fields,
    pair_fields,
)
from mfftools.train.metrics import read_metrics

from trainer_fixtures import small_config, tiny_builder, write_pattern_data


@pytest.fixture(scope="module")
def pattern_data(tmp_path_factory):
    """(training zip, .bin folder with groups G0 and G1, instance zip of 24 images)."""
    return write_pattern_data(tmp_path_factory.mktemp("pattern"), identities=4, train_per_identity=8,
                              pairs_per_group=20)


def _fails_before_the_first_step(config, run, monkeypatch):
    """The MfftoolsError a run raises; a training step would raise 'simulated crash' instead."""
    monkeypatch.setattr(trainer, "build_network", tiny_builder(crash_at_call=1))
    with pytest.raises(MfftoolsError) as caught:
        trainer.train(config, run, progress=False)
    assert read_metrics(run) == []
    return str(caught.value)


def test_an_unresolvable_instance_target_fails_before_the_first_step(pattern_data, tmp_path, monkeypatch):
    train_zip, _, instance_zip = pattern_data
    config = small_config(train_zip, eval__every=1, eval__instance_zip=str(instance_zip))
    message = _fails_before_the_first_step(config, tmp_path / "run", monkeypatch)
    # 12 images of 4 identities: 12 x 11 - 4 x 3 x 2 = 108 ordered impostor pairs.
    assert message == (
        f"config eval.target_fpr with eval.instance_zip {instance_zip}: target FPR 1e-05 cannot be "
        "resolved: with 108 ordered impostor pairs (each unordered pair counted twice) the smallest "
        "non-zero FPR is 2/108 = 0.0185; use a target of at least that, or more images "
        "(--set eval.target_fpr=...)"
    )
    # The run's log says why it stopped.
    assert f"ERROR mfftools.train.metrics: run stopped: {message}\n" in (tmp_path / "run" / "train.log").read_text()


def test_identification_settings_fail_before_the_first_step(pattern_data, tmp_path, monkeypatch):
    train_zip, _, instance_zip = pattern_data
    config = small_config(train_zip, eval__every=1, eval__instance_zip=str(instance_zip),
                          eval__target_fpr=0.05, eval__identification=True)
    # Per group, one of the two identities is enrolled: 2 x 3 images of the others are searched.
    message = _fails_before_the_first_step(config, tmp_path / "target", monkeypatch)
    assert message == (
        f"config eval.target_fpir with eval.instance_zip {instance_zip}: target FPIR 0.01 cannot "
        "be resolved: with 6 non-mated searches the smallest non-zero FPIR is 1/6 = 0.167; use a "
        "target of at least that, or more searches (e.g. --set eval.target_fpir=0.1)"
    )
    config.eval.instance_zip = ""  # a config built in Python is checked too
    message = _fails_before_the_first_step(config, tmp_path / "zip", monkeypatch)
    assert message.startswith("config: eval.identification needs eval.instance_zip")


def test_identification_during_training(pattern_data, tmp_path, monkeypatch):
    train_zip, _, instance_zip = pattern_data
    monkeypatch.setattr(trainer, "build_network", tiny_builder())
    config = small_config(train_zip, optim__epochs=1, optim__max_steps_per_epoch=1, eval__every=1,
                          eval__instance_zip=str(instance_zip), eval__target_fpr=0.05,
                          eval__identification=True, eval__target_fpir=0.2,
                          eval__best_metric="ident/rank1", eval__flip=False)
    run = tmp_path / "run"
    summary = trainer.train(config, run, progress=False)
    assert summary["best"]["metric"] == "ident/rank1"
    record = [r for r in read_metrics(run) if r["kind"] == "eval"][0]
    names = [field.name for field in identification_fields(["G0", "G1"])]
    assert names == ["ident/threshold", "ident/fnir", "ident/fpir", "ident/rank1",
                     "ident/fnir_max_geomean", "ident/fpir_max_geomean",
                     "ident/G0/fnir", "ident/G0/fpir", "ident/G0/rank1",
                     "ident/G1/fnir", "ident/G1/fpir", "ident/G1/rank1"]
    assert list(record)[-len(names):] == names
    # the metrics are ident-eval's numbers on the epoch's instance embeddings, kept as its JSON
    written = json.loads((run / "eval" / "epoch_0001_identification.json").read_text())
    expected = evaluate_identification(open_embeddings(run / "eval" / "instance.h5"),
                                       targets=(0.2,), device="cpu", progress=False)
    assert written["results"] == json.loads(json.dumps(expected["results"]))
    entry = expected["results"][0]
    assert record["ident/fnir"] == entry["fnir"] and record["ident/threshold"] == entry["threshold"]
    assert record["ident/G1/fpir"] == entry["groups"]["G1"]["fpir"]
    assert record["ident/rank1"] == expected["cmc"]["all"][0]
    assert record["ident/G0/rank1"] == expected["cmc"]["G0"][0]
    assert summary["best"]["value"] == expected["cmc"]["all"][0]


def test_an_unknown_best_metric_fails_before_the_first_step(pattern_data, tmp_path, monkeypatch):
    train_zip, bin_folder, instance_zip = pattern_data
    config = small_config(train_zip, eval__every=1, eval__pair_bin=str(bin_folder), eval__best_metric="pair/nope")
    message = _fails_before_the_first_step(config, tmp_path / "nope", monkeypatch)
    assert message == (
        "config eval.best_metric 'pair/nope' is not among the metrics this run's evaluations log "
        "(pair/mean_accuracy, pair/std, pair/ser, pair/G0/accuracy, pair/G0/tar_at_far_1e-3, "
        "pair/G1/accuracy, pair/G1/tar_at_far_1e-3); choose one of them, or \"\" for no best.pt"
    )
    # An instance metric needs the instance protocol.
    config.eval.best_metric = "instance/tpr"
    message = _fails_before_the_first_step(config, tmp_path / "instance", monkeypatch)
    assert message.startswith("config eval.best_metric 'instance/tpr' is not among")


@pytest.mark.parametrize("key, kind", [("pair_bin", "instance zip"), ("instance_zip", "bin folder")])
def test_a_validation_source_of_the_wrong_kind_fails_before_the_first_step(pattern_data, tmp_path, monkeypatch,
                                                                          key, kind):
    train_zip, bin_folder, instance_zip = pattern_data
    path = instance_zip if kind == "instance zip" else bin_folder
    config = small_config(train_zip, eval__every=1, **{f"eval__{key}": str(path)})
    expected = "a folder of <Group>_test.bin files" if key == "pair_bin" else "an RFW instance zip"
    assert _fails_before_the_first_step(config, tmp_path / "run", monkeypatch) == (
        f"config eval.{key}: {path} is not {expected}"
    )


def test_resume_auto_without_a_checkpoint_says_so(pattern_data, tmp_path, monkeypatch):
    train_zip = pattern_data[0]
    config = small_config(train_zip)
    # A run that stopped in its first epoch leaves records but no checkpoint.
    monkeypatch.setattr(trainer, "build_network", tiny_builder(crash_at_call=3))
    with pytest.raises(RuntimeError, match="simulated crash"):
        trainer.train(config, tmp_path / "run", progress=False)
    assert epoch_checkpoints(tmp_path / "run" / "checkpoints") == []
    assert [r["step"] for r in read_metrics(tmp_path / "run")] == [1, 2]
    log = (tmp_path / "run" / "train.log").read_text()
    assert "ERROR mfftools.train.metrics: run stopped: RuntimeError: simulated crash\nTraceback" in log

    monkeypatch.setattr(trainer, "build_network", tiny_builder())
    with pytest.raises(MfftoolsError) as caught:
        trainer.train(config, tmp_path / "run", resume="auto", progress=False)
    assert str(caught.value) == (
        f"--resume auto: {tmp_path / 'run' / 'checkpoints'} holds no checkpoint to continue from; "
        "leave out --resume to start the run afresh"
    )
    # Starting afresh replaces the stopped run's records instead of adding to them.
    trainer.train(config, tmp_path / "run", progress=False)
    steps = [(r["kind"], r["step"]) for r in read_metrics(tmp_path / "run")]
    assert len(steps) == len(set(steps)) and steps[:2] == [("train", 1), ("train", 2)]
    # train.log keeps what happened to every attempt.
    log = (tmp_path / "run" / "train.log").read_text()
    assert log.count("run stopped: RuntimeError: simulated crash") == 1 and "epoch: epoch 3, step 12" in log


def test_evaluation_log_lines_state_each_fact_once_in_one_unit(pattern_data, tmp_path, monkeypatch, caplog):
    train_zip, bin_folder, instance_zip = pattern_data
    caplog.set_level(logging.INFO, logger="mfftools")  # the command line's default level
    monkeypatch.setattr(trainer, "build_network", tiny_builder())
    config = small_config(train_zip, optim__epochs=2, optim__max_steps_per_epoch=1, eval__every=1,
                          eval__pair_bin=str(bin_folder), eval__instance_zip=str(instance_zip),
                          eval__target_fpr=0.05, eval__flip=False)
    run = tmp_path / "run"
    trainer.train(config, run, progress=False)
    log = (run / "train.log").read_text()

    def lines(pattern):
        return re.findall(rf"^.*{pattern}.*$", log, flags=re.MULTILINE)

    # What the validation data are is logged once, when they are opened; each evaluation then
    # writes each embeddings file once and logs one line of metrics.
    assert len(lines(re.escape(f"{bin_folder / 'G0_test.bin'}: 20 pairs (10 genuine)"))) == 1
    assert len(lines(re.escape(f"{instance_zip}: 12 images, 4 identities"))) == 1
    assert len(lines(r"wrote 80 embeddings to .*pairs\.h5")) == 2
    assert len(lines(r"wrote 12 embeddings to .*instance\.h5")) == 2
    assert len(lines("eval: epoch")) == 2

    # Accuracies in percent (the pair protocol gives the mean x 100, groups as fractions),
    # every other number as the results file has it.
    record = [r for r in read_metrics(run) if r["kind"] == "eval"][0]
    shown = [
        f"pair/mean_accuracy={record['pair/mean_accuracy']:.6g}%",
        f"pair/std={record['pair/std']:.6g}%",
        f"pair/ser={record['pair/ser']:.6g}",
    ]
    for group in ("G0", "G1"):
        shown += [f"pair/{group}/accuracy={100 * record[f'pair/{group}/accuracy']:.6g}%",
                  f"pair/{group}/tar_at_far_1e-3={record[f'pair/{group}/tar_at_far_1e-3']:.6g}"]
    shown += [f"{field.name}={record[field.name]:.6g}" if record[field.name] is not None else f"{field.name}=None"
              for field in instance_fields(["G0", "G1"])]
    assert lines("eval: epoch 1, step 1: ")[0].endswith("eval: epoch 1, step 1: " + " ".join(shown))
    assert "%" not in "".join(shown[-len(instance_fields(["G0", "G1"])):])
    # The first evaluation is the first best, stated in the same unit.
    assert len(lines(re.escape(f"new best pair/mean_accuracy={record['pair/mean_accuracy']:.6g}% at epoch 1"))) == 1
    # The metrics file keeps the protocols' own numbers, under the documented names.
    names = [field.name for field in pair_fields(["G0", "G1"]) + instance_fields(["G0", "G1"])]
    assert list(record)[3:] == names


def test_an_undefined_best_metric_value_never_becomes_the_best():
    best = BestTracker("instance/fmr_max_geomean", "min")
    assert not best.update({"instance/fmr_max_geomean": None}, epoch=1)
    assert best.update({"instance/fmr_max_geomean": 1.5}, epoch=2) and best.epoch == 2
    assert not best.update({"instance/fmr_max_geomean": None}, epoch=3) and best.value == 1.5
