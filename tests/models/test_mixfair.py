"""MixFairFaceNet: the paper code's key layout and its embedding path (no encoder.bn2)."""
import json
from pathlib import Path

import torch

from mfftools.models.mixfair import MixFairFaceNet

KEYS_FIXTURE = Path(__file__).with_name("iresnet_keys.json")


def test_state_dict_layout():
    with torch.device("meta"):
        model = MixFairFaceNet("r34", num_classes=10)
    state = {key: list(value.shape) for key, value in model.state_dict().items()}
    trunk_keys = [[f"encoder.{key}", shape] for key, shape in json.loads(KEYS_FIXTURE.read_text())["r34"]]
    assert [[key, state[key]] for key in state if key.startswith("encoder.")] == trunk_keys
    head = {key: shape for key, shape in state.items() if not key.startswith("encoder.")}
    assert head == {
        "mid.0.weight": [25088], "mid.0.bias": [25088], "mid.0.running_mean": [25088],
        "mid.0.running_var": [25088], "mid.0.num_batches_tracked": [],
        "mid.2.weight": [512, 25088], "mid.2.bias": [512],
        "mid.3.weight": [512], "mid.3.bias": [512], "mid.3.running_mean": [512],
        "mid.3.running_var": [512], "mid.3.num_batches_tracked": [],
        "product.weight": [10, 512],
    }


def test_without_classes_there_is_no_margin_weight():
    with torch.device("meta"):
        model = MixFairFaceNet("r18")
    assert not any(key.startswith("product.") for key in model.state_dict())


def test_embedding_is_mid_of_layer4_without_encoder_head():
    torch.manual_seed(0)
    model = MixFairFaceNet("r18", num_classes=3).eval()
    for module in (model.encoder.bn2, model.mid[0], model.mid[3]):
        module.running_mean.normal_()
        module.running_var.uniform_(0.5, 2.0)
    images = torch.randn(1, 3, 112, 112)
    with torch.inference_mode():
        trunk = model.trunk_features(images)
        embedding = model(images)
        layer4 = model.encoder.layer4(model.encoder.layer3(model.encoder.layer2(model.encoder.layer1(
            model.encoder.prelu(model.encoder.bn1(model.encoder.conv1(images)))))))
        by_hand = model.mid[3](model.mid[2](model.mid[0](layer4.flatten(1))))
        with_encoder_bn2 = model.mid(model.encoder.bn2(layer4).flatten(1))
        embedded_again = model.embed_features(trunk)
    assert trunk.shape == (1, 512 * 7 * 7)
    assert embedding.shape == (1, 512)
    torch.testing.assert_close(embedded_again, embedding)
    torch.testing.assert_close(embedding, by_hand)
    assert not torch.allclose(embedding, with_encoder_bn2)


def test_unused_encoder_head_is_frozen_and_the_rest_trains():
    with torch.device("meta"):
        model = MixFairFaceNet("r18", num_classes=3)
    frozen = {name for name, parameter in model.named_parameters() if not parameter.requires_grad}
    assert frozen == {
        "encoder.bn2.weight", "encoder.bn2.bias", "encoder.fc.weight", "encoder.fc.bias",
        "encoder.features.weight", "encoder.features.bias",
    }
    assert "product.weight" not in frozen and "mid.2.weight" not in frozen


def test_mid_follows_the_trunk_width():
    torch.manual_seed(0)
    model = MixFairFaceNet("r10-mini", num_classes=5).eval()
    trunk_dim = 128 * 7 * 7
    state = {key: list(value.shape) for key, value in model.state_dict().items()}
    assert state["mid.0.weight"] == [trunk_dim]
    assert state["mid.2.weight"] == [512, trunk_dim]
    assert state["product.weight"] == [5, 512]
    with torch.inference_mode():
        trunk = model.trunk_features(torch.randn(2, 3, 112, 112))
        assert trunk.shape == (2, trunk_dim)
        assert model.embed_features(trunk).shape == (2, 512)
