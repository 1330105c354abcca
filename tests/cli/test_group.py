"""The `mfftools` group: what every command shares."""
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from mfftools.cli import main

HEAVY_MODULES = ("torch", "numpy", "h5py", "matplotlib", "faiss", "PIL")

# Imports the command line, shows the help of the group and of every command, then lists the
# heavy modules that got imported.
HELP_EVERYWHERE = """
import json, sys
from mfftools.cli import main
for args in [["--help"]] + [[name, "--help"] for name in main.commands]:
    main(args, prog_name="mfftools", standalone_mode=False)
print(json.dumps(sorted(name for name in {heavy} if name in sys.modules)))
"""


def test_help_imports_no_heavy_module():
    # a fresh interpreter: the test process has imported all of them already
    done = subprocess.run(
        [sys.executable, "-c", HELP_EVERYWHERE.format(heavy=HEAVY_MODULES)],
        capture_output=True, text=True, check=True,
    )
    assert "Commands:" in done.stdout and "Usage: mfftools report" in done.stdout
    assert json.loads(done.stdout.splitlines()[-1]) == []


PAIR = {
    "protocol": "pair", "model": "tiny", "group_names": ["A", "B"],
    "groups": {
        "A": {"accuracy": 0.9, "fold_accuracies": [0.9] * 10, "tar_at_far_1e-3": 0.5},
        "B": {"accuracy": 0.8, "fold_accuracies": [0.8] * 10, "tar_at_far_1e-3": 0.4},
    },
    "mean_accuracy": 85.0, "std": 7.0710678, "ser": 2.0,
}
INFO_LINE = "INFO mfftools.reporting.build: report with"
DEBUG_LINE = "DEBUG mfftools.reporting.figures: wrote"


@pytest.mark.parametrize("before, after, info, debug", [
    ([], [], True, False),
    (["-q"], [], False, False),
    ([], ["-q"], False, False),
    ([], ["--quiet"], False, False),
    (["-v"], [], True, True),
    ([], ["-v"], True, True),
    (["-q"], ["-v"], True, True),  # -v wins wherever it is
])
def test_verbosity_before_or_after_the_command(tmp_path, before, after, info, debug):
    source = tmp_path / "pair.json"
    source.write_text(json.dumps(PAIR))
    result = CliRunner().invoke(
        main, [*before, "report", str(source), "--out", str(tmp_path / "report"), *after]
    )
    assert result.exit_code == 0, result.output
    assert (INFO_LINE in result.stderr) is info
    assert (DEBUG_LINE in result.stderr) is debug


def test_every_command_takes_the_verbosity_options():
    for name in main.commands:
        for flag in ("-q", "-v"):
            result = CliRunner().invoke(main, [name, flag, "--help"])
            assert result.exit_code == 0, (name, result.output)
            assert "-q, --quiet" in result.output and "-v, --verbose" in result.output
