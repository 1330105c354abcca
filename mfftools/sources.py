"""What an extraction reads: any supported source, as encoded images and their labels.

    images layout (inst-eval)   an RFW instance zip; a manifest (.csv/.tsv with `path`); a folder
                                tree ROOT/<group>/<identity>/<image>
    pairs layout (pair-eval)    a folder of .bin files (<Group>_test.bin, lfw.bin, ...); one or
                                more .bin files (each a set named by its stem)
    images layout with pairs    a pair list (.csv/.tsv with `path1`, `path2`, `issame`): each of
    (pair-eval, calibrate)      its images once, and the pairs as row indices

The kind is told from the path: a folder holding .bin files is a pair folder, any other folder a
folder tree; a table is a pair list when it has (mapped) `path1` and `path2` columns.
"""
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mfftools.data.image_files import LabelledImages, LabelledPairs
from mfftools.errors import MfftoolsError


@dataclass
class ExtractionSource:
    """Images to embed (`images`: an EncodedImages) with the labels of the rows they become.

    The images layout needs `identity` and `group` (and may name identities: `identity_names`,
    one per image) and may carry a pair list (`pair_index` [P, 2] source rows, `pair_issame`,
    `pair_fold`); the pairs layout needs `issame` and `pair_group` (rows 2k, 2k+1 form pair
    k) and may assign folds (`fold`, one index per pair).
    """

    images: object
    layout: str
    group_names: list
    description: str
    identity: np.ndarray = None
    identity_names: list = None
    group: np.ndarray = None
    issame: np.ndarray = None
    pair_group: np.ndarray = None
    fold: np.ndarray = None
    pair_index: np.ndarray = None
    pair_issame: np.ndarray = None
    pair_fold: np.ndarray = None
    identity_from: str = None

    def __len__(self):
        return len(self.images)

    @classmethod
    def of_images(cls, labelled, description):
        """From a LabelledImages."""
        return cls(
            images=labelled.images,
            layout="images",
            group_names=list(labelled.group_names),
            description=description,
            identity=labelled.identity,
            identity_names=(None if labelled.identity_names is None
                            else list(labelled.identity_names)),
            group=labelled.group,
        )

    @classmethod
    def of_pair_images(cls, found, description):
        """From a pair list's PairImages: its images, each once, and its pairs over them."""
        source = cls.of_images(found.images, description)
        source.pair_index = found.pair_index
        source.pair_issame = found.issame
        source.pair_fold = found.fold
        source.identity_from = found.identity_from
        return source

    @property
    def has_pairs(self):
        """Whether the file it makes holds pairs (pairs layout, or images with a pair list)."""
        return self.layout == "pairs" or self.pair_index is not None

    @classmethod
    def of_pairs(cls, pairs, description):
        """From a LabelledPairs."""
        return cls(
            images=pairs.images,
            layout="pairs",
            group_names=list(pairs.group_names),
            description=description,
            issame=pairs.issame,
            pair_group=pairs.pair_group,
            fold=pairs.fold,
        )

    @property
    def optional_columns(self):
        """The optional per-row columns of its file (see mfftools.embeddings)."""
        return ("identity_name",) if self.identity_names is not None else ()

    def row_columns(self, rows):
        """The writer's per-row columns for source rows `rows`."""
        if self.layout == "pairs":
            return {"source_index": rows}
        columns = {
            "identity": self.identity[rows],
            "group": self.group[rows],
            "path": [self.images.image_name(row) for row in rows],
            "source_index": rows,
        }
        if self.identity_names is not None:
            columns["identity_name"] = [self.identity_names[row] for row in rows]
        return columns

    def kept_pairs(self, rows):
        """The pairs of a pair list whose two images are among the source rows `rows`."""
        kept = np.zeros(len(self), dtype=bool)
        kept[rows] = True
        return np.flatnonzero(kept[self.pair_index].all(axis=1))

    def pair_list_columns(self, rows, pairs):
        """The file's pair list for the kept pair indices `pairs`, over the rows written (the
        source rows `rows`, ascending)."""
        return {
            "pair_index": np.searchsorted(rows, self.pair_index[pairs]),
            "pair_issame": self.pair_issame[pairs],
            "pair_fold": None if self.pair_fold is None else self.pair_fold[pairs],
        }

    def pair_columns(self, pairs):
        """The file's per-pair columns for the kept pair indices `pairs`."""
        return {
            "issame": self.issame[pairs],
            "pair_group": self.pair_group[pairs],
            "fold": None if self.fold is None else self.fold[pairs],
        }


