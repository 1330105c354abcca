import json

from click.testing import CliRunner

from mfftools.cli import main


def _write(path, data):
    path.write_text(json.dumps(data))
    return str(path)


PAIR = {
    "protocol": "pair", "model": "tiny", "group_names": ["A", "B"],
    "groups": {
        "A": {"accuracy": 0.9, "fold_accuracies": [0.9] * 10, "tar_at_far_1e-3": 0.5},
        "B": {"accuracy": 0.8, "fold_accuracies": [0.8] * 10, "tar_at_far_1e-3": 0.4},
    },
    "mean_accuracy": 85.0, "std": 7.0710678, "ser": 2.0,
}


def test_report_command_writes_the_folder(tmp_path):
    source = _write(tmp_path / "pair.json", PAIR)
    result = CliRunner().invoke(main, ["report", source, "--out", str(tmp_path / "rep")])
    assert result.exit_code == 0, result.output
    assert f"report: {tmp_path / 'rep' / 'report.html'}" in result.output
    assert "note: pair ROC curves not drawn for tiny" in result.output
    assert "<td>85.00</td>" in (tmp_path / "rep" / "report.html").read_text()


def test_bad_result_file_is_a_clean_error(tmp_path):
    data = dict(PAIR)
    del data["ser"]
    source = _write(tmp_path / "broken.json", data)
    result = CliRunner().invoke(main, ["report", source, "--out", str(tmp_path / "rep")])
    assert result.exit_code == 1
    assert "broken.json: key 'ser' is missing" in result.output
    assert "Traceback" not in result.output


def test_options_checked(tmp_path):
    source = _write(tmp_path / "pair.json", PAIR)
    runner = CliRunner()
    result = runner.invoke(main, ["report", source, "--out", str(tmp_path / "r"), "--bootstrap", "-1"])
    assert result.exit_code == 1 and "--bootstrap must be 0 or more" in result.output
    result = runner.invoke(main, ["report", source])
    assert result.exit_code == 2 and "--out" in result.output
    result = runner.invoke(main, ["report", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "RESULTS" in result.output
