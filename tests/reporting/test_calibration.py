"""The report's calibration section, from a real cross-validation's results file."""
import json

import numpy as np
import pytest

from mfftools.calibration.methods import Settings
from mfftools.calibration.pipeline import cross_validate
from mfftools.data.synthetic_embeddings import biased_pairs, write_biased_pairs
from mfftools.embeddings import open_embeddings
from mfftools.errors import MfftoolsError
from mfftools.files import write_results
from mfftools.pair_data import read_pair_set
from mfftools.reporting.build import write_report
from mfftools.reporting.results import load_result

GROUPS = ["A", "B", "C"]


@pytest.fixture(scope="module")
def calibration_json(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report_calibration")
    pairs = biased_pairs(group_names=GROUPS, identities_per_group=10, images_per_identity=3,
                         pairs_per_group=300, dim=8, seed=4)
    path = write_biased_pairs(folder / "b.h5", pairs)
    result = cross_validate(read_pair_set(open_embeddings(path)), ["baseline", "faircal", "gst"],
                            Settings(clusters=4))
    result["model"] = "net"
    return write_results(result, folder / "calibration.json")


def test_every_method_is_shown_before_and_after(tmp_path, calibration_json):
    data = json.loads(calibration_json.read_text())
    report = write_report([calibration_json], tmp_path / "report", bootstrap=0)
    titles = [section.title for section in report.report.sections]
    assert titles == ["Calibration and fairness mitigation: net (mean over 5 test folds)"]
    methods_table, groups_table = report.report.sections[0].items
    assert [label for label, _ in methods_table.rows] == ["baseline", "faircal", "gst"]
    for label, cells in methods_table.rows:
        entry = data["methods"][label]
        assert cells[0] == f"{entry['auroc']:.4f}"
        aad = entry["fpr_spread"]["0.001"]["aad"]
        assert cells[2] == ("0" if aad == 0 else f"{aad:.4f}" if aad >= 1e-3 else f"{aad:.3e}")
        fallbacks = entry["fallbacks"]
        assert cells[-1] == f"{fallbacks['fitted']} / {fallbacks['test_pairs']}"
    assert [label for label, _ in groups_table.rows] == GROUPS
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "each group's FPR at the global threshold of FPR 0.001" in markdown


def test_a_calibration_file_missing_a_key_is_refused(tmp_path, calibration_json):
    data = json.loads(calibration_json.read_text())
    del data["methods"]["gst"]["groups"]["B"]["ece"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(MfftoolsError, match="key 'methods.gst.groups.B.ece' is missing"):
        load_result(bad)


def test_the_paired_test_keeps_its_error_rate_and_finds_real_changes():
    from mfftools.reporting.calibration import paired_test

    rng = np.random.default_rng(5)
    groups = np.repeat(np.arange(4), 25)
    false_claims = {"std": 0, "gap": 0}
    n_sets = 200
    for _ in range(n_sets):  # calibration changes nothing: both sides draw the same way
        truth = rng.uniform(0.2, 0.8, 100)
        before = truth + rng.normal(0, 0.1, 100)
        after = truth + rng.normal(0, 0.1, 100)
        for kind in false_claims:
            _, p_value = paired_test(before, after, groups, kind, n_resamples=199,
                                     seed=int(rng.integers(1 << 30)))
            false_claims[kind] += p_value < 0.05
    for kind, count in false_claims.items():
        # 5% expected; 200 sets put the binomial's 99.9% bound near 11.5%
        assert count / n_sets <= 0.115, kind
    truth = rng.uniform(0.2, 0.8, 100) + 0.1 * groups
    before = truth + rng.normal(0, 0.1, 100)
    after = truth.mean() + 0.3 * (before - truth.mean())  # a real shrink of every spread
    for kind in ("std", "gap"):
        change, p_value = paired_test(before, after, groups, kind, n_resamples=499)
        assert change < 0 and p_value < 0.01
    assert paired_test([0.5], [0.4], [0], "std") == (None, None)
    assert paired_test([0.5, np.nan, 0.2], [0.4, 0.1, 0.3], [0, 0, 0], "gap") == (None, None)


def test_instance_results_before_and_after_are_compared(tmp_path):
    from mfftools.calibration.pipeline import fit_calibration
    from mfftools.evaluation.instance import evaluate_instance

    pairs = biased_pairs(group_names=GROUPS, identities_per_group=30, images_per_identity=4,
                         pairs_per_group=600, dim=16, bias=0.3, seed=8)
    path = write_biased_pairs(tmp_path / "b.h5", pairs, model="net")
    calibration = fit_calibration(read_pair_set(open_embeddings(path)), "gst", Settings())
    files = []
    for label, applied in (("plain", None), ("gst", calibration)):
        result = evaluate_instance(open_embeddings(path), targets=(0.01,), methods=("exact",),
                                   device="cpu", progress=False, calibration=applied)
        result["model"] = "net" if applied is None else "net + gst"
        files.append(write_results(result, tmp_path / f"{label}.json"))
    from mfftools.reporting.calibration import calibration_sections
    from mfftools.reporting.results import load_results

    (section,) = calibration_sections([], load_results(files), n_resamples=50)
    assert section.title == "Instance protocol before and after calibration"
    (table,) = section.items
    labels = [label for label, _ in table.rows]
    assert labels == [f"net + gst, FPR 1e-02 (exact), {rate}" for rate in ("TPR", "TPR", "FPR",
                                                                            "FPR")]
    for _, cells in table.rows:
        assert cells[0] in ("std over identities", "highest - lowest group mean")
        assert cells[4] != "-" and 0 < float(cells[4]) <= 1
