"""`mfftools report` through click's CliRunner."""
import copy
import json
import re

import pytest
from click.testing import CliRunner

from mfftools.cli import main
from result_builders import identification_result, instance_result, pair_result, write_json


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


def test_identification_results_beside_the_others(tmp_path, rng):
    pair = _write(tmp_path / "pair.json", PAIR)
    data = identification_result(rng, "tiny", extras=False)
    ident = _write(tmp_path / "ident.json", data)
    result = CliRunner().invoke(main, ["report", pair, ident, "--out", str(tmp_path / "rep")])
    assert result.exit_code == 0, result.output
    assert "note: FNIR vs FPIR curves not drawn for tiny" in result.output
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "<caption>1:N identification at FPIR 1e-02</caption>" in html
    assert f"<td>{data['results'][0]['threshold']:.6f}</td>" in html
    del data["results"][0]["false_positive_matrix"]
    broken = _write(tmp_path / "broken.json", data)
    result = CliRunner().invoke(main, ["report", broken, "--out", str(tmp_path / "rep")])
    assert result.exit_code == 1
    assert "broken.json: key 'results[0].false_positive_matrix' is missing" in result.output


def test_options_checked(tmp_path):
    source = _write(tmp_path / "pair.json", PAIR)
    runner = CliRunner()
    result = runner.invoke(main, ["report", source, "--out", str(tmp_path / "r"), "--bootstrap", "-1"])
    assert result.exit_code == 1 and "--bootstrap must be 0 or more" in result.output
    result = runner.invoke(main, ["report", source])
    assert result.exit_code == 2 and "--out" in result.output
    result = runner.invoke(main, ["report", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "RESULTS" in result.output
    for option, value, message in (("--alpha", "1.5", "--alpha must be between 0 and 1"),
                                   ("--permutations", "-3", "--permutations must be 0 or more")):
        result = runner.invoke(main, ["report", source, "--out", str(tmp_path / "r"), option,
                                      value])
        assert result.exit_code == 1 and message in result.output
        assert "Traceback" not in result.output


def test_models_on_different_images_are_flagged_loudly(tmp_path, rng):
    first = instance_result(rng, "a", n_per_group=12)
    second = copy.deepcopy(first)
    second["model"] = "b"
    second["images"]["paths_sha256"] = "0" * 64
    paths = [_write(tmp_path / "a.json", first), _write(tmp_path / "b.json", second)]
    result = CliRunner().invoke(
        main, ["report", *paths, "--out", str(tmp_path / "rep"), "--permutations", "99",
               "--bootstrap", "0"])
    assert result.exit_code == 0, result.output
    assert ("WARNING mfftools.reporting.build: The instance results of a and b were NOT "
            "computed on "
            "the same data (the image paths (sha256): a ") in result.stderr
    assert f"significance statements: {tmp_path / 'rep' / 'claims.json'}" in result.stdout
    html = (tmp_path / "rep" / "report.html").read_text()
    assert '<div class="warning">WARNING: The instance results of a and b were NOT' in html
    claims = json.loads((tmp_path / "rep" / "claims.json").read_text())
    assert claims and not any(" vs " in claim["model"] for claim in claims)


@pytest.fixture
def unnamed_files(tmp_path, rng):
    """The documentation's example: two models' instance and pair files, no "model" fields."""
    return [
        str(write_json(tmp_path / f"{model}_{protocol}.json", build(rng, extras=False)))
        for model in ("a", "b")
        for protocol, build in (("inst", instance_result), ("pair", pair_result))
    ]


def _models(out):
    """The model blocks of the report's tables (the table of what each file records aside)."""
    html = (out / "report.html").read_text()
    return [block for block in re.findall(r'<th class="block" colspan="\d">([^<]*)</th>', html)
            if block != "Recorded in the results file"]


def test_name_makes_one_model_of_several_files(tmp_path, unnamed_files):
    a_inst, a_pair, b_inst, b_pair = unnamed_files
    runner = CliRunner()
    result = runner.invoke(main, ["report", *unnamed_files, "--out", str(tmp_path / "stems"),
                                  "--bootstrap", "0"])
    assert result.exit_code == 0, result.output
    assert set(_models(tmp_path / "stems")) == {"a_inst", "a_pair", "b_inst", "b_pair"}
    result = runner.invoke(main, ["report", *unnamed_files, "--out", str(tmp_path / "named"),
                                  "--bootstrap", "0", "--name", f"a={a_inst},{a_pair}",
                                  "--name", f"b={b_inst},{b_pair}"])
    assert result.exit_code == 0, result.output
    assert set(_models(tmp_path / "named")) == {"a", "b"}
    assert _models(tmp_path / "named")[:2] == ["a", "b"]  # the pair table's blocks


def test_name_errors(tmp_path, unnamed_files):
    a_inst, a_pair, b_inst, b_pair = unnamed_files
    runner = CliRunner()

    def run(*names):
        args = ["report", a_inst, a_pair, "--out", str(tmp_path / "r")]
        for name in names:
            args += ["--name", name]
        return runner.invoke(main, args)

    result = run(f"a={a_inst},{b_inst}")
    assert result.exit_code == 1
    assert result.output == (
        f"Error: --name a: {b_inst} is not one of the result files given; add it to RESULTS "
        "or leave it out of --name\n"
    )
    result = run(f"a={a_inst}", f"b={a_pair},{a_inst}")
    assert result.exit_code == 1
    assert result.output == (
        f"Error: --name: {a_inst} is named twice (a and b); name each file once\n"
    )
    for malformed in (a_inst, f"={a_inst}", "a="):
        result = run(malformed)
        assert result.exit_code == 2
        assert (f"Invalid value for '--name': {malformed!r} is not MODEL=FILE[,FILE...], "
                "e.g. --name a=a_inst.json,a_pair.json") in result.output