@dataclass(frozen=True)
class SourceOptions:
    """How to read a source: `image_root` (a manifest's or pair list's paths are relative to
    it), `group_by` (manifest columns whose values make the group), `columns` (standard name ->
    the table's column), `groups` (the groups to keep, pairs layout)."""

    image_root: Path = None
    group_by: tuple = None
    columns: dict = None
    groups: tuple = None


def open_source(path, options=SourceOptions()):
    """Any one source (see the module's docstring) -> ExtractionSource."""
    from mfftools.data.table import is_table

    path = Path(path)
    if not path.exists():
        raise MfftoolsError(f"{path}: no such file or folder")
    description = str(path.resolve())
    if path.suffix.lower() == ".bin" or (path.is_dir() and any(path.glob("*.bin"))):
        return open_pair_sources([path], options)
    if path.is_dir():
        from mfftools.data.folder_tree import read_folder_tree

        _refuse(options, ("image_root", "group_by", "columns", "groups"),
                f"{path} is a folder tree")
        return ExtractionSource.of_images(read_folder_tree(path), description)
    if is_table(path):
        return _open_table(path, options, description)
    if zipfile.is_zipfile(path):
        from mfftools.data.rfw import RfwInstanceZip

        _refuse(options, ("image_root", "group_by", "columns", "groups"), f"{path} is a zip")
        archive = RfwInstanceZip(path)
        labelled = LabelledImages(archive, archive.identity, archive.identity_names,
                                  archive.group, archive.group_names)
        return ExtractionSource.of_images(labelled, description)
    raise MfftoolsError(
        f"{path}: SOURCE must be an RFW instance zip, a manifest or pair list (.csv/.tsv), a "
        "folder tree <group>/<identity>/<image>, a .bin pair file or a folder of them"
    )


def open_pair_sources(paths, options=SourceOptions()):
    """.bin pair files (each a set named by its stem) and folders of them (each file a group,
    sorted by name), as one source of their sets in the order given; or one pair list."""
    from mfftools.data.groups import select_groups
    from mfftools.data.pair_bin import PairBinSets, bin_set_name, bin_files

    from mfftools.data.table import is_table

    paths = [Path(path) for path in paths]
    if len(paths) == 1 and is_table(paths[0]):
        return open_source(paths[0], options)
    named = []
    for path in paths:
        if path.is_file() and path.suffix.lower() == ".bin":
            named.append((bin_set_name(path), path))
        elif path.is_dir():
            named += bin_files(path)
        else:
            problem = "" if path.exists() else " (no such file or folder)"
            raise MfftoolsError(
                f"{path}: pairs come from .bin pair files, folders of them, or one pair list "
                f"(.csv/.tsv){problem}"
            )
    _refuse(options, ("image_root", "group_by", "columns"), ", ".join(map(str, paths)))
    where = ", ".join(map(str, paths))
    chosen = select_groups([name for name, _ in named], options.groups, where)
    sets = PairBinSets([(name, file) for name, file in named if name in chosen])
    labelled = LabelledPairs(sets, sets.issame, sets.pair_group, sets.group_names)
    return ExtractionSource.of_pairs(labelled, ", ".join(str(path.resolve()) for path in paths))


def _open_table(path, options, description):
    from mfftools.data.table import Table

    table = Table(path, options.columns, known=_TABLE_COLUMNS)
    if table.has("path1") and table.has("path2"):
        from mfftools.data.pair_list import read_pair_list

        _refuse(options, ("group_by",), f"{path} is a pair list")
        from mfftools.data.pair_list import images_of_pairs

        pairs = read_pair_list(table, options.image_root, groups=options.groups)
        return ExtractionSource.of_pair_images(images_of_pairs(pairs, path), description)
    if table.has("path"):
        from mfftools.data.manifest import read_manifest

        _refuse(options, ("groups",), f"{path} is a manifest")
        return ExtractionSource.of_images(
            read_manifest(table, options.image_root, group_by=options.group_by), description
        )
    raise MfftoolsError(
        f"{path}, line 1: neither a manifest (columns path, identity, group) nor a pair list "
        f"(path1, path2, issame); the columns are {', '.join(table.header)} (map yours with "
        "--columns, e.g. path1=p1,path2=p2,issame=label)"
    )


_TABLE_COLUMNS = ("path", "identity", "group", "path1", "path2", "issame", "fold", "identity1",
                  "identity2")
_OPTION_NAMES = {"image_root": "--image-root", "group_by": "--group-by", "columns": "--columns",
                 "groups": "--groups"}


def _refuse(options, names, what):
    """An error for options that do not apply to this kind of source."""
    given = [_OPTION_NAMES[name] for name in names if getattr(options, name)]
    if given:
        raise MfftoolsError(f"{what}: {', '.join(given)} does not apply to it")
