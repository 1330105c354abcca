"""The demo's folder handling, its choice of target FPR and its hardest group."""

import json

import numpy as np
import pytest

from mfftools.demo import MARKER, choose_target_fpir, choose_target_fpr
from mfftools.errors import MfftoolsError


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


def _labels(groups, identities_per_group, images):
    identity = np.repeat(np.arange(groups * identities_per_group), images)
    return identity, identity % groups


def test_target_fpir_leaves_enough_false_positives():
    # half of each group's identities are not enrolled: all their images are non-mated searches
    assert choose_target_fpir(*_labels(4, 10, 3)) == 1e-1  # 60 non-mated searches
    assert choose_target_fpir(*_labels(4, 200, 3)) == 1e-2  # 1,200
    assert choose_target_fpir(*_labels(4, 2000, 3)) == 1e-3  # 12,000
    with pytest.raises(MfftoolsError, match=r"too few non-mated searches \(6\)"):
        choose_target_fpir(*_labels(2, 2, 3))


def test_hardest_group_is_the_reports(tmp_path):
    """The demo prints the hardest group in the words of the report's summary, ties named."""
    from mfftools.demo import DemoResult
    from mfftools.reporting.build import write_report

    pair = {"protocol": "pair", "model": "demo_tiny", "group_names": ["A", "B", "C"],
            "groups": {name: {"accuracy": accuracy, "fold_accuracies": [accuracy] * 10,
                              "tar_at_far_1e-3": 0.5}
                       for name, accuracy in (("A", 0.9), ("B", 0.8), ("C", 0.8))},
            "mean_accuracy": 83.33, "std": 5.77, "ser": 2.0}
    path = tmp_path / "pair.json"
    path.write_text(json.dumps(pair))
    report = write_report([path], tmp_path / "report", bootstrap=0)
    result = DemoResult(out_dir=tmp_path, report_html=None, report_markdown=None,
                        result_files=[path], pair=pair, instance={}, identification={},
                        calibration={})
    assert result.hardest_group() == ("B and C (tied, pair accuracy 80.00%, 10.00 points below "
                                      "A)")
    assert f"demo_tiny, pair protocol: hardest group: {result.hardest_group()}." in \
        report.report.summary
