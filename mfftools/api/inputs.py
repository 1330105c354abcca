"""What the Python API's entry points share in reading their arguments, and their types."""
import numbers
import os
from typing import Optional, Sequence, Union

import numpy as np
import torch

from mfftools import arrays
from mfftools.embeddings import Embeddings
from mfftools.errors import MfftoolsError

PathLike = Union[str, os.PathLike]
# Rows [N, D]: an array, a tensor on any device, an embeddings file's path or opened file.
EmbeddingsLike = Union[np.ndarray, torch.Tensor, PathLike, Embeddings]
# One value per row (or per pair): identities, groups, issame, folds, ...
Labels = Optional[Union[np.ndarray, torch.Tensor, Sequence]]
Rates = Union[float, Sequence[float]]
Device = Union[str, torch.device]


def rates(values, name="a target rate"):
    """A tuple of target rates from one number or a sequence of them."""
    if isinstance(values, numbers.Real):
        values = (values,)
    try:
        return tuple(float(value) for value in values)
    except (TypeError, ValueError):
        raise MfftoolsError(f"{name} must be a number or a sequence of numbers, got "
                            f"{values!r}") from None


def device_for(device, *inputs):
    """The device to compute on: `device`, except that `auto` follows a CUDA tensor among the
    `inputs` onto its device (its rows then never leave it)."""
    if str(device) == "auto":
        for value in inputs:
            if isinstance(value, torch.Tensor) and value.device.type == "cuda":
                return value.device
    return device


def without_array_source(result, *embeddings):
    """`result` without its `source` unless every embeddings input is a file (`source` names
    files)."""
    if any(arrays.file_of(source) is None for source in embeddings if source is not None):
        result.pop("source", None)
    return result


def source_of(*embeddings):
    """The results' `source` of these embeddings inputs, as the commands record it: the file's
    path (a gallery and a probe file: both, by role); None when any input is an array."""
    files = [arrays.file_of(source) for source in embeddings if source is not None]
    if not files or any(file is None for file in files):
        return None
    if len(files) == 1:
        return str(files[0])
    return {"gallery": str(files[0]), "probes": str(files[1])}


def name_model(result, name, embeddings):
    """The results' `model`: `name`, else the embeddings' model name (with " + METHOD" when the
    scores were calibrated: a calibrated run is reported beside the plain one), else none."""
    model = name or embeddings.model_name
    if model is not None and name is None and "calibration" in result:
        model = f"{model} + {result['calibration']['method']}"
    if model is not None:
        result["model"] = model
