"""The demo end to end in its quick form, and its folder handling."""

import numpy as np
import pytest
from click.testing import CliRunner

from mfftools.cli import main
from mfftools.demo import MARKER, choose_target_fpr
from mfftools.embeddings import open_embeddings
from mfftools.errors import MfftoolsError
from mfftools.report.results import load_results


def test_quick_demo_end_to_end(tmp_path):
    """The real pipeline with demo_tiny's r10-mini trunk: it learns, and the hard group shows."""
    out = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", "--out", str(out), "--quick", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    for stage in range(1, 7):
        assert f"[{stage}/6]" in result.output
    assert f"report: {out / 'report' / 'report.html'}" in result.output
    for name in ("data/ValInstData.zip", "data/TrainingData.zip", "embeddings/instance.h5",
                 "embeddings/pairs.h5", "report/report.md", "train/config.yaml"):
        assert (out / name).is_file(), name

    files = load_results([out / "results" / "instance.json", out / "results" / "pair.json"])
    assert [f.model for f in files] == ["demo_tiny", "demo_tiny"]
    instance, pair = (f.data for f in files)
    assert instance["n_images"] == len(open_embeddings(out / "embeddings" / "instance.h5").identity)
    assert len(pair["group_names"]) == 4
    # the printed headline and the report are the results' numbers
    entry = instance["results"][0]
    html = (out / "report" / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 7
    for name in pair["group_names"]:
        accuracy = f"{100 * pair['groups'][name]['accuracy']:.2f}"
        assert f"<td>{accuracy}</td>" in html
        line = next(line for line in result.output.splitlines() if line.startswith(name))
        assert line.split()[1] == accuracy
        assert line.split()[2] == f"{entry['groups'][name]['tpr_mean']:.4f}"
    hardest = min(pair["groups"], key=lambda name: pair["groups"][name]["accuracy"])
    assert f"hardest group: {hardest}" in result.output
    assert f"pair: mean {pair['mean_accuracy']:.2f}" in result.output

    # What the synthetic data were built to show: the model learns, the African group the least.
    # The other groups' order is noise at this size; the African gap (about 10 points) is not.
    others = [100 * group["accuracy"] for name, group in pair["groups"].items() if name != "African"]
    assert pair["mean_accuracy"] > 60  # chance is 50
    assert hardest == "African"
    assert np.mean(others) - 100 * pair["groups"]["African"]["accuracy"] > 5


def test_rerun_replaces_a_previous_demo_but_not_other_folders(tmp_path):
    from mfftools import demo

    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    with pytest.raises(MfftoolsError, match="not empty and was not written by the demo"):
        demo._prepare(out)
    assert (out / "mine.txt").read_text() == "keep"

    previous = tmp_path / "previous"
    demo._prepare(previous)
    (previous / "report").mkdir()
    (previous / "report" / "old.png").write_bytes(b"old")
    (previous / "notes.txt").write_text("mine")
    demo._prepare(previous)
    assert (previous / MARKER).exists()
    assert not (previous / "report").exists()
    assert (previous / "notes.txt").read_text() == "mine"  # only the demo's folders go


def test_target_fpr_leaves_enough_impostor_pairs():
    # 10 identities x 10 images: 100^2 - 10 * 10^2 = 9,000 ordered impostor pairs
    identity = np.repeat(np.arange(10), 10)
    assert choose_target_fpr(identity) == 1e-2
    identity = np.repeat(np.arange(400), 5)  # 4,000,000 - 10,000 impostor pairs
    assert choose_target_fpr(identity) == 1e-4
    identity = np.repeat(np.arange(3000), 4)  # 144,000,000 - 48,000
    assert choose_target_fpr(identity) == 1e-5
    with pytest.raises(MfftoolsError, match="too few images"):
        choose_target_fpr(np.repeat(np.arange(7), 10))  # 4,200 impostor pairs
