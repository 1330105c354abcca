"""One training step's loss and gradients against a direct re-computation written out here."""
import numpy as np
import pytest
import torch

from mfftools.models.heads import cifp_margin
from mfftools.models.mixfair import MixFairFaceNet
from mfftools.train.config import ModelConfig
from mfftools.train.step import BatchRandomness, TrainingModule, build_network

from trainer_fixtures import tiny_builder


def _reference_mixfair_loss(network, weight, images, labels, permutation, s=64.0, m=0.35):
    """The MixFair + CIFP loss, spelled out sample by sample from its definition."""
    batch = len(labels)
    trunk = network.encoder(images).flatten(1)
    embedding = network.mid(trunk)
    f = embedding / embedding.norm(dim=1, keepdim=True)
    mixed = network.mid(0.5 * trunk + 0.5 * trunk[permutation])
    f_mix = mixed / mixed.norm(dim=1, keepdim=True)
    centres = weight / weight.norm(dim=1, keepdim=True)
    cosine = f @ centres.T
    negatives = sorted(
        ((float(cosine[i, j].detach()), i, j) for i in range(batch) for j in range(cosine.shape[1]) if j != labels[i]),
        reverse=True,
    )[:batch]
    losses = []
    for i in range(batch):
        j = int(permutation[i])
        diff = (f_mix[i] @ f[j]) ** 2 - (f_mix[i] @ f[i]) ** 2
        kept = [cosine[i, c] for _, row, c in negatives if row == i and cosine[i, c] < cosine[i, labels[i]] - m]
        cifp = torch.stack(kept).square().mean() if kept else cosine.new_zeros(())
        logits = s * cosine[i].clone()
        logits[labels[i]] = s * (cosine[i, labels[i]] - (m + diff + cifp))
        losses.append(torch.logsumexp(logits, 0) - logits[labels[i]])
    return torch.stack(losses).mean()


def test_mixfair_network_holds_the_head_as_product():
    network, head = build_network(ModelConfig(type="mixfair", arch="r18", head="mixfair"), num_classes=5)
    assert isinstance(network, MixFairFaceNet) and network.product is head
    assert network.state_dict()["product.weight"].shape == (5, 512)


def test_mixfair_step_loss_and_gradients_match_the_definition():
    # The tiny stand-in has MixFairFaceNet's interface and a `mid` with batch norm.
    torch.manual_seed(0)
    network, head = tiny_builder(with_norm=True)(ModelConfig(head="mixfair"), num_classes=5)
    network.mid[1].p = 0.0  # dropout off: both computations must see the same mid
    module = TrainingModule(network, head).double()  # float64: compare gradients tightly
    images = torch.randn(6, 3, 112, 112, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 3, 4, 1])
    permutation = torch.tensor([2, 0, 1, 5, 3, 4])
    # Bring the class centres close to the embeddings so that some CIFP terms are active.
    with torch.no_grad():
        embedding = torch.nn.functional.normalize(network(images))
        head.weight.copy_(0.01 * torch.randn(5, 512, dtype=torch.float64) + embedding[[0, 1, 2, 3, 4]])

    with torch.no_grad():
        active = cifp_margin(head.cosine(network(images)), labels, head.m)
    assert 0 < int((active > 0).sum()) < len(labels)  # both CIFP cases occur

    loss = module(images, labels, permutation)
    parameters = [p for p in module.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, parameters)

    expected = _reference_mixfair_loss(network, head.weight, images, labels, permutation)
    expected_grads = torch.autograd.grad(expected, parameters)
    torch.testing.assert_close(loss, expected, rtol=1e-10, atol=1e-10)
    assert len(grads) == len(expected_grads) > 8
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-10)
    assert grads[-1].abs().sum() > 0  # gradients reach the class centres


@pytest.mark.parametrize("head_name", ["cosface", "arcface"])
def test_plain_heads_use_the_network_embedding(head_name):
    torch.manual_seed(0)
    network, head = build_network(ModelConfig(type="iresnet", arch="r18", head=head_name), num_classes=3)
    module = TrainingModule(network, head)
    images, labels = torch.randn(2, 3, 112, 112), torch.tensor([0, 2])
    network.eval()  # deterministic forward for the comparison
    expected = torch.nn.functional.cross_entropy(head(network(images), labels), labels)
    torch.testing.assert_close(module(images, labels), expected)
    assert not module.mixfair


def test_batch_randomness_is_reproducible_and_per_epoch():
    images = torch.arange(2 * 3 * 2 * 4, dtype=torch.float32).view(2, 3, 2, 4)
    first = BatchRandomness(seed=1, epoch=0, rank=0, flip=True)
    again = BatchRandomness(seed=1, epoch=0, rank=0, flip=True)
    flips = [first.apply_flip(images) for _ in range(20)]
    assert all(torch.equal(a, again.apply_flip(images)) for a in flips)
    # Every image is either itself or its mirror, and both happen.
    mirrored = [bool(torch.equal(f[0], images[0].flip(-1))) for f in flips]
    assert all(m or torch.equal(f[0], images[0]) for m, f in zip(mirrored, flips))
    assert 0 < sum(mirrored) < 20
    assert torch.equal(BatchRandomness(1, 0, 0, flip=False).apply_flip(images), images)
    perms = {tuple(BatchRandomness(1, epoch, 0, True).permutation(8, "cpu").tolist()) for epoch in range(5)}
    assert len(perms) == 5
    assert sorted(BatchRandomness(1, 0, 1, True).permutation(8, "cpu").tolist()) == list(np.arange(8))
