"""Load a face model from a checkpoint file, whichever of the usual forms it takes.

Recognised forms (each possibly with DDP's `module.` prefix on every key):
- our own checkpoints: a dict with `model` (state_dict), `arch`, `model_type`, `config`, ...;
- an insightface arcface_torch backbone state_dict (`backbone.pth`);
- a MixFairFace state_dict (`encoder.*`, `mid.*`, `product.weight`), bare as the paper's code
  saves it or inside a Lightning-style `{"state_dict": ...}` with a `model.` prefix.
Loading is strict: a key missing, unexpected or of the wrong shape is an error that lists them.
A checkpoint also says what input its model expects where it can: the paper's checkpoints take
[0, 1] RGB pixels (its `ReadImage` divides by 255 and nothing normalises further: mean 0, std 1);
ours record theirs under `preprocessing` (`input_mean`, `input_std`, on [0, 1] pixels);
insightface's take (x - 0.5) / 0.5.
Files are read with `torch.load(weights_only=True)`, which refuses arbitrary pickled objects;
numpy scalars and numeric arrays (e.g. a metric stored in a training checkpoint) are let through.
"""
import hashlib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mfftools.errors import MfftoolsError
from mfftools.models.iresnet import ARCHS, arch_from_layers, iresnet
from mfftools.models.mixfair import MixFairFaceNet

logger = logging.getLogger(__name__)

MODEL_TYPES = ("iresnet", "mixfair")
_STRIPPED_PREFIXES = ("module.", "model.")
_BLOCK_KEY = re.compile(r"^(?:encoder\.)?layer([1-4])\.(\d+)\.")
_LISTED_KEYS = 10
# How torch's restricted unpickler names a global it refused.
_REFUSED_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")
_UNPICKLER_DETAIL = "WeightsUnpickler error:"


@dataclass(frozen=True)
class ModelInfo:
    """What was loaded: `model_type` is iresnet or mixfair; `checkpoint_format` is mfftools,
    insightface, mixfairface or lightning; `sha256` is the checkpoint file's digest;
    `input_mean`/`input_std` the normalisation (on [0, 1] pixels) the model expects, when the
    checkpoint says (None: insightface's)."""

    path: str
    arch: str
    model_type: str
    checkpoint_format: str
    sha256: str
    num_classes: int = None
    input_mean: tuple = None
    input_std: tuple = None

    @property
    def name(self):
        """Short model name for records, e.g. `mixfair-r34`."""
        return f"{self.model_type}-{self.arch}"


