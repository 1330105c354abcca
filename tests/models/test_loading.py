"""load_model: every checkpoint form, prefixes, arch inference, strict key checking."""
import hashlib

import numpy as np
import pytest
import torch

from mfftools.errors import MfftoolsError
from mfftools.models.iresnet import iresnet
from mfftools.models.loading import load_model, weights_sha256
from mfftools.models.mixfair import MixFairFaceNet


@pytest.fixture(scope="module")
def iresnet_state():
    torch.manual_seed(1)
    model = iresnet("r18")
    model.bn1.running_mean.normal_()
    return model.state_dict()


@pytest.fixture(scope="module")
def mixfair_state():
    torch.manual_seed(2)
    return MixFairFaceNet("r18", num_classes=7).state_dict()


def _save(tmp_path, content, name="ckpt.pth"):
    path = tmp_path / name
    torch.save(content, path)
    return path


def _assert_weights(model, state_dict):
    loaded = model.state_dict()
    assert set(loaded) == set(state_dict)
    for key, value in state_dict.items():
        assert torch.equal(loaded[key], value), key
    # the parameters keep the model's requires_grad flags: only the embedding BN scale is frozen
    frozen = {name for name, parameter in model.named_parameters() if not parameter.requires_grad}
    assert {"features.weight", "encoder.features.weight"} & frozen
    assert "layer1.0.conv1.weight" not in frozen and "encoder.layer1.0.conv1.weight" not in frozen
    assert all(not tensor.is_meta for tensor in loaded.values())


def test_insightface_backbone(tmp_path, iresnet_state):
    path = _save(tmp_path, iresnet_state)
    model, info = load_model(path)
    _assert_weights(model, iresnet_state)
    assert not model.training
    assert (info.arch, info.model_type, info.checkpoint_format) == ("r18", "iresnet", "insightface")
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert info.name == "iresnet-r18"
    assert (info.input_mean, info.input_std) == (None, None)  # insightface's (x - 0.5) / 0.5


def test_ddp_prefix_and_explicit_arch(tmp_path, iresnet_state):
    path = _save(tmp_path, {f"module.{key}": value for key, value in iresnet_state.items()})
    model, info = load_model(path, arch="r18")
    _assert_weights(model, iresnet_state)
    assert info.checkpoint_format == "insightface"


def test_half_precision_weights_load_as_float32(tmp_path, iresnet_state):
    half = {key: value.half() if value.is_floating_point() else value for key, value in iresnet_state.items()}
    model, _ = load_model(_save(tmp_path, half))
    assert all(parameter.dtype == torch.float32 for parameter in model.parameters())
    assert torch.equal(model.fc.weight, half["fc.weight"].float())
    with torch.inference_mode():
        assert model(torch.zeros(1, 3, 112, 112)).dtype == torch.float32


def test_mixfairface_state_dict(tmp_path, mixfair_state):
    model, info = load_model(_save(tmp_path, mixfair_state))
    assert isinstance(model, MixFairFaceNet)
    _assert_weights(model, mixfair_state)
    assert (info.arch, info.model_type, info.checkpoint_format) == ("r18", "mixfair", "mixfairface")
    assert info.num_classes == 7
    assert (info.input_mean, info.input_std) == ((0, 0, 0), (1, 1, 1))  # the paper's [0, 1] input


def test_lightning_checkpoint_with_model_and_ddp_prefixes(tmp_path, mixfair_state):
    content = {
        "epoch": 3,
        "state_dict": {f"model.module.{key}": value for key, value in mixfair_state.items()},
    }
    model, info = load_model(_save(tmp_path, content))
    _assert_weights(model, mixfair_state)
    assert info.checkpoint_format == "lightning"
    assert (info.input_mean, info.input_std) == ((0, 0, 0), (1, 1, 1))


