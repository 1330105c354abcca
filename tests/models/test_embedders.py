"""Every model form gives the checkpoint's embeddings: ONNX (dynamic batch, fixed batch 1) and
TorchScript exports of the project's IResNet, extracted from real image files."""
import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from mfftools.data.images import Preprocessing, encode_image
from mfftools.embeddings import open_embeddings
from mfftools.errors import MfftoolsError
from mfftools.extract import extract
from mfftools.models.embedders import load_embedder, model_format
from model_files import cosines, export_onnx, small_iresnet, trace_torchscript


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    model = small_iresnet()
    torch.save(model.state_dict(), folder / "r10.pth")
    return {
        "pth": folder / "r10.pth",
        "onnx": export_onnx(model, folder / "r10.onnx"),
        "onnx_batch1": export_onnx(model, folder / "r10_batch1.onnx", batch=1),
        "onnx_batch4": export_onnx(model, folder / "r10_batch4.onnx", batch=4),
        "torchscript": trace_torchscript(model, folder / "r10_traced.pt"),
    }


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    folder = tmp_path_factory.mktemp("faces")
    lines = ["path,identity,group"]
    for k in range(7):
        name = f"{k}.jpg" if k % 2 else f"{k}.png"
        pixels = np.random.default_rng(k).integers(0, 256, (112, 112, 3), dtype=np.uint8)
        (folder / name).write_bytes(encode_image(pixels, fmt="JPEG" if k % 2 else "PNG"))
        lines.append(f"{name},person{k // 2},{'AB'[k % 2]}")
    (folder / "faces.csv").write_text("\n".join(lines) + "\n")
    return folder / "faces.csv"


def _extract(manifest, model_path, out, **options):
    options = dict(dict(batch_size=3, workers=0, device="cpu", progress=False), **options)
    return open_embeddings(extract(manifest, model_path, out, **options))


@pytest.mark.parametrize("form", ["onnx", "onnx_batch1", "onnx_batch4", "torchscript"])
def test_every_form_gives_the_checkpoints_embeddings(tmp_path, model_files, manifest, form):
    reference = _extract(manifest, model_files["pth"], tmp_path / "pth.h5")
    exported = _extract(manifest, model_files[form], tmp_path / f"{form}.h5")
    assert cosines(exported.read(), reference.read()).min() > 0.99999
    assert exported.attrs["model_format"] == ("torchscript" if form == "torchscript" else "onnx")
    assert exported.attrs["model"] == model_files[form].stem
    assert reference.attrs["model"] == "iresnet-r10-mini"
    assert reference.attrs["model_format"] == "checkpoint"


def test_forms_are_told_by_content(tmp_path, model_files):
    renamed = tmp_path / "traced.pth"
    renamed.write_bytes(model_files["torchscript"].read_bytes())
    assert model_format(renamed) == "torchscript"
    checkpoint = tmp_path / "weights.pt"
    checkpoint.write_bytes(model_files["pth"].read_bytes())
    assert model_format(checkpoint) == "checkpoint"
    onnx_model = tmp_path / "model.bin"
    onnx_model.write_bytes(model_files["onnx"].read_bytes())
    assert model_format(onnx_model) == "onnx"
    assert model_format(model_files["onnx"]) == "onnx"


def test_onnx_graph_gives_input_size_and_fixed_batch(model_files):
    embedder, attrs = load_embedder(model_files["onnx_batch1"], device="cpu")
    assert embedder.input_size == (112, 112) and embedder.fixed_batch == 1
    assert embedder.layout == "NCHW" and attrs["model_output"] == "embedding"
    assert embedder(torch.zeros(3, 3, 112, 112)).shape == (3, 512)
    dynamic, _ = load_embedder(model_files["onnx"], device="cpu")
    assert dynamic.fixed_batch is None


