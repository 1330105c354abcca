"""An ONNX face model run by onnxruntime: insightface's model zoo, or any exported network.

The image input, its layout (NCHW or NHWC) and its size are read from the graph, as is a fixed
batch size: a model exported for one image at a time (batch 1, as many are) is run image by image,
one exported for k images is run k at a time (the last chunk padded). With several outputs the
embedding is chosen by name. onnxruntime builds only the operators of the graph: loading a model
runs no Python code from the file.
"""
import logging
from pathlib import Path

import numpy as np
import torch

from mfftools.errors import MfftoolsError

logger = logging.getLogger(__name__)

CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"
_FLOAT_INPUT = "tensor(float)"


def providers_for(device):
    """onnxruntime execution providers for --device auto|cpu|cuda."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    if device == "cpu":
        return [CPU_PROVIDER]
    if CUDA_PROVIDER in available:
        return [CUDA_PROVIDER, CPU_PROVIDER]
    if device == "cuda":
        raise MfftoolsError(
            "--device cuda was asked for, but this onnxruntime has no CUDA execution provider "
            f"(it has {', '.join(available)}); install onnxruntime-gpu, or use --device cpu"
        )
    return [CPU_PROVIDER]


def _dim(value):
    """A graph dimension: an int, or None when symbolic (a name) or unknown."""
    return value if isinstance(value, int) and value > 0 else None


class OnnxEmbedder:
    """Callable: float tensor [B, 3, H, W] (CPU) -> float32 tensor [B, D] (CPU).

    `input_size` is (H, W) when the graph fixes it, else None; `fixed_batch` likewise.
    """

    device = torch.device("cpu")  # where its input and output tensors are
    amp = False
    input_mean = input_std = None  # an ONNX graph does not say how its input was normalised

    def __init__(self, path, output=None, device="auto"):
        import onnxruntime

        self.path = Path(path)
        try:
            self.session = onnxruntime.InferenceSession(
                str(self.path), providers=providers_for(device)
            )
        except MfftoolsError:
            raise
        except Exception as error:  # onnxruntime raises its own types for unreadable models
            first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise MfftoolsError(f"{self.path}: not a readable ONNX model ({first_line})") from None
        self._choose_input()
        self.output_name = self._choose_output(output)
        logger.info(
            "%s: input %r %s (%s), output %r, providers %s", self.path, self.input_name,
            self.input_shape, self.layout, self.output_name,
            ", ".join(self.session.get_providers()),
        )

    def _choose_input(self):
        inputs = self.session.get_inputs()
        images = [item for item in inputs if len(item.shape) == 4]
        if len(images) != 1 or len(inputs) != 1:
            found = ", ".join(f"{item.name} {list(item.shape)}" for item in inputs) or "none"
            raise MfftoolsError(
                f"{self.path}: needs exactly one input, a 4-D image batch [N, 3, H, W] or "
                f"[N, H, W, 3]; the model's inputs are {found}"
            )
        image = images[0]
        shape = [_dim(value) for value in image.shape]
        if shape[1] == 3 or (shape[1] is None and shape[3] != 3):
            self.layout, (height, width) = "NCHW", shape[2:]
        elif shape[3] == 3:
            self.layout, (height, width) = "NHWC", shape[1:3]
        else:
            raise MfftoolsError(
                f"{self.path}: input {image.name} {list(image.shape)} has no dimension of 3 "
                "colour channels (expected [N, 3, H, W] or [N, H, W, 3])"
            )
        if image.type != _FLOAT_INPUT:
            raise MfftoolsError(
                f"{self.path}: input {image.name} is {image.type}; a float32 image input is needed"
            )
        self.input_name, self.input_shape = image.name, list(image.shape)
        self.fixed_batch = shape[0]
        self.input_size = (height, width) if height and width else None

    def _choose_output(self, requested):
        outputs = self.session.get_outputs()
        names = [item.name for item in outputs]
        listed = ", ".join(f"{item.name} {list(item.shape)}" for item in outputs)
        if requested is not None and requested not in names:
            raise MfftoolsError(f"{self.path}: no output {requested!r}; its outputs are {listed}")
        if requested is None and len(outputs) > 1:
            raise MfftoolsError(
                f"{self.path}: the model has several outputs ({listed}); choose the embedding "
                "with --output NAME"
            )
        chosen = outputs[names.index(requested)] if requested is not None else outputs[0]
        if len(chosen.shape) != 2:
            raise MfftoolsError(
                f"{self.path}: output {chosen.name} has shape {list(chosen.shape)}, not "
                "[batch, dimension]; choose the embedding output with --output NAME"
            )
        return chosen.name

    def __call__(self, images):
        batch = images.detach().cpu().numpy()
        if self.layout == "NHWC":
            batch = batch.transpose(0, 2, 3, 1)
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if self.fixed_batch is None:
            out = self._run(batch)
        else:
            out = np.concatenate([
                self._run(self._padded(batch[start:start + self.fixed_batch]))[: len(batch) - start]
                for start in range(0, len(batch), self.fixed_batch)
            ])
        return torch.from_numpy(np.asarray(out, dtype=np.float32))

    def _padded(self, chunk):
        if len(chunk) == self.fixed_batch:
            return chunk
        padding = np.zeros((self.fixed_batch - len(chunk),) + chunk.shape[1:], chunk.dtype)
        return np.concatenate([chunk, padding])

    def _run(self, batch):
        out = self.session.run([self.output_name], {self.input_name: batch})[0]
        if out.ndim != 2 or len(out) != len(batch):
            raise MfftoolsError(
                f"{self.path}: output {self.output_name} came out with shape {list(out.shape)} "
                f"for {len(batch)} images; expected [{len(batch)}, dimension]"
            )
        return out
