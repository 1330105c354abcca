"""Atomic writes and the shared results-file writer."""
import json

import pytest

from mfftools.files import atomic_output, compact, write_results


def test_error_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "out.json"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_output(path) as temporary:
            temporary.write_text("half")
            raise RuntimeError("crash")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_results_file_rounds_only_the_long_lists(tmp_path):
    result = {
        "threshold": 0.123456789123,
        "results": [{"per_identity": {"tpr": [0.123456789, None], "group": [1, 2]}}],
        "roc": {"A": {"fpr": [1.0 / 3.0]}},
    }
    data = json.loads(write_results(result, tmp_path / "r.json").read_text())
    assert data["threshold"] == 0.123456789123
    assert data["results"][0]["per_identity"] == {"tpr": [0.123457, None], "group": [1, 2]}
    assert data["roc"]["A"]["fpr"] == [0.333333]
    assert compact(result)["threshold"] == result["threshold"]


def test_nan_is_refused_and_nothing_is_written(tmp_path):
    with pytest.raises(ValueError):
        write_results({"x": float("nan")}, tmp_path / "r.json")
    assert not (tmp_path / "r.json").exists()
