"""The demo end to end in its quick form, and its folder handling."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from mfftools.cli import main
from mfftools.data.faces import GROUP_STYLES
from mfftools.demo import MARKER, choose_target_fpr
from mfftools.errors import MfftoolsError
from mfftools.report.results import load_results


def test_quick_demo_end_to_end(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", "--out", str(out), "--quick", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    for stage in range(1, 7):
        assert f"[{stage}/6]" in result.output
    assert f"report: {out / 'report' / 'report.html'}" in result.output

    files = load_results([out / "results" / "instance.json", out / "results" / "pair.json"])
    assert [f.model for f in files] == ["demo_tiny", "demo_tiny"]
    instance, pair = (f.data for f in files)
    html = (out / "report" / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 6
    for name in pair["group_names"]:
        assert f"<td>{100 * pair['groups'][name]['accuracy']:.2f}</td>" in html

    # The synthetic data make one group hard; the trained model must show it in both protocols.
    hard = max(GROUP_STYLES, key=lambda name: GROUP_STYLES[name].difficulty)
    accuracy = {name: group["accuracy"] for name, group in pair["groups"].items()}
    assert min(accuracy, key=accuracy.get) == hard
    assert f"hardest group: {hard}" in result.output
    others = [value for name, value in accuracy.items() if name != hard]
    assert np.mean(others) - accuracy[hard] > 0.03
    tpr_mean = {name: g["tpr_mean"] for name, g in instance["results"][0]["groups"].items()}
    assert min(tpr_mean, key=tpr_mean.get) == hard
    assert np.mean(others) > 0.6  # clearly learnt: chance is 0.5


def test_rerun_replaces_a_previous_demo_but_not_other_folders(tmp_path, monkeypatch):
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
    # 20 identities x 10 images: 200^2 - 20 * 10^2 = 38,000 ordered impostor pairs
    identity = np.repeat(np.arange(20), 10)
    assert choose_target_fpr(identity) == 1e-2
    identity = np.repeat(np.arange(400), 5)  # 4,000,000 - 10,000 impostor pairs
    assert choose_target_fpr(identity) == 1e-4
    identity = np.repeat(np.arange(3000), 4)  # 144,000,000 - 48,000
    assert choose_target_fpr(identity) == 1e-5
    with pytest.raises(MfftoolsError, match="too few images"):
        choose_target_fpr(np.arange(20))
