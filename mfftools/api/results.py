"""What the Python API returns: a protocol's results dict, shown as its command prints it.

`to_dict()` is the results file of the matching command (`--json`) as a JSON reader gets it
(the long per-identity, ROC and DET lists rounded as the file rounds them); `save(path)` writes
that file; `repr()` is the table the command prints. `data` holds the dict as computed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar, Dict, Optional

import numpy as np

from mfftools.evaluation import text
from mfftools.files import compact, write_results


@dataclass(frozen=True, eq=False, repr=False)
class Result:
    """A protocol's results (`data`: its results dict)."""

    data: dict
    _table: ClassVar[Callable[[dict], str]]

    def to_dict(self) -> dict:
        """The results file's dict, as `--json` writes it (a fresh copy)."""
        return json.loads(json.dumps(compact(self.data), allow_nan=False))

    def save(self, path: str | Path) -> Path:
        """Write the results file (JSON, as `--json` does: whole or not at all)."""
        return write_results(self.data, path)

    @property
    def model(self) -> Optional[str]:
        """The model's name in the results (and in a report), or None."""
        return self.data.get("model")

    def __repr__(self) -> str:
        return type(self)._table(self.data)


@dataclass(frozen=True, eq=False, repr=False)
class InstanceResult(Result):
    """The instance protocol's results (`mfftools inst-eval`). `identity_names`: each identity's
    name in the order of the results' identities (None when the embeddings name none)."""

    identity_names: Optional[np.ndarray] = None
    _table: ClassVar = staticmethod(text.instance_summary)

    @property
    def per_identity(self) -> Dict[str, np.ndarray]:
        """The per-identity table (the columns of `--per-identity`) as numpy arrays: identity
        (the integer label), name (when known), group (its name), n_images, then for each
        result `tpr_<target>_<method>` and `fpr_<target>_<method>` (TPR NaN for an identity
        with one image), then intra and inter similarity."""
        identities = self.data["identities"]
        names = np.asarray(self.data["group_names"], dtype=str)
        table = {"identity": np.asarray(identities["identity"], dtype=np.int64)}
        if self.identity_names is not None:
            table["name"] = np.asarray(self.identity_names, dtype=str)
        table["group"] = names[np.asarray(identities["group"], dtype=np.int64)]
        table["n_images"] = np.asarray(identities["n_images"], dtype=np.int64)
        for entry in self.data["results"]:
            label = f"{entry['target_fpr']:g}_{entry['method']}"
            for rate in ("tpr", "fpr"):
                table[f"{rate}_{label}"] = _floats(entry["per_identity"][rate])
        first = self.data["results"][0]["per_identity"]
        table["intra"], table["inter"] = _floats(first["intra"]), _floats(first["inter"])
        return table


@dataclass(frozen=True, eq=False, repr=False)
class PairResult(Result):
    """The pair protocol's results (`mfftools pair-eval`)."""

    _table: ClassVar = staticmethod(text.pair_table)


@dataclass(frozen=True, eq=False, repr=False)
class IdentificationResult(Result):
    """Open-set identification's results (`mfftools ident-eval`)."""

    _table: ClassVar = staticmethod(text.identification_summary)


@dataclass(frozen=True, eq=False, repr=False)
class TemplateResult(Result):
    """IJB template results, 1:1 and 1:N (`mfftools template-eval`)."""

    _table: ClassVar = staticmethod(text.template_summary)


@dataclass(frozen=True, eq=False, repr=False)
class CalibrationResult(Result):
    """Measures of calibrated scores (`mfftools calibrate cross-val` and `apply`)."""

    _table: ClassVar = staticmethod(text.calibration_table)


def _floats(values):
    """A JSON list of numbers (None: undefined) as float64, NaN where undefined."""
    return np.array([np.nan if value is None else value for value in values], dtype=np.float64)
