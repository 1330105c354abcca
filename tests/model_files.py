"""A small IResNet written as every model file mfftools reads: a checkpoint, ONNX (dynamic batch,
and a fixed batch of 1) and TorchScript, for tests (tests/ is on the path)."""
import warnings

import numpy as np
import torch

from mfftools.models.iresnet import iresnet


def small_iresnet(seed=0):
    """r10-mini with random weights and batch-norm statistics, in eval mode."""
    torch.manual_seed(seed)
    model = iresnet("r10-mini")
    for module in model.modules():
        if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return model.eval()


def export_onnx(model, path, batch=None, size=(112, 112), output_names=("embedding",)):
    """torch.onnx.export (the TorchScript-based exporter, which works offline): a dynamic batch
    dimension, or a fixed batch of `batch` images."""
    example = torch.zeros(batch or 2, 3, *size)
    dynamic = None
    if batch is None:
        dynamic = {name: {0: "batch"} for name in ("input", *output_names)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notice that a newer one exists
        torch.onnx.export(model, (example,), str(path), dynamo=False, input_names=["input"],
                          output_names=list(output_names), dynamic_axes=dynamic)
    return path


def trace_torchscript(model, path, size=(112, 112)):
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch's notice that TorchScript is old
        torch.jit.trace(model, torch.zeros(2, 3, *size)).save(str(path))
    return path


def cosines(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
