"""What an extraction reads: any supported source, as encoded images and their labels.

    images layout (inst-eval)   an RFW instance zip; a manifest (.csv/.tsv with `path`); a folder
                                tree ROOT/<group>/<identity>/<image>; RFW as shipped (every
                                image); an IJB-B/IJB-C folder (its templates' images)
    pairs layout (pair-eval)    a folder of .bin files (<Group>_test.bin, lfw.bin, ...); one or
                                more .bin files (each a set named by its stem); RFW as shipped
                                (its pair lists)
    images layout with pairs    a pair list (.csv/.tsv with `path1`, `path2`, `issame`): each of
    (pair-eval, calibrate)      its images once, and the pairs as row indices

The kind is told from the path: a folder holding .bin files is a pair folder, one with data/ and
txts/ is RFW as shipped, one with meta/*_face_tid_mid.txt is IJB, any other folder a folder tree;
a table is a pair list when it has (mapped) `path1` and `path2` columns. RFW and IJB images are
aligned by their landmark lists (unless `aligned`), a manifest's by its x1..y5 columns. Any
images source takes a per-identity attributes file whose columns `group_by` then names
(`mfftools.data.attributes`); a pair list, `group_by` of each image.
"""
import logging
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from mfftools.data.image_files import LabelledImages, LabelledPairs, index_labels
from mfftools.errors import MfftoolsError

logger = logging.getLogger(__name__)


@dataclass
class ExtractionSource:
    """Images to embed (`images`: an EncodedImages) with the labels of the rows they become.

    The images layout needs `identity` and `group` (and may name identities: `identity_names`,
    one per image) and may carry a pair list (`pair_index` [P, 2] source rows, `pair_issame`,
    `pair_fold`); the pairs layout needs `issame` and `pair_group` (rows 2k, 2k+1 form pair
    k) and may assign folds (`fold`, one index per pair). `columns` holds more per-image
    columns of the file (`template`, `media`, `detector_score`: one value per source row),
    `attrs` root attributes that describe the source (`aligned`, `alignment_template`).
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
    columns: dict = None
    attrs: dict = None
    options: "SourceOptions" = None
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
        named = ("identity_name",) if self.identity_names is not None else ()
        return named + tuple(self.columns or ())

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
        for name, values in (self.columns or {}).items():
            columns[name] = values[rows]
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
    it), `group_by` (columns whose values make the group: of a manifest, of a pair list for each
    image, or of the `attributes` file), `columns` (standard name -> the table's column),
    `groups` (the groups to keep, pairs layout), `attributes` (a per-identity attributes file,
    `mfftools.data.attributes`), `kind` (`rfw` or `ijb`: read the folder as that layout,
    whatever it looks like), `aligned` (the images are already aligned: no landmarks are used),
    `allow_missing_landmarks` (images without landmarks are left to be skipped as bad images
    instead of refused)."""

    image_root: Path = None
    group_by: tuple = None
    columns: dict = None
    groups: tuple = None
    attributes: Path = None
    kind: str = None
    aligned: bool = False
    allow_missing_landmarks: bool = False

    def attrs(self):
        """The embeddings file's record of them (empty text for an option not given)."""
        columns = self.columns or {}

        def resolved(path):
            return "" if path is None else str(Path(path).resolve())

        return {
            "image_root": resolved(self.image_root),
            "group_by": ",".join(self.group_by or ()),
            "columns": ",".join(f"{name}={columns[name]}" for name in sorted(columns)),
            "groups": ",".join(self.groups or ()),
            "attributes": resolved(self.attributes),
        }

    def read_attributes(self):
        """The attributes file read, or None."""
        from mfftools.data.attributes import Attributes

        return None if self.attributes is None else Attributes(self.attributes)


def open_source(path, options=SourceOptions()):
    """Any one source (see the module's docstring) -> ExtractionSource."""
    source = _open_source(Path(path), options)
    source.options = options
    return source


def _open_source(path, options):
    from mfftools.data.table import is_table

    if not path.exists():
        raise MfftoolsError(f"{path}: no such file or folder")
    description = str(path.resolve())
    shipped = _shipped_source(path, options, "images")
    if shipped is not None:
        return shipped
    if path.suffix.lower() == ".bin" or (path.is_dir() and any(path.glob("*.bin"))):
        return open_pair_sources([path], options)
    if path.is_dir():
        from mfftools.data.folder_tree import read_folder_tree

        _refuse(options, ("image_root", "columns", "groups"), f"{path} is a folder tree")
        _refuse_grouping(options, f"{path} is a folder tree (its groups are its folders)")
        labelled = regrouped(read_folder_tree(path), options)
        return ExtractionSource.of_images(labelled, description)
    if is_table(path):
        return _open_table(path, options, description)
    if zipfile.is_zipfile(path):
        from mfftools.data.rfw import RfwInstanceZip

        _refuse(options, ("image_root", "columns", "groups"), f"{path} is a zip")
        _refuse_grouping(options, f"{path} is an RFW zip (its groups are its folders)")
        archive = RfwInstanceZip(path)
        labelled = LabelledImages(archive, archive.identity, archive.identity_names,
                                  archive.group, archive.group_names)
        return ExtractionSource.of_images(regrouped(labelled, options), description)
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
    shipped = _shipped_source(paths[0], options, "pairs") if len(paths) == 1 else None
    if shipped is not None:
        shipped.options = options
        return shipped
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
    _refuse(options, ("image_root", "group_by", "columns", "attributes"),
            ", ".join(map(str, paths)))
    where = ", ".join(map(str, paths))
    chosen = select_groups([name for name, _ in named], options.groups, where)
    sets = PairBinSets([(name, file) for name, file in named if name in chosen])
    labelled = LabelledPairs(sets, sets.issame, sets.pair_group, sets.group_names)
    source = ExtractionSource.of_pairs(labelled, ", ".join(str(p.resolve()) for p in paths))
    source.options = options
    return source