class _Small(torch.nn.Module):
    """A 64x64 net with two outputs: the embedding and a 4-D feature map."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.conv = torch.nn.Conv2d(3, 4, 8, stride=8)
        self.fc = torch.nn.Linear(4 * 8 * 8, 16)

    def forward(self, images):
        features = torch.relu(self.conv(images))
        return self.fc(features.flatten(1)), features


def test_preprocessing_options_are_applied_and_recorded(tmp_path, manifest):
    small = _Small().eval()
    path = export_onnx(small, tmp_path / "small.onnx", size=(64, 64),
                       output_names=("embedding", "features"))
    with pytest.raises(MfftoolsError, match=r"several outputs \(embedding \['batch', 16\], "
                       r"features \['batch', 4, 8, 8\]\); choose the embedding with --output"):
        load_embedder(path, device="cpu")
    with pytest.raises(MfftoolsError, match=r"output features has shape \['batch', 4, 8, 8\], "
                       r"not \[batch, dimension\]"):
        load_embedder(path, output="features", device="cpu")
    preprocessing = Preprocessing(size=None, mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3), bgr=True)
    written = _extract(manifest, path, tmp_path / "e.h5", output="embedding", flip=False,
                       preprocessing=preprocessing)
    assert list(written.attrs["input_size"]) == [64, 64]
    np.testing.assert_allclose(written.attrs["input_mean"], [0.4, 0.5, 0.6])
    np.testing.assert_allclose(written.attrs["input_std"], [0.2, 0.25, 0.3])
    assert written.attrs["channel_order"] == "BGR"
    decoded = Preprocessing(size=(64, 64), mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3), bgr=True)
    images = torch.stack([decoded.decode((manifest.parent / name).read_bytes(), name)
                          for name in written.image_paths])
    with torch.no_grad():
        expected = small(images)[0].numpy()
    np.testing.assert_allclose(written.read(), expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(MfftoolsError, match="--input-size 112x112, but small takes 64x64 images"):
        _extract(manifest, path, tmp_path / "f.h5", output="embedding",
                 preprocessing=Preprocessing(size=(112, 112)))


def _graph_model(path, inputs, outputs, nodes):
    graph = helper.make_graph(nodes, "g", inputs, outputs)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def test_onnx_models_that_are_not_face_models_are_refused(tmp_path):
    vector = _graph_model(
        tmp_path / "vector.onnx",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 10])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 10])],
        [helper.make_node("Relu", ["x"], ["y"])],
    )
    with pytest.raises(MfftoolsError, match=r"needs exactly one input, a 4-D image batch .*the "
                       r"model's inputs are x \['n', 10\]"):
        load_embedder(vector, device="cpu")
    image_map = _graph_model(
        tmp_path / "map.onnx",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 112, 112])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3, 112, 112])],
        [helper.make_node("Relu", ["x"], ["y"])],
    )
    with pytest.raises(MfftoolsError, match=r"output y has shape \['n', 3, 112, 112\], not "
                       r"\[batch, dimension\]"):
        load_embedder(image_map, device="cpu")
    integers = _graph_model(
        tmp_path / "integers.onnx",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, ["n", 3, 112, 112])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
        [helper.make_node("Cast", ["x"], ["c"], to=TensorProto.FLOAT),
         helper.make_node("ReduceMean", ["c"], ["y"], axes=[2, 3], keepdims=0)],
    )
    with pytest.raises(MfftoolsError, match=r"input x is tensor\(uint8\); a float32 image input"):
        load_embedder(integers, device="cpu")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07 not really")
    with pytest.raises(MfftoolsError, match="garbage.onnx: not a readable ONNX model"):
        load_embedder(garbage, device="cpu")


def test_nhwc_input_is_fed_channels_last(tmp_path):
    nhwc = _graph_model(
        tmp_path / "nhwc.onnx",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 112, 112, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
        [helper.make_node("ReduceMean", ["x"], ["y"], axes=[1, 2], keepdims=0)],
    )
    embedder, _ = load_embedder(nhwc, device="cpu")
    assert embedder.layout == "NHWC" and embedder.input_size == (112, 112)
    images = torch.rand(2, 3, 112, 112)
    np.testing.assert_allclose(embedder(images).numpy(), images.mean(dim=(2, 3)).numpy(),
                               rtol=1e-5)


class _NoForward(torch.nn.Module):
    """A scriptable module with a method, but no forward."""

    @torch.jit.export
    def describe(self, x):
        return x


def test_torchscript_without_forward_is_refused(tmp_path):
    path = tmp_path / "no_forward.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch's notice that TorchScript is old
        torch.jit.script(_NoForward()).save(str(path))
    with pytest.raises(MfftoolsError, match=r"not a module with a forward method \(it has "
                       r"describe\); mfftools calls forward\(images\)"):
        load_embedder(path, device="cpu")
    broken = tmp_path / "broken.pt"
    data = path.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(MfftoolsError):
        load_embedder(broken, device="cpu")


def test_options_of_another_form_are_refused(model_files):
    with pytest.raises(MfftoolsError, match="--arch applies to PyTorch checkpoints, this is onnx"):
        load_embedder(model_files["onnx"], arch="r18", device="cpu")
    with pytest.raises(MfftoolsError, match="--output applies to ONNX models, this is checkpoint"):
        load_embedder(model_files["pth"], output="embedding", device="cpu")


def test_cuda_provider_asked_for_but_absent(model_files):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has a CUDA provider")
    with pytest.raises(MfftoolsError, match="no CUDA execution provider"):
        load_embedder(model_files["onnx"], device="cuda")
