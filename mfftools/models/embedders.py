"""A face model ready to embed image batches, whatever form it came in.

    PyTorch checkpoint (ours, insightface's backbone.pth, MixFairFace's)   TorchEmbedder
    TorchScript archive (torch.jit.save of a traced or scripted module)    TorchEmbedder
    ONNX model (insightface's model zoo, torch.onnx.export, any exporter)  OnnxEmbedder

The form is told by content, not by the file name alone: a zip archive holding TorchScript code
is TorchScript (`torch.jit.save` and `torch.save` both write zips), any other zip or pickle a
checkpoint; a `.onnx` file, or a file that begins as an ONNX protobuf does, is ONNX. No form runs
pickled Python code: checkpoints are read with `torch.load(weights_only=True)`, TorchScript
archives hold TorchScript (compiled by torch, their tensors restored by its own unpickler, which
builds TorchScript values only), ONNX files hold a graph of operators.
"""
import logging
import warnings
import zipfile
from pathlib import Path

import torch

from mfftools.errors import MfftoolsError
from mfftools.models.loading import file_sha256, weights_sha256

logger = logging.getLogger(__name__)

# An ONNX ModelProto serialised by protobuf begins with field 1 (ir_version), a varint: 0x08.
_ONNX_FIRST_BYTE = b"\x08"
_IRESNET_INPUT = (112, 112)


class TorchEmbedder:
    """Callable: float tensor [B, 3, H, W] -> float32 embeddings [B, D] on `device`.

    On CUDA a loaded model and its images go channels-last (`channels_last`; a module given in
    memory keeps its layout) and, with `amp`, the forward pass runs under float16 autocast.
    `input_size` is the (H, W) the model needs, or None when it does not say (TorchScript, a
    module given in memory); `input_mean`/`input_std` the normalisation it expects on [0, 1]
    pixels, when its checkpoint says.
    """

    def __init__(self, module, device, amp=False, input_size=None, channels_last=True,
                 input_mean=None, input_std=None):
        self.device = torch.device(device)
        self.amp = bool(amp) and self.device.type == "cuda"
        self.input_size = input_size
        self.input_mean, self.input_std = input_mean, input_std
        self.channels_last = channels_last and self.device.type == "cuda"
        self.module = module.to(self.device)
        if self.channels_last:
            self.module = self.module.to(memory_format=torch.channels_last)

    def __call__(self, images):
        images = images.to(self.device, non_blocking=True)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.amp):
            return self.module(images).float()


def model_format(path):
    """checkpoint, torchscript or onnx, from the file's content (and the .onnx extension)."""
    path = Path(path)
    with path.open("rb") as handle:
        head = handle.read(4)
    if path.suffix.lower() == ".onnx":
        return "onnx"
    if head.startswith(b"PK") and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        # torch.jit.save writes <name>/code/... and <name>/constants.pkl; torch.save neither.
        if any(name.split("/")[1:2] == ["code"] or name.endswith("/constants.pkl")
               for name in names):
            return "torchscript"
        return "checkpoint"
    if head[:1] == _ONNX_FIRST_BYTE:
        return "onnx"
    return "checkpoint"


def load_embedder(path, arch=None, output=None, device="auto", amp=False):
    """Load the model in `path` -> (embedder, the embeddings file's attributes describing it).

    `arch` applies to checkpoints (see mfftools.models.loading), `output` to ONNX models (the
    output holding the embedding, when there are several). `device` is auto, cpu or cuda; `amp`
    is float16 autocast for PyTorch models on CUDA.
    """
    from mfftools.dist import resolve_device

    path = Path(path)
    if not path.is_file():
        raise MfftoolsError(f"{path}: model file not found")
    kind = model_format(path)
    if arch is not None and kind != "checkpoint":
        raise MfftoolsError(f"{path}: --arch applies to PyTorch checkpoints, this is {kind}")
    if output is not None and kind != "onnx":
        raise MfftoolsError(f"{path}: --output applies to ONNX models, this is {kind}")
    attrs = {"model": path.stem, "checkpoint": str(path.resolve()), "model_format": kind}
    if kind == "onnx":
        from mfftools.models.onnx import OnnxEmbedder

        embedder = OnnxEmbedder(path, output=output, device=device)
        attrs.update(checkpoint_sha256=file_sha256(path), model_output=embedder.output_name)
        return embedder, attrs
    device = resolve_device(device)
    if kind == "torchscript":
        attrs["checkpoint_sha256"] = file_sha256(path)
        return TorchEmbedder(_load_torchscript(path), device, amp), attrs
    from mfftools.models.loading import load_model

    model, info = load_model(path, arch=arch)
    attrs.update(model=info.name, checkpoint_sha256=info.sha256,
                 checkpoint_format=info.checkpoint_format)
    return TorchEmbedder(model, device, amp, input_size=_IRESNET_INPUT,
                         input_mean=info.input_mean, input_std=info.input_std), attrs


def in_memory_embedder(module, device="auto", amp=False):
    """An nn.Module given in memory -> (embedder, attributes); its digest stands for a file's."""
    from mfftools.dist import resolve_device

    attrs = {
        "model": type(module).__name__,
        "checkpoint": "(in memory)",
        "checkpoint_sha256": weights_sha256(module),
        "model_format": "module",
    }
    return TorchEmbedder(module, resolve_device(device), amp, channels_last=False), attrs


def _load_torchscript(path):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch's notice that it is old
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as error:  # torch raises RuntimeError and others for a damaged archive
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise MfftoolsError(f"{path}: not a readable TorchScript archive ({first_line})") from None
    if not module._c._has_method("forward"):
        methods = module._c._method_names()
        raise MfftoolsError(
            f"{path}: the TorchScript archive is not a module with a forward method (it has "
            f"{', '.join(methods) or 'no methods'}); mfftools calls forward(images)"
        )
    logger.info("loaded TorchScript module %s", path)
    return module.eval()
