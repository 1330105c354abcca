"""The `mfftools` group: what every command shares."""
import json
import subprocess
import sys

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