def _open_table(path, options, description):
    from mfftools.data.table import Table

    table = Table(path, options.columns, known=_TABLE_COLUMNS)
    if table.has("path1") and table.has("path2"):
        from mfftools.data.pair_list import read_pair_list

        from mfftools.data.pair_list import images_of_pairs

        pairs = read_pair_list(table, options.image_root, groups=options.groups,
                               group_by=options.group_by, attributes=options.read_attributes())
        return ExtractionSource.of_pair_images(images_of_pairs(pairs, path), description)
    if table.has("path"):
        from mfftools.data.manifest import read_manifest

        _refuse(options, ("groups",), f"{path} is a manifest")
        source = ExtractionSource.of_images(
            read_manifest(table, options.image_root, group_by=options.group_by,
                          attributes=options.read_attributes()), description
        )
        return _manifest_alignment(source, table, options)
    raise MfftoolsError(
        f"{path}, line 1: neither a manifest (columns path, identity, group) nor a pair list "
        f"(path1, path2, issame); the columns are {', '.join(table.header)} (map yours with "
        "--columns, e.g. path1=p1,path2=p2,issame=label)"
    )


def _shipped_source(path, options, layout):
    """RFW as shipped or an IJB folder in `layout`, or None for any other path."""
    from mfftools.data.ijb import ijb_source, is_ijb_folder
    from mfftools.data.rfw_folder import is_rfw_folder, rfw_source

    kind = options.kind
    if kind is None and path.is_dir():
        kind = "rfw" if is_rfw_folder(path) else "ijb" if is_ijb_folder(path) else None
    if kind is None:
        return None
    what = f"{path} is {_KINDS[kind]}"
    _refuse(options, ("image_root", "columns"), what)
    if layout == "pairs":
        _refuse(options, ("group_by", "attributes"), f"{what}, read as pairs")
    _refuse_grouping(options, f"{what} (its groups are its own)")
    if kind == "rfw":
        return regrouped(rfw_source(path, layout, aligned=options.aligned, groups=options.groups,
                                    allow_missing=options.allow_missing_landmarks), options)
    if layout == "pairs":
        raise MfftoolsError(f"{what}: its template pairs are evaluated by template-eval on the "
                            "images' embeddings (extract it without pairs)")
    _refuse(options, ("groups",), what)
    if options.attributes is not None:
        raise MfftoolsError(
            f"{what}: --attributes does not apply to it: its images are known by template, not "
            "by subject; template-eval --metadata joins IJB's demographics to its templates")
    return ijb_source(path, aligned=options.aligned, allow_missing=options.allow_missing_landmarks)


def _manifest_alignment(source, table, options):
    """A manifest's images aligned by its x1..y5 columns (and `score`), when it has them."""
    from mfftools.data.landmarks import align_source, manifest_landmarks

    found = None if options.aligned else manifest_landmarks(table)
    if found is None:
        return source
    points, scores = found
    return align_source(source, points, scores, allow_missing=options.allow_missing_landmarks)


def regrouped(labelled, options):
    """Labelled images (LabelledImages or an ExtractionSource) whose groups come from the
    attributes file of `options`, when given."""
    attributes = options.read_attributes()
    if attributes is None:
        return labelled
    group_by = attributes.default_group_by(options.group_by)
    group_names, group = index_labels(attributes.groups_of(labelled.identity_names, group_by))
    logger.info("%s: groups %s from %s", attributes.path, ", ".join(group_names), group_by)
    return replace(labelled, group=group, group_names=group_names)


def _refuse_grouping(options, what):
    """--group-by on a source whose groups are its own: only with an attributes file."""
    if options.group_by and options.attributes is None:
        raise MfftoolsError(f"{what}: --group-by needs --attributes FILE (per-identity "
                            "attributes to group by)")


_KINDS = {"rfw": "RFW as shipped", "ijb": "an IJB-B/IJB-C folder"}
_TABLE_COLUMNS = ("path", "identity", "group", "path1", "path2", "issame", "fold", "identity1",
                  "identity2")
_OPTION_NAMES = {"image_root": "--image-root", "group_by": "--group-by", "columns": "--columns",
                 "groups": "--groups", "attributes": "--attributes"}


def _refuse(options, names, what):
    """An error for options that do not apply to this kind of source."""
    given = [_OPTION_NAMES[name] for name in names if getattr(options, name)]
    if given:
        raise MfftoolsError(f"{what}: {', '.join(given)} does not apply to it")
