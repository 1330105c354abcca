"""mfftools: streaming accuracy and fairness evaluation for face recognition.

The Python API (docs/python-api.md): every protocol on numpy arrays, torch tensors or embeddings
files, as the commands run it.

    instance, pairs, identification, template      the protocols -> results
    calibrate, cross_validate                      calibration and mitigation
    load, save                                     the embeddings file
    report                                         the report of results
    InstanceResult, PairResult, IdentificationResult, TemplateResult, CalibrationResult,
    Calibration, ReportFiles, Embeddings           what they return
    MfftoolsError                                  what they raise on bad input

The names are imported on first use, so `import mfftools` (and the command line) loads none of
torch, numpy or h5py until a protocol is called.
"""
from importlib import import_module
from typing import TYPE_CHECKING

from mfftools.errors import MfftoolsError

__version__ = "0.1.0"

_HOMES = {
    "mfftools.api.evaluations": ("instance", "pairs", "identification", "template"),
    "mfftools.api.calibration": ("calibrate", "cross_validate", "Calibration"),
    "mfftools.api.files": ("load", "save", "report"),
    "mfftools.api.results": ("InstanceResult", "PairResult", "IdentificationResult",
                             "TemplateResult", "CalibrationResult"),
    "mfftools.reporting.build": ("ReportFiles",),
    "mfftools.embeddings": ("Embeddings",),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = [
    "instance", "pairs", "identification", "template", "calibrate", "cross_validate", "load",
    "save", "report", "InstanceResult", "PairResult", "IdentificationResult", "TemplateResult",
    "CalibrationResult", "Calibration", "ReportFiles", "Embeddings", "MfftoolsError",
]

if TYPE_CHECKING:  # what a type checker or an editor sees; imported lazily at run time
    from mfftools.api.calibration import Calibration, calibrate, cross_validate
    from mfftools.api.evaluations import identification, instance, pairs, template
    from mfftools.api.files import load, report, save
    from mfftools.api.results import (
        CalibrationResult,
        IdentificationResult,
        InstanceResult,
        PairResult,
        TemplateResult,
    )
    from mfftools.embeddings import Embeddings
    from mfftools.reporting.build import ReportFiles


def __getattr__(name):
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'mfftools' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
