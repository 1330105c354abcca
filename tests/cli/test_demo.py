"""`mfftools demo --quick` end to end through click's CliRunner."""

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from mfftools.cli import main
from mfftools.demo import MIN_FALSE_POSITIVES, QUICK, train_config
from mfftools.embeddings import open_embeddings
from mfftools.evaluation.identification import evaluate_identification
from mfftools.evaluation.instance import evaluate_instance
from mfftools.extract import extract
from mfftools.files import write_results
from mfftools.reporting.results import load_results
from mfftools.train.checkpoint import newest_checkpoint
from mfftools.train.metrics import read_metrics
from mfftools.train.trainer import train


def test_quick_demo_end_to_end(tmp_path):
    """The real pipeline with demo_tiny's r10-mini trunk: its files, their structure, the printed
    numbers as the files have them, and each stage repeatable on this machine."""
    out = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", "--out", str(out), "--quick", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    for stage in range(1, 9):
        assert f"[{stage}/8]" in result.output
    assert f"report: {out / 'report' / 'report.html'}" in result.output
    for name in ("data/ValInstData.zip", "data/TrainingData.zip", "embeddings/instance.h5",
                 "embeddings/pairs.h5", "report/report.md", "train/config.yaml"):
        assert (out / name).is_file(), name

    files = load_results([out / "results" / name
                          for name in ("instance.json", "identification.json", "pair.json",
                                       "calibration.json")])
    assert [f.model for f in files] == ["demo_tiny"] * 3 + ["synthetic, bias 0.2"]
    instance, identification, pair, calibration = (f.data for f in files)
    assert instance["n_images"] == len(open_embeddings(out / "embeddings" / "instance.h5").identity)
    assert len(pair["group_names"]) == 4
    # 1:N on the instance embeddings, at a target the non-mated searches resolve: half of each
    # group's identities enrolled, one image each, every other image a search
    searches = identification["results"][0]
    identities_per_group = np.bincount(instance["identities"]["group"], minlength=4)
    assert identification["template_groups"] == [(n + 1) // 2 for n in identities_per_group]
    assert identification["n_mated"] + identification["n_nonmated"] + \
        identification["n_templates"] == instance["n_images"]
    assert searches["target_fpir"] * identification["n_nonmated"] >= MIN_FALSE_POSITIVES
    # the printed headline and the report are the results' numbers
    entry = instance["results"][0]
    html = (out / "report" / "report.html").read_text()
    # pair: accuracy, ROC, DET; instance: 7 (with DET); identification: false positives, CMC,
    # FNIR vs FPIR
    assert html.count("data:image/png;base64,") == 13
    # the faces behind the numbers: thumbnails (JPEG) of the lowest-TPR identities, the top
    # impostor pairs and the top non-mated searches, every one read from the demo's images
    assert "Faces behind the numbers: demo_tiny, instance protocol" in html
    assert "Faces behind the numbers: demo_tiny, 1:N" in html
    best = instance["top_impostors"]["all"][0]
    assert f'<img alt="{best["path"][0]}"' in html and f'<img alt="{best["path"][1]}"' in html
    search = identification["top_nonmated"]["all"][0]
    assert f'<img alt="{search["path"]}"' in html
    assert html.count("data:image/jpeg;base64,") >= 2 * len(instance["top_impostors"]["all"])
    assert "Left out, and why" not in html  # every figure drawn, every interval computed,
    # every face found
    assert json.loads((out / "report" / "claims.json").read_text())
    assert (f"<caption>1:N identification at FPIR {searches['target_fpir']:.0e}</caption>"
            in html)
    assert f"<td>{searches['threshold']:.6f}</td>" in html
    assert f"demo_tiny, 1:N identification at FPIR {searches['target_fpir']:.0e}" in html
    for name in pair["group_names"]:
        accuracy = f"{100 * pair['groups'][name]['accuracy']:.2f}"
        assert f"<td>{accuracy}</td>" in html
        line = next(line for line in result.output.splitlines() if line.startswith(name))
        assert line.split()[1] == accuracy
        assert line.split()[2] == f"{entry['groups'][name]['tpr_mean']:.4f}"
        assert line.split()[4] == f"{searches['groups'][name]['fnir']:.4f}"
    assert (f"1:N at FPIR {searches['target_fpir']:g}: FNIR {searches['fnir']:.4f} (rank 1)"
            in result.output)
    hardest = min(pair["groups"], key=lambda name: pair["groups"][name]["accuracy"])
    assert f"hardest group: {hardest}" in result.output
    assert f"pair: mean {pair['mean_accuracy']:.2f}" in result.output

    # the before/after table: printed as in the results file, and in the report; the planted
    # bias shrinks with each mitigation at both targets
    methods = calibration["methods"]
    for method, measures in methods.items():
        line = next(line for line in result.output.splitlines()
                    if line.startswith(f"{method} "))
        assert line.split()[1] == f"{measures['auroc']:.4f}"
        assert line.split()[3] == f"{measures['fpr_spread']['0.001']['aad']:.5f}"
    for method in ("faircal", "fsn", "gst"):
        for target in ("0.001", "0.01"):
            assert (methods[method]["fpr_spread"][target]["aad"]
                    < methods["baseline"]["fpr_spread"][target]["aad"])
    assert "Calibration and fairness mitigation: synthetic, bias 0.2" in html


    # Determinism on one machine: every stage, repeated, gives what the demo wrote. (What a model
    # learns, e.g. which group comes out hardest, may change from one CPU to another.)
    embeddings = open_embeddings(out / "embeddings" / "instance.h5")
    for kind, evaluate, options in (
            ("instance", evaluate_instance, dict(targets=(entry["target_fpr"],), det=True)),
            ("identification", evaluate_identification, dict(targets=(searches["target_fpir"],)))):
        again = evaluate(embeddings, device="cpu", progress=False, **options)
        again["model"] = "demo_tiny"
        again["source"] = str((out / "embeddings" / "instance.h5").absolute())
        written = write_results(again, tmp_path / f"{kind}.json").read_text()
        assert written == (out / "results" / f"{kind}.json").read_text()
    checkpoint = newest_checkpoint(out / "train" / "checkpoints")
    extract(out / "data" / "ValInstData.zip", checkpoint, tmp_path / "again.h5", device="cpu",
            workers=1, batch_size=64, progress=False)
    np.testing.assert_allclose(open_embeddings(tmp_path / "again.h5").read(),
                               open_embeddings(out / "embeddings" / "instance.h5").read(),
                               rtol=1e-6, atol=1e-7)
    config = train_config(out / "data", QUICK, "cpu")
    config.optim.epochs, config.optim.max_steps_per_epoch = 1, config.log_every
    train(config, tmp_path / "train", progress=False)
    first = [record for record in read_metrics(out / "train") if record["kind"] == "train"][0]
    repeated = [record for record in read_metrics(tmp_path / "train") if record["kind"] == "train"][0]
    assert (repeated["step"], repeated["loss"], repeated["lr"]) == (first["step"], first["loss"], first["lr"])


def test_help_states_the_quick_plan():
    config = train_config(Path("data"), QUICK, "cpu")
    result = CliRunner().invoke(main, ["demo", "--help"])
    assert result.exit_code == 0
    help_text = " ".join(result.output.split())
    assert (f"--quick Less data, {config.optim.epochs} short epochs, {QUICK.bootstrap} bootstrap "
            "resamples.") in help_text
