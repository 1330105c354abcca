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
from mfftools.models.mixfair import EMBEDDING_DIM
from mfftools.train.config import TrainConfig
from mfftools.train.step import add_head


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


def _class_images(rng, n_classes, per_class):
    """(label, encoded image) of classes that differ in colour and stripe pattern."""
    for label in range(n_classes):
        base = rng.uniform(40, 215, size=3)
        stripe = int(rng.integers(4, 20))
        for _ in range(per_class):
            pixels = np.tile(base, (112, 112, 1)) + rng.normal(0, 12, (112, 112, 3))
            pixels[:, ::stripe] += 40
            yield label, encode_image(np.clip(pixels, 0, 255).astype(np.uint8), fmt="PNG")


def write_folder_tree(root, n_classes=4, per_class=6, seed=0):
    """ROOT/<group>/<identity>/<k>.png (PROTOCOLS 1.5): classes as in write_training_zip, the
    first half in group GA, the others in GB (so that the tree's order is the classes').
    Returns the root."""
    for label, image in _class_images(np.random.default_rng(seed), n_classes, per_class):
        folder = root / ("GA" if label < n_classes // 2 else "GB") / f"person{label}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{len(list(folder.iterdir())):02d}.png").write_bytes(image)
    return root


def write_manifest(path, tree_root):
    """A manifest (path, identity, group) of a folder tree's images, paths relative to `path`."""
    rows = ["path,identity,group"]
    for image in sorted(tree_root.glob("*/*/*.png")):
        rows.append(f"{image.relative_to(path.parent)},{image.parent.name},{image.parent.parent.name}")
    path.write_text("\n".join(rows) + "\n")
    return path


class TinyNet(nn.Module):
    """Pooling + conv trunk (`encoder`) and a linear `mid`: the MixFair interface, microseconds
    per image."""

    def __init__(self, with_norm=True, num_features=EMBEDDING_DIM):
        super().__init__()
        self.num_features = num_features
        self.encoder = nn.Sequential(nn.AvgPool2d(8), nn.Conv2d(3, 8, 3, padding=1), nn.PReLU(8))
        trunk_features = 8 * 14 * 14
        if with_norm:
            self.mid = nn.Sequential(
                nn.BatchNorm1d(trunk_features), nn.Dropout(0.4),
                nn.Linear(trunk_features, num_features), nn.BatchNorm1d(num_features),
            )
        else:
            self.mid = nn.Linear(trunk_features, num_features)
        self.calls = 0
        self.crash_at_call = None

    def trunk_features(self, x):
        self.calls += 1
        if self.crash_at_call is not None and self.calls >= self.crash_at_call:
            raise RuntimeError("simulated crash")
        return torch.flatten(self.encoder(x), 1)

    def embed_features(self, trunk_features):
        return self.mid(trunk_features)

    def forward(self, x):
        return self.embed_features(self.trunk_features(x))


def tiny_builder(with_norm=True, crash_at_call=None, num_features=EMBEDDING_DIM):
    """A replacement for `build_network` that builds a TinyNet with the configured head."""

    def build(model_config, num_classes):
        network = TinyNet(with_norm=with_norm, num_features=num_features)
        network.crash_at_call = crash_at_call
        return network, add_head(network, model_config, num_classes)

    return build


def small_config(train_data, **changes):
    """A config for quick CPU runs on `train_data` (no evaluation)."""
    config = TrainConfig()
    config.data.train = str(train_data)
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


def _pattern_image(rng, colour):
    """An identity's colour under a strong random stripe pattern and noise (the nuisance)."""
    period = rng.uniform(8, 40)
    coordinate = np.arange(112)[None, :] if rng.integers(2) else np.arange(112)[:, None]
    wave = np.sin(2 * np.pi * (coordinate / period + rng.uniform()))
    pixels = np.asarray(colour) + 90 * np.broadcast_to(wave, (112, 112))[..., None] * rng.uniform(-1, 1, 3)
    pixels = pixels + rng.normal(0, 10, (112, 112, 3))
    return encode_image(np.clip(pixels, 0, 255).astype(np.uint8))


def _identity_colours(count, seed):
    return np.random.default_rng([seed, 1]).uniform(105, 150, size=(count, 3))


def write_pattern_data(folder, identities=8, train_per_identity=16, pairs_per_group=40,
                       instance_per_identity=3, seed=0):
    """Pattern "faces": a training zip and a pair-protocol folder with two groups.

    An identity is a colour; each image adds its own strong stripe pattern and noise. An
    untrained network mostly sees the stripes (pair accuracy near chance); a trained one learns
    to look at the colour. The pairs and the RFW-style instance zip use new images of the
    training identities. Returns (training zip, .bin folder, instance zip).
    """
    import pickle

    rng = np.random.default_rng(seed)
    colours = _identity_colours(identities, seed)
    folder.mkdir(parents=True, exist_ok=True)
    train_zip = folder / "train.zip"
    lines = []
    with zipfile.ZipFile(train_zip, "w") as archive:
        for k in range(train_per_identity * identities):
            label = k % identities
            archive.writestr(f"data/img/{k:07d}.jpg", _pattern_image(rng, colours[label]))
            lines.append(f"G{label % 2}/id{label} {label % 2} {label} 1")
        archive.writestr("data/index.txt", "\n".join(lines) + "\n")
    bin_folder = folder / "bins"
    bin_folder.mkdir(exist_ok=True)
    for group in (0, 1):
        members = [i for i in range(identities) if i % 2 == group]
        bins, issame = [], []
        for pair in range(pairs_per_group):
            same = pair % 2 == 0
            first = members[rng.integers(len(members))]
            second = first if same else rng.choice([m for m in members if m != first])
            bins += [_pattern_image(rng, colours[first]), _pattern_image(rng, colours[second])]
            issame.append(same)
        with open(bin_folder / f"G{group}_test.bin", "wb") as handle:
            pickle.dump((bins, issame), handle)
    instance_zip = folder / "instance.zip"
    with zipfile.ZipFile(instance_zip, "w") as archive:
        for group in (0, 1):
            people = [f"id{i}" for i in range(identities) if i % 2 == group]
            archive.writestr(f"data/txts/G{group}/G{group}_people.txt", "\n".join(people) + "\n")
            for person in people:
                colour = colours[int(person[2:])]
                for k in range(1, instance_per_identity + 1):
                    member = f"data/data/G{group}/{person}/{person}_{k:04d}.jpg"
                    archive.writestr(member, _pattern_image(rng, colour))
    return train_zip, bin_folder, instance_zip