def test_own_checkpoint(tmp_path, mixfair_state):
    content = {"model": mixfair_state, "arch": "r18", "model_type": "mixfair",
               "config": {"lr": 0.1, "arch": "r18", "milestones": [8, 12]}, "epoch": 2,
               "best": {"value": np.float64(0.93), "epoch": np.int64(1)},
               "history": np.arange(3, dtype=np.float32)}
    model, info = load_model(_save(tmp_path, content))
    _assert_weights(model, mixfair_state)
    assert (info.checkpoint_format, info.model_type) == ("mfftools", "mixfair")
    assert (info.input_mean, info.input_std) == (None, None)  # as mfftools trained, 0.5 and 0.5
    content["preprocessing"] = {"input_mean": [0.0, 0.0, 0.0], "input_std": [1.0, 1.0, 1.0]}
    _, info = load_model(_save(tmp_path, content, "recorded.pth"))
    assert (info.input_mean, info.input_std) == ((0, 0, 0), (1, 1, 1))
    content["preprocessing"] = {"input_mean": [0.5]}
    with pytest.raises(MfftoolsError, match="'preprocessing' must hold input_mean and input_std"):
        load_model(_save(tmp_path, content, "bad.pth"))


def test_own_checkpoint_of_the_mini_trunk(tmp_path):
    torch.manual_seed(3)
    state = MixFairFaceNet("r10-mini", num_classes=4).state_dict()
    path = _save(tmp_path, {"model": state, "arch": "r10-mini", "model_type": "mixfair"})
    model, info = load_model(path)
    _assert_weights(model, state)
    assert (info.arch, info.name, info.num_classes) == ("r10-mini", "mixfair-r10-mini", 4)
    with pytest.raises(MfftoolsError, match=r"--arch says r18 .* which is r10-mini"):
        load_model(path, arch="r18")


def test_mini_backbone_is_inferred_from_its_blocks(tmp_path, iresnet_state):
    torch.manual_seed(4)
    state = iresnet("r10-mini").state_dict()
    model, info = load_model(_save(tmp_path, state))
    _assert_weights(model, state)
    assert (info.arch, info.model_type) == ("r10-mini", "iresnet")
    # one block per stage at insightface's width is not the mini trunk: the shapes are listed
    wide = {key: value for key, value in iresnet_state.items()
            if not (key.startswith("layer") and key.split(".")[1] == "1")}
    with pytest.raises(MfftoolsError) as raised:
        load_model(_save(tmp_path, wide, name="wide.pth"))
    assert "missing keys" not in str(raised.value)
    assert "conv1.weight [64, 3, 3, 3] != [16, 3, 3, 3]" in str(raised.value)


def test_own_checkpoint_declaring_another_type_is_refused(tmp_path, iresnet_state):
    content = {"model": iresnet_state, "arch": "r18", "model_type": "mixfair"}
    with pytest.raises(MfftoolsError, match="model_type 'mixfair'"):
        load_model(_save(tmp_path, content))


def test_arch_disagreeing_with_the_weights(tmp_path, iresnet_state):
    path = _save(tmp_path, iresnet_state)
    with pytest.raises(MfftoolsError, match=r"--arch says r34 .* which is r18"):
        load_model(path, arch="r34")
    with pytest.raises(MfftoolsError, match="unknown arch 'r19'"):
        load_model(path, arch="r19")


def test_mismatched_keys_are_listed(tmp_path, iresnet_state):
    state = dict(iresnet_state)
    del state["fc.bias"]
    del state["layer2.0.prelu.weight"]
    state["extra.weight"] = torch.zeros(3)
    state["conv1.weight"] = torch.zeros(4, 4)
    with pytest.raises(MfftoolsError) as raised:
        load_model(_save(tmp_path, state))
    message = str(raised.value)
    assert "missing keys: 2 (fc.bias, layer2.0.prelu.weight)" in message
    assert "unexpected keys: 1 (extra.weight)" in message
    assert "wrong shapes: 1 (conv1.weight [4, 4] != [64, 3, 3, 3])" in message


def test_unknown_block_counts(tmp_path, iresnet_state):
    state = {key: value for key, value in iresnet_state.items() if not key.startswith("layer4.1.")}
    with pytest.raises(MfftoolsError, match=r"\[2, 2, 2, 1\] blocks per stage is no known IResNet"):
        load_model(_save(tmp_path, state))


