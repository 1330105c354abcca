"""Builders of small data files by hand, for the reader tests (imported as `data_builders`)."""

import io
import zipfile

import numpy as np
from PIL import Image


def encoded_image(seed, size=112, fmt="PNG"):
    """A random RGB image, encoded (PNG by default, so decoding is exact)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def write_zip(path, members):
    """Write {member name: bytes or str} into a zip file."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


def rfw_members(people, images):
    """Members of an RFW instance zip: `people` {group: [person ids]}, `images` {(group, folder):
    number of images}."""
    members = {}
    for group, ids in people.items():
        members[f"data/txts/{group}/{group}_people.txt"] = "".join(f"{pid}\t1\n" for pid in ids)
    seed = 0
    for (group, folder), count in images.items():
        for k in range(1, count + 1):
            members[f"data/data/{group}/{folder}/{folder}_{k:04d}.jpg"] = encoded_image(
                seed, size=8
            )
            seed += 1
    return members
