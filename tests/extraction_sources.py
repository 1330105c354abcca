"""Small sources and a small model for the extraction tests (tests/ is on the path): seeded
random images, sources with bad images, sources that interrupt the run, RFW zips and .bin
folders."""
import importlib.util
import io
import pickle
import zipfile

import numpy as np
from PIL import Image

from mfftools.data.images import EncodedImages
from mfftools.sources import ExtractionSource

TINY_MODEL = '''
import time
import torch


class TinyNet(torch.nn.Module):
    """A small, not flip-symmetric embedding network; `delay` seconds of sleep per forward."""

    def __init__(self, delay=0.0):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, kernel_size=8, stride=8)
        self.fc = torch.nn.Linear(4 * 14 * 14, 16)
        self.norm = torch.nn.BatchNorm1d(16)
        self.delay = delay

    def forward(self, x):
        time.sleep(self.delay)
        return self.norm(self.fc(torch.relu(self.conv(x)).flatten(1)))
'''


def load_tiny_model_module(folder):
    path = folder / "tiny_model.py"
    path.write_text(TINY_MODEL)
    spec = importlib.util.spec_from_file_location("tiny_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def encoded(seed, fmt="PNG"):
    pixels = np.random.default_rng(seed).integers(0, 256, (112, 112, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def write_rfw_zip(path, people_per_group=2, images_per_person=3, bad=()):
    """A small RFW instance zip (groups G0, G1); members whose index is in `bad` are corrupt."""
    index = 0
    with zipfile.ZipFile(path, "w") as archive:
        for group in ("G0", "G1"):
            people = [f"m.{group}{k}" for k in range(people_per_group)]
            archive.writestr(f"data/txts/{group}/{group}_people.txt", "".join(f"{p}\t1\n" for p in people))
            for person in people:
                for number in range(1, images_per_person + 1):
                    data = b"not an image" if index in bad else encoded(index)
                    archive.writestr(f"data/data/{group}/{person}/{person}_{number:04d}.jpg", data)
                    index += 1
    return path


def write_bin_folder(folder, pairs_per_group=3, bad=()):
    """<Group>_test.bin files for groups G0, G1; rows (over both groups) in `bad` are corrupt."""
    folder.mkdir()
    row = 0
    for group in ("G0", "G1"):
        bins = []
        for _ in range(2 * pairs_per_group):
            bins.append(b"broken" if row in bad else encoded(100 + row))
            row += 1
        issame = [k % 2 == 0 for k in range(pairs_per_group)]
        with open(folder / f"{group}_test.bin", "wb") as handle:
            pickle.dump((bins, issame), handle, protocol=4)
    return folder


class NoiseImages(EncodedImages):
    """Image k: a seeded random PNG; rows in `bad` are not images."""

    def __init__(self, n, bad=()):
        self.n, self.bad = n, set(bad)

    def __len__(self):
        return self.n

    def encoded(self, k):
        return b"not an image" if k in self.bad else encoded(k)

    def image_name(self, k):
        return f"img{k}"


class Interrupting(EncodedImages):
    """Wraps images; the read after `reads` reads raises KeyboardInterrupt: an interrupted run."""

    def __init__(self, images, reads):
        self.images, self.reads_left = images, reads

    def __len__(self):
        return len(self.images)

    def encoded(self, k):
        if self.reads_left == 0:
            raise KeyboardInterrupt
        self.reads_left -= 1
        return self.images.encoded(k)

    def image_name(self, k):
        return self.images.image_name(k)

    def describe(self, k):
        return self.images.describe(k)


def noise_source(n=10, bad=(), interrupt_after=None):
    images = NoiseImages(n, bad)
    return ExtractionSource(
        images=images if interrupt_after is None else Interrupting(images, interrupt_after),
        layout="images",
        group_names=["A", "B"],
        description="noise",
        identity=np.arange(n) // 2,
        group=(np.arange(n) // 2) % 2,
    )


def write_pair_list_with_a_bad_image(folder, text):
    """Images 0.png .. 3.png and an undecodable bad.png in `folder`, and the pair list `text`
    (pairs.csv) naming them."""
    for k in range(4):
        (folder / f"{k}.png").write_bytes(encoded(k))
    (folder / "bad.png").write_bytes(b"not an image")
    pairs = folder / "pairs.csv"
    pairs.write_text(text)
    return pairs