def test_not_a_model(tmp_path):
    with pytest.raises(MfftoolsError, match="no model weights found"):
        load_model(_save(tmp_path, {"epoch": 1, "lr": 0.1}))
    with pytest.raises(MfftoolsError, match="not an IResNet checkpoint"):
        load_model(_save(tmp_path, {"linear.weight": torch.zeros(2, 2)}))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(MfftoolsError) as error:
        load_model(garbage)
    assert str(error.value) == (
        f"{garbage}: cannot read as a PyTorch checkpoint of weights "
        "(UnpicklingError: Unsupported operand 110)"
    )
    with pytest.raises(MfftoolsError, match="not found"):
        load_model(tmp_path / "absent.pth")


class _Payload:
    pass


def _torchvision_resnet18_keys():
    """The state_dict of torchvision's resnet18 (its key names and shapes): a ResNet that shares
    an IResNet's stem names but not its network."""
    state = {"conv1.weight": torch.zeros(64, 3, 7, 7)}
    state.update({f"bn1.{name}": torch.zeros(64) for name in ("weight", "bias", "running_mean",
                                                               "running_var")})
    width = 64
    for stage, planes in enumerate((64, 128, 256, 512), 1):
        for block in range(2):
            prefix = f"layer{stage}.{block}"
            state[f"{prefix}.conv1.weight"] = torch.zeros(planes, width, 3, 3)
            state[f"{prefix}.conv2.weight"] = torch.zeros(planes, planes, 3, 3)
            for norm in ("bn1", "bn2"):
                state.update({f"{prefix}.{norm}.{name}": torch.zeros(planes)
                              for name in ("weight", "bias", "running_mean", "running_var")})
            if block == 0 and stage > 1:
                state[f"{prefix}.downsample.0.weight"] = torch.zeros(planes, width, 1, 1)
            width = planes
    state["fc.weight"], state["fc.bias"] = torch.zeros(1000, 512), torch.zeros(1000)
    return state


def test_another_resnet_is_told_to_be_exported(tmp_path):
    path = _save(tmp_path, _torchvision_resnet18_keys())
    with pytest.raises(MfftoolsError) as error:
        load_model(path)
    message = str(error.value)
    assert message.startswith(f"{path}: not an IResNet checkpoint")
    assert message.endswith("export the model to ONNX or TorchScript and pass that file instead "
                            "(docs/extract.md)")
    assert "missing keys" not in message


def test_arbitrary_pickled_objects_are_refused_without_unsafe_advice(tmp_path):
    path = _save(tmp_path, {"model": _Payload()})
    with pytest.raises(MfftoolsError) as error:
        load_model(path)
    assert str(error.value) == (
        f"{path}: the file holds Python objects ({__name__}._Payload) that mfftools refuses to "
        "unpickle, as unpickling them could run any code; save the weights alone, e.g. "
        "torch.save(model.state_dict(), path), and pass that file"
    )
    assert "weights_only" not in str(error.value)


def test_weights_sha256_follows_the_values():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    before = weights_sha256(model)
    assert weights_sha256(model) == before
    with torch.no_grad():
        model.bias[0] += 1
    assert weights_sha256(model) != before


LOAD_IN_A_FRESH_PROCESS = """
import sys
from mfftools.models.loading import load_model
for path in sys.argv[1:]:
    load_model(path)
print("torch._dynamo" in sys.modules)
"""


def test_loading_stays_clear_of_torch_dynamo(tmp_path, iresnet_state, mixfair_state):
    """Initialising a network on the meta device would import torch._dynamo: seconds of
    start-up for every extraction. Networks are built for loading without initialisation."""
    import os
    import subprocess
    import sys

    paths = [_save(tmp_path, iresnet_state, "a.pth"), _save(tmp_path, mixfair_state, "b.pth")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", LOAD_IN_A_FRESH_PROCESS, *map(str, paths)],
                         capture_output=True, text=True, env=env, check=True).stdout
    assert out.strip() == "False"