def file_sha256(path, chunk_bytes=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def weights_sha256(model):
    """Digest of a module's state_dict (names, dtypes, shapes and values), for in-memory models."""
    digest = hashlib.sha256()
    for key, value in model.state_dict().items():
        tensor = value.detach().cpu().contiguous()
        digest.update(f"{key}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _numpy_globals():
    """What unpickling numpy scalars and numeric arrays needs, for `torch.serialization.safe_globals`."""
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray
    numeric = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
               "float16", "float32", "float64")
    return [multiarray.scalar, multiarray._reconstruct, np.ndarray, np.dtype] + [
        type(np.dtype(name)) for name in numeric
    ]


def load_model(path, arch=None):
    """Build the model a checkpoint holds and load its weights strictly.

    Returns (model in eval mode, ModelInfo).

    `arch` (r18, r34, r50, r100, r200, r10-mini) is inferred from the number of blocks when not
    given (no two archs share them); when given it must agree with the checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise MfftoolsError(f"{path}: checkpoint not found")
    if arch is not None and arch not in ARCHS:
        raise MfftoolsError(f"unknown arch {arch!r}: use one of {', '.join(ARCHS)}")
    content = load_weights(path)
    state_dict, checkpoint_format, declared = _unwrap(content, path)
    state_dict = _strip_prefixes(state_dict)
    model_type = _model_type(state_dict, path)
    if declared.get("model_type") not in (None, model_type):
        raise MfftoolsError(
            f"{path}: the checkpoint says model_type {declared['model_type']!r} "
            f"but its weights are those of a {model_type!r} model"
        )
    arch = _resolve_arch(state_dict, path, arch, declared.get("arch"))
    # Built on the meta device (no memory to fill), uninitialised (initialising meta tensors
    # goes through torch's Python reference kernels, whose first use imports torch._dynamo:
    # seconds of start-up), then given the loaded tensors.
    with torch.device("meta"):
        model, num_classes = _build(model_type, arch, state_dict)
    _check_keys(model, state_dict, path)
    state_dict = {
        key: value.float() if value.is_floating_point() else value
        for key, value in state_dict.items()
    }
    model.load_state_dict(state_dict, strict=True, assign=True)
    model.eval()
    input_mean, input_std = _expected_input(content, checkpoint_format, model_type, path)
    info = ModelInfo(
        path=str(path),
        arch=arch,
        model_type=model_type,
        checkpoint_format=checkpoint_format,
        sha256=file_sha256(path),
        num_classes=num_classes,
        input_mean=input_mean,
        input_std=input_std,
    )
    logger.info("loaded %s (%s checkpoint) from %s", info.name, checkpoint_format, path)
    return model, info


def load_weights(path):
    """torch.load with weights_only=True, its refusals turned into mfftools errors.

    torch's own message for a refused object advises loading with weights_only=False, which
    would run whatever code the file holds: that advice is never passed on.
    """
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for unreadable files
        text = str(error)
        refused = _REFUSED_GLOBAL.findall(text)
        if refused:
            raise MfftoolsError(
                f"{path}: the file holds Python objects ({', '.join(dict.fromkeys(refused))}) "
                "that mfftools refuses to unpickle, as unpickling them could run any code; save "
                "the weights alone, e.g. torch.save(model.state_dict(), path), and pass that file"
            ) from None
        # Only the restricted unpickler's own finding, after its general advice.
        detail = text.split(_UNPICKLER_DETAIL, 1)[-1].strip().splitlines()
        raise MfftoolsError(
            f"{path}: cannot read as a PyTorch checkpoint of weights "
            f"({type(error).__name__}: {detail[0] if detail else 'no detail'})"
        ) from None


# The paper's code feeds its networks [0, 1] RGB pixels.
_PAPER_INPUT = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))


def _expected_input(content, checkpoint_format, model_type, path):
    """(mean, std) the checkpoint's model expects on [0, 1] pixels, or (None, None)."""
    if checkpoint_format in ("mixfairface", "lightning") and model_type == "mixfair":
        logger.info("%s: the paper's checkpoint: input [0, 1] RGB (mean 0, std 1)", path)
        return _PAPER_INPUT
    recorded = content.get("preprocessing") if checkpoint_format == "mfftools" else None
    if recorded is None:
        return None, None
    try:
        mean, std = (tuple(float(value) for value in recorded[key])
                     for key in ("input_mean", "input_std"))
    except (KeyError, TypeError, ValueError):
        raise MfftoolsError(
            f"{path}: the checkpoint's 'preprocessing' must hold input_mean and input_std (3 "
            f"numbers each), found {recorded!r}"
        ) from None
    if len(mean) != 3 or len(std) != 3:
        raise MfftoolsError(f"{path}: the checkpoint's 'preprocessing' needs 3 values of "
                            f"input_mean and input_std, found {recorded!r}")
    return mean, std


def _is_state_dict(value):
    return isinstance(value, Mapping) and len(value) > 0 and all(
        isinstance(key, str) and isinstance(tensor, torch.Tensor) for key, tensor in value.items()
    )


def _unwrap(content, path):
    """(state_dict, checkpoint format, declared {arch, model_type}) of a loaded checkpoint."""
    if isinstance(content, Mapping) and _is_state_dict(content.get("model")):
        declared = {key: content.get(key) for key in ("arch", "model_type")}
        return dict(content["model"]), "mfftools", declared
    if isinstance(content, Mapping) and _is_state_dict(content.get("state_dict")):
        return dict(content["state_dict"]), "lightning", {}
    if _is_state_dict(content):
        keys = list(content)
        fmt = "mixfairface" if any("encoder." in key for key in keys) else "insightface"
        return dict(content), fmt, {}
    found = list(content)[:_LISTED_KEYS] if isinstance(content, Mapping) else type(content).__name__
    raise MfftoolsError(
        f"{path}: no model weights found: expected a state_dict, or a dict with a 'model' or "
        f"'state_dict' entry holding one; found {found}"
    )


def _strip_prefixes(state_dict):
    """Drop `module.` (DDP) and `model.` (Lightning) prefixes shared by every key."""
    stripped = True
    while stripped:
        stripped = False
        for prefix in _STRIPPED_PREFIXES:
            if all(key.startswith(prefix) for key in state_dict):
                state_dict = {key[len(prefix):]: value for key, value in state_dict.items()}
                stripped = True
    return state_dict


def _model_type(state_dict, path):
    """mixfair or iresnet, from the keys every such network has (the stem's PReLU sets an
    IResNet apart from torchvision's ResNets, which share its other stem keys)."""
    if "encoder.prelu.weight" in state_dict:
        return "mixfair"
    if "prelu.weight" in state_dict:
        return "iresnet"
    raise MfftoolsError(
        f"{path}: not an IResNet checkpoint (no 'prelu.weight' or 'encoder.prelu.weight', which "
        "insightface's IResNets and MixFairFace's networks have; first keys: "
        f"{', '.join(list(state_dict)[:_LISTED_KEYS])}); export the model to ONNX or "
        "TorchScript and pass that file instead (docs/extract.md)"
    )


def _blocks_per_stage(state_dict):
    blocks = [set() for _ in range(4)]
    for key in state_dict:
        match = _BLOCK_KEY.match(key)
        if match:
            blocks[int(match.group(1)) - 1].add(int(match.group(2)))
    return tuple(len(stage) for stage in blocks)


def _resolve_arch(state_dict, path, requested, declared):
    layers = _blocks_per_stage(state_dict)
    inferred = arch_from_layers(layers)
    for source, arch in (("--arch", requested), ("the checkpoint's 'arch'", declared)):
        if arch is not None and inferred is not None and arch != inferred:
            raise MfftoolsError(
                f"{path}: {source} says {arch} but the weights have {list(layers)} blocks per "
                f"stage, which is {inferred}"
            )
    arch = requested or declared or inferred
    if arch is None:
        raise MfftoolsError(
            f"{path}: {list(layers)} blocks per stage is no known IResNet "
            f"({', '.join(f'{name} {list(known)}' for name, (known, _) in ARCHS.items())})"
        )
    if arch not in ARCHS:
        raise MfftoolsError(f"{path}: unknown arch {arch!r}")
    return arch


def _build(model_type, arch, state_dict):
    """The empty model for these weights, and its number of classes (mixfair margin weight)."""
    if model_type == "iresnet":
        fc = state_dict.get("fc.weight")
        num_features = fc.shape[0] if fc is not None and fc.ndim == 2 else 512
        return iresnet(arch, num_features=num_features, init_weights=False), None
    product = state_dict.get("product.weight")
    num_classes = product.shape[0] if product is not None and product.ndim == 2 else None
    return MixFairFaceNet(arch, num_classes=num_classes, init_weights=False), num_classes


def _listed(keys):
    keys = sorted(keys)
    shown = ", ".join(keys[:_LISTED_KEYS])
    return f"{len(keys)} ({shown}{', ...' if len(keys) > _LISTED_KEYS else ''})"


def _check_keys(model, state_dict, path):
    expected = model.state_dict()
    missing = set(expected) - set(state_dict)
    unexpected = set(state_dict) - set(expected)
    wrong_shape = [
        f"{key} {list(state_dict[key].shape)} != {list(expected[key].shape)}"
        for key in expected
        if key in state_dict and state_dict[key].shape != expected[key].shape
    ]
    if missing or unexpected or wrong_shape:
        problems = []
        if missing:
            problems.append(f"missing keys: {_listed(missing)}")
        if unexpected:
            problems.append(f"unexpected keys: {_listed(unexpected)}")
        if wrong_shape:
            problems.append(f"wrong shapes: {_listed(wrong_shape)}")
        raise MfftoolsError(f"{path}: weights do not match the model: " + "; ".join(problems))
