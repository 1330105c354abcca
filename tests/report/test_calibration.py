"""The report's calibration section, from a real cross-validation's results file."""
import json

import pytest

from mfftools.calibration.methods import Settings
from mfftools.calibration.pipeline import cross_validate
from mfftools.data.synthetic_embeddings import biased_pairs, write_biased_pairs
from mfftools.embeddings import open_embeddings
from mfftools.errors import MfftoolsError
from mfftools.files import write_results
from mfftools.pair_data import read_pair_set
from mfftools.report.build import write_report
from mfftools.report.results import load_result

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
