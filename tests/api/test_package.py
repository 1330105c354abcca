"""The public surface of `mfftools`: every name documented, none of them loaded before use."""
import inspect
import json
import subprocess
import sys
import typing
from pathlib import Path

import pytest

import mfftools

HEAVY_MODULES = ("torch", "numpy", "h5py", "matplotlib", "faiss", "PIL")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "python-api.md"


def test_import_loads_no_heavy_module_until_a_name_is_used():
    script = (f"import json, sys, mfftools\n"
              f"before = sorted(m for m in {HEAVY_MODULES} if m in sys.modules)\n"
              f"mfftools.MfftoolsError, mfftools.__version__, dir(mfftools)\n"
              f"same = sorted(m for m in {HEAVY_MODULES} if m in sys.modules)\n"
              f"mfftools.instance\n"
              f"print(json.dumps([before, same, 'torch' in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True)
    assert json.loads(done.stdout) == [[], [], True]


def test_every_public_name_is_there_typed_and_documented():
    page = DOCS.read_text()
    assert set(mfftools.__all__) == set(mfftools._HOME_OF) | {"MfftoolsError"}
    functions = [mfftools.Calibration.apply, mfftools.Calibration.save,
                 mfftools.Calibration.load, mfftools.InstanceResult.to_dict,
                 mfftools.InstanceResult.save]
    for name in mfftools.__all__:
        value = getattr(mfftools, name)
        assert name in dir(mfftools) and value.__doc__, name
        assert f"mfftools.{name}" in page or f"`{name}`" in page, name
        if inspect.isfunction(value):
            functions.append(value)
    for function in functions:  # every parameter and the return typed, every hint resolvable
        hints = typing.get_type_hints(function)
        parameters = set(inspect.signature(function).parameters) - {"self", "cls"}
        assert parameters | {"return"} == set(hints), function.__qualname__
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        mfftools.nothing
