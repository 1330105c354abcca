"""The calibration file (`cal.npz`, format `mfftools-calibration/1`): a fitted method, whole.

A numpy .npz archive of plain arrays, read with `allow_pickle=False` (a file holding pickled
objects is refused): `meta` is a JSON document (format, mfftools version, method, calibrator,
settings, the group names, the dimension, model and checkpoint hash of the embeddings it was
fitted on, their `data_sha256`, counts and fallbacks); `bank/*` the calibrators
(calibrators.CalibratorBank); `table/*` the method's per-cluster or per-group values
(methods.Fitted); for faircal and fsn, `centroids` [K, D] and `cluster_of_image` [N] (the cluster
of every image of the file it was fitted on). Written atomically.

A calibration applies only to embeddings of the same model: the dimension must match, and the
embeddings' `model` and `checkpoint_sha256` attributes must equal those recorded (an attribute
recorded on one side only cannot be checked, and is refused as well).
"""
import json
from dataclasses import dataclass

import numpy as np

from mfftools import __version__
from mfftools.calibration.calibrators import CalibratorBank
from mfftools.calibration.methods import Fitted, Settings
from mfftools.errors import MfftoolsError
from mfftools.files import atomic_output

FORMAT = "mfftools-calibration/1"
_IDENTITY_ATTRIBUTES = ("model", "checkpoint_sha256")


@dataclass
class Calibration:
    """A fitted method with what it needs to apply to other pairs, and where it came from."""

    fitted: Fitted
    settings: Settings
    group_names: list
    dim: int
    data_sha256: str
    origin: dict  # model, checkpoint_sha256 (when the embeddings name them), source, n_pairs
    centroids: np.ndarray = None
    cluster_of_image: np.ndarray = None
    version: str = __version__

    @property
    def method(self):
        return self.fitted.method

    def meta(self):
        return {
            "format": FORMAT,
            "mfftools_version": self.version,
            "method": self.fitted.method,
            "calibrator": self.fitted.calibrator,
            "n_keys": self.fitted.n_keys,
            "settings": {"calibrator": self.settings.calibrator, "clusters": self.settings.clusters,
                         "bins": self.settings.bins, "fit_fpr": self.settings.fit_fpr,
                         "seed": self.settings.seed},
            "group_names": list(self.group_names),
            "dim": self.dim,
            "data_sha256": self.data_sha256,
            "origin": self.origin,
            "fallbacks": self.fitted.n_fallbacks,
        }

    def check_embeddings(self, embeddings):
        """Refuse embeddings this calibration was not fitted for (module docstring)."""
        where = embeddings.path
        if embeddings.dim != self.dim:
            raise MfftoolsError(
                f"{where}: embeddings of dimension {embeddings.dim}; the calibration was fitted "
                f"on dimension {self.dim} ({self.origin.get('source')}): fit one on these "
                "embeddings' model"
            )
        for name in _IDENTITY_ATTRIBUTES:
            recorded = self.origin.get(name)
            found = embeddings.attrs.get(name)
            found = found.decode() if isinstance(found, bytes) else found
            found = None if found is None else str(found)
            if recorded != found:
                raise MfftoolsError(
                    f"{where}: {name} is {found!r}, but the calibration was fitted on embeddings "
                    f"with {name} {recorded!r} ({self.origin.get('source')}); a calibration "
                    "applies only to the model it was fitted for"
                )


def save(calibration, path):
    """Write the calibration file atomically; returns its path."""
    arrays = {"meta": np.array(json.dumps(calibration.meta()))}
    for name, value in calibration.fitted.bank.arrays().items():
        arrays[f"bank/{name}"] = value
    for name, value in calibration.fitted.tables.items():
        arrays[f"table/{name}"] = value
    if calibration.fitted.fallback is not None:
        arrays["fallback"] = calibration.fitted.fallback
    if calibration.centroids is not None:
        arrays["centroids"] = calibration.centroids
        arrays["cluster_of_image"] = calibration.cluster_of_image
    with atomic_output(path) as temporary:
        with open(temporary, "wb") as handle:
            np.savez(handle, **arrays)
    return path


def load(path):
    """Read a calibration file (no pickle); an error says what is wrong with a bad one."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise MfftoolsError(f"{path}: no such calibration file") from None
    except (OSError, ValueError) as error:
        raise MfftoolsError(
            f"{path}: not a readable calibration file ({error}); calibration files hold plain "
            "arrays only, and are written by `mfftools calibrate fit`"
        ) from None
    try:
        meta = json.loads(str(arrays["meta"]))
    except (KeyError, ValueError):
        raise MfftoolsError(f"{path}: no readable 'meta' entry: not a calibration file") from None
    if meta.get("format") != FORMAT:
        raise MfftoolsError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    try:
        bank = CalibratorBank.from_arrays(
            {name[len("bank/"):]: value for name, value in arrays.items()
             if name.startswith("bank/")}
        )
        tables = {name[len("table/"):]: value for name, value in arrays.items()
                  if name.startswith("table/")}
        fitted = Fitted(meta["method"], meta["calibrator"], int(meta["n_keys"]), bank, tables,
                        arrays.get("fallback"))
        return Calibration(
            fitted=fitted, settings=Settings(**meta["settings"]),
            group_names=list(meta["group_names"]), dim=int(meta["dim"]),
            data_sha256=meta["data_sha256"], origin=dict(meta["origin"]),
            centroids=arrays.get("centroids"), cluster_of_image=arrays.get("cluster_of_image"),
            version=meta["mfftools_version"],
        )
    except (KeyError, TypeError) as error:
        raise MfftoolsError(f"{path}: incomplete calibration file (missing {error})") from None
