"""The training data of a run (`data.train`), read by the readers `mfftools extract` uses.

    a training zip        data/index.txt + data/img/%07d.jpg (PROTOCOLS 1.1; BUPT-Balancedface)
    a manifest            .csv/.tsv with path, identity and group columns (PROTOCOLS 1.5)
    a folder tree         ROOT/<group>/<identity>/<image> (PROTOCOLS 1.5)

Identities are the classes of the margin head. Images are decoded in the loader's workers with
the run's input normalisation (`data.input_mean`, `data.input_std`).
"""
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch.utils.data

from mfftools.data.folder_tree import read_folder_tree
from mfftools.data.images import IMAGE_SIZE, EncodedImages, Preprocessing
from mfftools.data.manifest import COLUMNS, read_manifest
from mfftools.data.table import Table, is_table, parse_column_map
from mfftools.data.training_zip import INDEX_MEMBER, TrainingZip
from mfftools.errors import MfftoolsError

ACCEPTED = ("a training zip (data/index.txt and data/img/), a manifest (.csv/.tsv with columns "
            "path, identity and group) or a folder tree <group>/<identity>/<image>")
_MANIFEST_KEYS = ("data.image_root", "data.columns", "data.group_by")


def training_preprocessing(data_config):
    """The network's input during training: 112x112 RGB, (x - input_mean) / input_std."""
    return Preprocessing(size=(IMAGE_SIZE, IMAGE_SIZE), mean=(data_config.input_mean,) * 3,
                         std=(data_config.input_std,) * 3)


def preprocessing_record(preprocessing):
    """How a checkpoint records its network's input (the embeddings file's attribute names)."""
    return {"input_size": list(preprocessing.size), "input_mean": list(preprocessing.mean),
            "input_std": list(preprocessing.std),
            "channel_order": "BGR" if preprocessing.bgr else "RGB"}


@dataclass
class TrainingSet(torch.utils.data.Dataset):
    """Item k -> (image [3, 112, 112], identity label, group index).

    `labels` are 0 .. num_classes - 1; `group_names` name the group indices; `where` is the
    setting and path errors name.
    """

    images: EncodedImages
    labels: np.ndarray
    groups: np.ndarray
    group_names: list
    where: str
    preprocessing: Preprocessing

    @property
    def num_classes(self):
        return int(self.labels.max()) + 1

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        image = self.preprocessing.decode(self.images.encoded(index), self.images.describe(index))
        return image, int(self.labels[index]), int(self.groups[index])


def open_training_data(data_config, preprocessing):
    """The TrainingSet `data_config.train` names; an error says what is accepted."""
    path = Path(data_config.train)
    where = f"config data.train {path}"
    if not path.exists():
        raise MfftoolsError(f"{where}: no such file or folder")
    images, labels, groups, group_names = _read(path, data_config, where)
    return TrainingSet(images, labels, groups, group_names, where, preprocessing)


def _read(path, data_config, where):
    """(images, identity labels, group indices, group names) of a training zip, manifest or tree;
    the readers' own errors name the file (and line)."""
    if path.is_dir():
        if any(path.glob("*.bin")):
            raise MfftoolsError(f"{where}: a folder of .bin pair files holds no identities to "
                                f"train on; training data are {ACCEPTED}")
        _refuse_settings(data_config, _MANIFEST_KEYS + ("data.in_memory",), where, "a folder tree")
        tree = read_folder_tree(path)
        return tree.images, tree.identity, tree.group, tree.group_names
    if is_table(path):
        return _read_manifest(path, data_config, where)
    if zipfile.is_zipfile(path):
        _refuse_settings(data_config, _MANIFEST_KEYS, where, "a training zip")
        with zipfile.ZipFile(path) as archive:
            is_training_zip = INDEX_MEMBER in archive.NameToInfo
        if not is_training_zip:
            raise MfftoolsError(f"{where}: a zip without {INDEX_MEMBER} is not a training zip; "
                                f"training data are {ACCEPTED}")
        archive = TrainingZip(path, in_memory=data_config.in_memory)
        return archive, archive.labels, archive.groups, archive.group_names
    raise MfftoolsError(f"{where}: training data are {ACCEPTED}")


def _read_manifest(path, data_config, where):
    _refuse_settings(data_config, ("data.in_memory",), where, "a manifest")
    table = Table(path, parse_column_map(data_config.columns or None), known=COLUMNS + ("path1", "path2"))
    if table.has("path1") and table.has("path2"):
        raise MfftoolsError(f"{where}: a pair list holds no identities to train on; training "
                            f"data are {ACCEPTED}")
    image_root = Path(data_config.image_root) if data_config.image_root else None
    manifest = read_manifest(table, image_root, group_by=tuple(data_config.group_by) or None)
    return manifest.images, manifest.identity, manifest.group, manifest.group_names


def _refuse_settings(data_config, keys, where, kind):
    """An error for the data settings given that do not apply to this kind of training data."""
    given = [key for key in keys if getattr(data_config, key.split(".")[1])]
    if given:
        raise MfftoolsError(f"{where} is {kind}: {', '.join(given)} does not apply to it")
