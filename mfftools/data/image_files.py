"""Images stored as files on disk, and the labels that go with them (PROTOCOLS 1.5).

`ImageFiles` serves the files of a manifest, a folder tree or a pair list; `LabelledImages` and
`LabelledPairs` are what those readers find: the images and, per image, an identity and a group
(the `images` layout), or, per pair of images, `issame`, a group and maybe a fold (`pairs`).
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mfftools.data.images import EncodedImages
from mfftools.errors import MfftoolsError


class ImageFiles(EncodedImages):
    """Image k is the file `files[k]`, named `names[k]` (as its index spells it)."""

    def __init__(self, files, names):
        self.files = [str(file) for file in files]
        self.names = list(names)

    def __len__(self):
        return len(self.files)

    def encoded(self, index):
        try:
            return Path(self.files[index]).read_bytes()
        except OSError as error:
            raise MfftoolsError(
                f"cannot read image {self.files[index]} ({error.strerror})"
            ) from error

    def image_name(self, index):
        return self.names[index]

    def describe(self, index):
        return self.files[index]


@dataclass
class LabelledImages:
    """Images with an identity and a group each: labels 0, 1, ... and the source's names (None
    when the source names no identities)."""

    images: EncodedImages
    identity: np.ndarray
    identity_names: list
    group: np.ndarray
    group_names: list


@dataclass
class LabelledPairs:
    """Pairs of images: rows 2k and 2k+1 of `images` form pair k; `fold` is None when the source
    assigns no folds, `identity_names` (one per row) when it names no identities."""

    images: EncodedImages
    issame: np.ndarray
    pair_group: np.ndarray
    group_names: list
    fold: np.ndarray = None
    identity_names: list = None


def index_labels(values):
    """Distinct values sorted, and each value's position among them (int64)."""
    names, labels = np.unique(np.asarray(values, dtype=str), return_inverse=True)
    return [str(name) for name in names], labels.reshape(-1).astype(np.int64)


class ImageResolver:
    """Paths as an index writes them -> files, relative to the index's folder or `image_root`;
    each file is checked once."""

    def __init__(self, index_path, image_root=None):
        self.root = Path(image_root) if image_root is not None else Path(index_path).parent
        if image_root is not None and not self.root.is_dir():
            raise MfftoolsError(f"--image-root {self.root}: no such folder")
        self._found = {}

    def __call__(self, text):
        """The file for `text`, or None when there is no such file."""
        if text not in self._found:
            file = self.root / text
            self._found[text] = file if file.is_file() else None
        return self._found[text]

    def missing(self, text):
        """What to say about a path without a file."""
        return (
            f"no image file {text!r} in {self.root} (paths are relative to the list's folder, "
            "or to --image-root DIR)"
        )
