"""IResNet: key-for-key compatibility with insightface's arcface_torch, the forward pass, and the
small r10-mini trunk (insightface's module names at a quarter of the width)."""
import json
from pathlib import Path

import pytest
import torch

from mfftools.models.iresnet import ARCHS, arch_from_layers, iresnet

KEYS_FIXTURE = Path(__file__).with_name("iresnet_keys.json")


def _keys_and_shapes(model):
    return [[key, list(value.shape)] for key, value in model.state_dict().items()]


@pytest.mark.parametrize("arch", ["r18", "r34"])
def test_state_dict_matches_insightface_key_for_key(arch):
    expected = json.loads(KEYS_FIXTURE.read_text())[arch]
    with torch.device("meta"):
        model = iresnet(arch)
    assert _keys_and_shapes(model) == expected


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_blocks_per_stage(arch):
    with torch.device("meta"):
        state = iresnet(arch).state_dict()
    blocks = []
    for stage in range(1, 5):
        blocks.append(sum(key.endswith(".conv1.weight") and key.startswith(f"layer{stage}.") for key in state))
        # only the first block of a stage projects its shortcut
        assert f"layer{stage}.0.downsample.0.weight" in state
        assert f"layer{stage}.1.downsample.0.weight" not in state
    layers, width = ARCHS[arch]
    assert tuple(blocks) == layers
    assert arch_from_layers(blocks) == arch
    assert state["conv1.weight"].shape == (width, 3, 3, 3)
    assert state["fc.weight"].shape == (512, 8 * width * 7 * 7)
    assert not any(key.endswith("conv1.bias") or key.endswith("conv2.bias") for key in state)


def test_unknown_arch_is_rejected():
    with pytest.raises(ValueError, match="r27"):
        iresnet("r27")
    assert arch_from_layers((1, 1, 1, 2)) is None


def test_mini_has_the_keys_of_r18_first_blocks_at_a_quarter_width():
    r18 = json.loads(KEYS_FIXTURE.read_text())["r18"]
    expected = []
    for key, shape in r18:
        if key.split(".")[:2] in [[f"layer{stage}", "1"] for stage in range(1, 5)]:
            continue  # r18's second block of each stage
        if key == "fc.weight":
            shape = [512, 128 * 7 * 7]
        elif not key.startswith(("fc.", "features.")):
            shape = [size // 4 if size >= 64 else size for size in shape]  # channels, not the RGB 3
        expected.append([key, shape])
    with torch.device("meta"):
        model = iresnet("r10-mini")
    assert _keys_and_shapes(model) == expected
    assert model.trunk_dim == 128 * 7 * 7


@pytest.mark.parametrize("arch, channels", [("r18", 512), ("r10-mini", 128)])
def test_forward_shapes_and_frozen_embedding_scale(arch, channels):
    torch.manual_seed(0)
    model = iresnet(arch).eval()
    images = torch.randn(1, 3, 112, 112)
    with torch.inference_mode():
        trunk = model.trunk(images)
        embedding = model(images)
    assert trunk.shape == (1, channels, 7, 7)
    assert embedding.shape == (1, 512)
    assert torch.isfinite(embedding).all()
    assert not model.features.weight.requires_grad
    assert torch.equal(model.features.weight, torch.ones(512))
    # the head: bn2 -> flatten -> fc -> features, in that order
    with torch.inference_mode():
        by_hand = model.features(model.fc(torch.flatten(model.bn2(trunk), 1)))
    torch.testing.assert_close(embedding, by_hand)
    model.fp16 = True  # insightface's mixed-precision switch acts on CUDA only
    with torch.inference_mode():
        assert torch.equal(model(images), embedding)


def test_forward_leaves_an_outer_autocast_alone(monkeypatch):
    """Without fp16 the model enters no autocast context, which could disable the caller's."""
    def refuse(*args, **kwargs):
        raise AssertionError("autocast entered")

    monkeypatch.setattr(torch, "autocast", refuse)
    with torch.device("meta"):
        model = iresnet("r18").eval()
        assert model(torch.zeros(1, 3, 112, 112)).shape == (1, 512)
