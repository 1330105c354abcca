"""template-eval results in the report: checked on load, tables of both readings and of 1:N."""
import json

import numpy as np
import pytest
import torch

from mfftools.data.ijb_protocol import TemplatePairs
from mfftools.errors import MfftoolsError
from mfftools.evaluation.engine.scoring import normalise_rows_
from mfftools.evaluation.template_verification import evaluate_verification
from mfftools.evaluation.templates import Templates
from mfftools.reporting.build import write_report
from mfftools.reporting.results import load_result


def template_result(rng):
    rows = normalise_rows_(torch.from_numpy(rng.normal(size=(40, 8)).astype(np.float32)))
    templates = Templates(np.arange(40), rows, np.ones(40, np.int64), np.ones(40, np.int64))
    left, right = rng.integers(0, 40, 800).astype(np.int32), rng.integers(0, 40, 800).astype(np.int32)
    pairs = TemplatePairs(left, right, left % 8 == right % 8, 800)
    groups = np.arange(40) % 2
    result = evaluate_verification(templates, pairs, (1e-2, 1e-1), groups, ["a", "b"])
    result.update({"protocol": "template", "model": "r50", "n_images": 100, "n_templates": 40,
                   "settings": {"norm": "keep", "detector_score": "weight", "flip": True},
                   "identification": {"ranks": [1, 5], "galleries": {"G1": {"results": [
                       {"target_fpir": 0.1, "tpir": 0.75}]}},
                       "mean": {"results": [{"target_fpir": 0.1, "tpir": 0.75}],
                                "cmc": [0.8, 0.9]}}})
    return result


def test_report_shows_both_readings_groups_and_galleries(tmp_path, rng):
    result = template_result(rng)
    path = tmp_path / "ijbc.json"
    path.write_text(json.dumps(result))
    files = write_report([path], tmp_path / "report", bootstrap=0)
    titles = files.report.contents()
    assert titles == ["IJB templates: 1:1 verification", "IJB templates: 1:N identification"]
    tables = files.report.sections[0].items
    rows = dict(tables[0].rows)
    reading = result["tar_at_far"]["0.1"]
    assert rows["0.1"][:2] == [f"{reading['nearest_roc_point']:.4f}", f"{reading['exact']:.4f}"]
    assert rows["AUC"][0] == f"{result['auc']:.6f}"
    assert [label for label, _ in tables[1].rows] == ["a", "b"]
    identification = dict(files.report.sections[1].items[0].rows)
    assert identification["G1 TPIR @ FPIR 0.1"] == ["0.7500"]
    assert identification["mean CMC rank 5"] == ["0.9000"]
    assert "TAR (insightface)" in files.markdown.read_text()


def test_a_broken_template_result_is_named(tmp_path, rng):
    result = template_result(rng)
    result["tar_at_far"]["0.1"]["exact"] = "high"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(result))
    with pytest.raises(MfftoolsError, match="key 'tar_at_far.0.1.exact' must be a number"):
        load_result(path)
