"""Small training data and a tiny stand-in network for the trainer's tests.

The tiny network has the MixFair network's interface (trunk_features, embed_features, forward,
`product`) at a cost of milliseconds per batch, so that multi-epoch, multi-process runs fit a
test budget. `with_norm=False` drops batch norm and dropout: every sample's loss then depends on
that sample alone, which is what makes a DDP run comparable to one process on the same global
batch.
"""
import zipfile

import numpy as np
import torch
from torch import nn

from mfftools.data.images import encode_image
from mfftools.models.heads import build_head
from mfftools.models.mixfair import EMBEDDING_DIM
from mfftools.train.config import TrainConfig


def write_training_zip(path, n_classes=6, per_class=6, seed=0):
    """A training zip whose classes differ in colour and pattern (PROTOCOLS 1.1 layout)."""
    rng = np.random.default_rng(seed)
    lines = []
    with zipfile.ZipFile(path, "w") as archive:
        k = 0
        for label in range(n_classes):
            base = rng.uniform(40, 215, size=3)
            stripe = int(rng.integers(4, 20))
            group = label % 2
            for _ in range(per_class):
                pixels = np.tile(base, (112, 112, 1)) + rng.normal(0, 12, (112, 112, 3))
                pixels[:, ::stripe] += 40
                archive.writestr(f"data/img/{k:07d}.jpg", encode_image(np.clip(pixels, 0, 255).astype(np.uint8)))
                lines.append(f"{'GA' if group == 0 else 'GB'}/person{label} {group} {label} 1")
                k += 1
        archive.writestr("data/index.txt", "\n".join(lines) + "\n")
    return path


class TinyNet(nn.Module):
    """Pooling + conv trunk and a linear `mid`: the MixFair interface, microseconds per image."""

    def __init__(self, product, with_norm=True):
        super().__init__()
        self.trunk = nn.Sequential(nn.AvgPool2d(8), nn.Conv2d(3, 8, 3, padding=1), nn.PReLU(8))
        trunk_features = 8 * 14 * 14
        if with_norm:
            self.mid = nn.Sequential(
                nn.BatchNorm1d(trunk_features), nn.Dropout(0.4),
                nn.Linear(trunk_features, EMBEDDING_DIM), nn.BatchNorm1d(EMBEDDING_DIM),
            )
        else:
            self.mid = nn.Linear(trunk_features, EMBEDDING_DIM)
        self.product = product
        self.calls = 0
        self.crash_at_call = None

    def trunk_features(self, x):
        self.calls += 1
        if self.crash_at_call is not None and self.calls >= self.crash_at_call:
            raise RuntimeError("simulated crash")
        return torch.flatten(self.trunk(x), 1)

    def embed_features(self, trunk_features):
        return self.mid(trunk_features)

    def forward(self, x):
        return self.embed_features(self.trunk_features(x))


def tiny_builder(with_norm=True, crash_at_call=None):
    """A replacement for `build_network` that builds a TinyNet with the configured head."""

    def build(model_config, num_classes):
        head = build_head(model_config.head, EMBEDDING_DIM, num_classes,
                          s=model_config.s, m=model_config.m, cifp=model_config.cifp)
        network = TinyNet(head, with_norm=with_norm)
        network.crash_at_call = crash_at_call
        return network, head

    return build


def small_config(train_zip, **changes):
    """A config for quick CPU runs on `train_zip` (no evaluation)."""
    config = TrainConfig()
    config.data.train_zip = str(train_zip)
    config.data.workers = 0
    config.device = "cpu"
    config.log_every = 1
    config.optim.batch_size = 8
    config.optim.epochs = 3
    config.optim.milestones = [1, 2]
    config.optim.lr = 0.05
    config.eval.every = 0
    for key, value in changes.items():
        section, name = key.split("__") if "__" in key else (None, key)
        setattr(getattr(config, section) if section else config, name, value)
    return config
