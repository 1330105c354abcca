"""A list of image pairs, CSV or TSV (PROTOCOLS 1.5), for the pair protocol.

    path1,path2,issame[,group][,fold][,identity1,identity2][,any other columns]

`issame` is 1/0 or true/false; paths are relative to the list's folder unless `image_root` is
given. Without `group` the list is one group named after the file. With `group_by` each image has
a group, its values of those columns joined by "-": from the list's own columns `<C>1` and `<C>2`
(BFW's `e1`/`e2`, `g1`/`g2`: `group_by=["e", "g"]`), or, with `attributes`, from the attributes of
its identity (`identity1`, `identity2`); a pair is in a group when both images are, and a pair
whose images are in two groups is left out (and counted in the log). Without `fold`, pair-eval
cuts each group into 10 contiguous folds as for .bin files. Fold labels can be anything: they are
numbered 0, 1, ... in order of first appearance. `columns` maps other column names, as in BFW's
pair table (`path1=p1,path2=p2,issame=label,group=a1`). Pairs keep the list's order; groups are
sorted by name. The whole list is checked before any image is read.

`images_of_pairs` turns the pairs into the images they use, each once (the images layout with its
own pair list, so an image in many pairs is embedded once): images in order of first appearance,
one per file. An image's group is that of its pairs (an image in pairs of two groups is an error);
its identity is given by the optional `identity1`/`identity2` columns (BFW's `id1`, `id2`), or,
without them, is the set of images its genuine pairs connect.
"""

import logging
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from mfftools.data.groups import select_groups
from mfftools.data.image_files import (
    ImageFiles,
    ImageResolver,
    LabelledImages,
    LabelledPairs,
    index_labels,
)
from mfftools.data.table import Problems, Table
from mfftools.errors import MfftoolsError

logger = logging.getLogger(__name__)

COLUMNS = ("path1", "path2", "issame", "group", "fold", "identity1", "identity2")
ISSAME_VALUES = {"1": True, "true": True, "0": False, "false": False}


class _Pair(NamedTuple):
    files: list
    names: list
    issame: bool
    group: str
    fold: str
    identities: list


def read_pair_list(path, image_root=None, columns=None, groups=None, group_by=None,
                   attributes=None):
    """Read and check a pair list (a path, or a Table already read) -> LabelledPairs;
    `columns` maps standard names to the file's, `groups` selects groups by name, `group_by`
    and `attributes` give each image a group (see the module's docstring)."""
    table = path if isinstance(path, Table) else Table(path, columns, known=COLUMNS)
    table.require(("path1", "path2", "issame"), "a pair list (path1, path2, issame)")
    resolve = ImageResolver(table.path, image_root)
    positions = {name: table.position(name) for name in COLUMNS if table.has(name)}
    image_groups = _image_groups(table, group_by, attributes)
    problems = Problems()
    pairs = []
    for line, values in table.rows(problems):
        files = []
        for name in ("path1", "path2"):
            text = values[positions[name]]
            files.append(resolve(text) if text else None)
            if not text:
                problems.add(f"{table.where(line, positions[name])}: empty path")
            elif files[-1] is None:
                problems.add(f"{table.where(line, positions[name])}: {resolve.missing(text)}")
        issame = ISSAME_VALUES.get(values[positions["issame"]].lower())
        if issame is None:
            problems.add(
                f"{table.where(line, positions['issame'])}: {values[positions['issame']]!r} is "
                "not 1/0 or true/false"
            )
        if image_groups is not None:
            first, second = image_groups[len(pairs)]
            group = first if first == second else None  # None: the images' groups differ
            if not (first and second):
                problems.add(f"{table.path}, line {line}: an image without a value of "
                             f"{', '.join(group_by or ('its attributes',))}")
        else:
            group = values[positions["group"]] if "group" in positions else table.path.stem
            if not group:
                problems.add(f"{table.where(line, positions['group'])}: empty group")
        fold = values[positions["fold"]] if "fold" in positions else None
        if fold == "":
            problems.add(f"{table.where(line, positions['fold'])}: empty fold")
        names = [values[positions["path1"]], values[positions["path2"]]]
        identities = [values[positions[name]] if name in positions else None
                      for name in ("identity1", "identity2")]
        pairs.append(_Pair(files, names, issame, group, fold, identities))
    if not table.records:
        problems.add(f"{table.path}: no rows after the header")
    if table.has("identity1") != table.has("identity2"):
        problems.add(f"{table.path}, line 1: identities need both columns identity1 and "
                     "identity2 (map them with --columns identity1=id1,identity2=id2)")
    problems.raise_any()
    fold_index = {label: index for index, label in enumerate(dict.fromkeys(p.fold for p in pairs))}
    across = sum(pair.group is None for pair in pairs)
    if across:
        logger.warning("%s: %d pairs whose two images are in different groups are left out",
                       table.path, across)
        pairs = [pair for pair in pairs if pair.group is not None]
    chosen = set(select_groups(sorted({pair.group for pair in pairs}), groups, table.path))
    pairs = [pair for pair in pairs if pair.group in chosen]
    group_names, pair_group = index_labels([pair.group for pair in pairs])
    logger.info(
        "%s: %d pairs (%d genuine) in groups %s", table.path, len(pairs),
        sum(pair.issame for pair in pairs), ", ".join(group_names),
    )
    return LabelledPairs(
        images=ImageFiles([file for pair in pairs for file in pair.files],
                          [name for pair in pairs for name in pair.names]),
        issame=np.array([pair.issame for pair in pairs], dtype=bool),
        pair_group=pair_group,
        group_names=group_names,
        fold=(
            np.array([fold_index[pair.fold] for pair in pairs], dtype=np.int64)
            if "fold" in positions else None
        ),
        identity_names=(
            [identity for pair in pairs for identity in pair.identities]
            if "identity1" in positions else None
        ),
    )


def _image_groups(table, group_by, attributes):
    """[(group of image 1, group of image 2)] per well-formed record ('' for a missing value),
    or None when the list's `group` column (or its name) groups its pairs."""
    records = [values for _, values in table.records if len(values) == len(table.header)]
    if attributes is not None:
        if not (table.has("identity1") and table.has("identity2")):
            raise MfftoolsError(
                f"{table.path}, line 1: grouping a pair list by --attributes needs each image's "
                f"identity: columns identity1 and identity2 (the columns are "
                f"{', '.join(table.header)}; map yours with --columns identity1=id1,"
                "identity2=id2)"
            )
        at = (table.position("identity1"), table.position("identity2"))
        named = attributes.groups_of([values[at[k]] for values in records for k in (0, 1)],
                                     attributes.default_group_by(group_by))
        return list(zip(named[0::2], named[1::2]))
    if not group_by:
        return None
    at = [(table.index_of(f"{column}1"), table.index_of(f"{column}2")) for column in group_by]
    return [tuple("" if any(not values[pair[k]] for pair in at)
                  else "-".join(values[pair[k]] for pair in at) for k in (0, 1))
            for values in records]


@dataclass
class PairImages:
    """The images of a pair list, each once (LabelledImages), and the pairs over them:
    pair_index [P, 2] (image indices), issame [P], fold [P] or None; `identity_from` says where
    the identities come from ("pair list" or "genuine pairs")."""

    images: LabelledImages
    pair_index: np.ndarray
    issame: np.ndarray
    fold: np.ndarray
    identity_from: str


def images_of_pairs(pairs, where):
    """The PairImages of LabelledPairs read from a pair list (see the module docstring); `where`
    names the list in errors."""
    files, names = pairs.images.files, pairs.images.names
    image_of_file = {}
    for file in files:
        image_of_file.setdefault(file, len(image_of_file))
    image_of_row = np.array([image_of_file[file] for file in files], dtype=np.int64)
    _, first_row = np.unique(image_of_row, return_index=True)
    row_group = np.repeat(pairs.pair_group, 2)
    group = row_group[first_row]
    clash = np.flatnonzero(group[image_of_row] != row_group)
    if len(clash):
        row = int(clash[0])
        raise MfftoolsError(
            f"{where}: image {names[row]!r} is in pairs of groups "
            f"{pairs.group_names[group[image_of_row[row]]]!r} and "
            f"{pairs.group_names[row_group[row]]!r}; extracted image by image, an image needs "
            "one group"
        )
    pair_index = image_of_row.reshape(-1, 2)
    if pairs.identity_names is not None:
        identity_names = [pairs.identity_names[row] for row in first_row]
        _, identity = index_labels(identity_names)
        identity_from = "pair list"
    else:
        identity_names = None
        identity = _connected(len(first_row), pair_index[pairs.issame])
        identity_from = "genuine pairs"
    images = LabelledImages(
        images=ImageFiles([files[row] for row in first_row], [names[row] for row in first_row]),
        identity=identity, identity_names=identity_names, group=group,
        group_names=list(pairs.group_names),
    )
    logger.info("%s: %d pairs over %d distinct images", where, len(pairs.issame), len(first_row))
    return PairImages(images, pair_index, pairs.issame, pairs.fold, identity_from)


def _connected(n_images, edges):
    """Component labels 0, 1, ... (in order of first image) of the graph with these edges."""
    parent = list(range(n_images))

    def root(node):
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for first, second in edges.tolist():
        a, b = root(first), root(second)
        if a != b:
            parent[max(a, b)] = min(a, b)
    roots = np.array([root(node) for node in range(n_images)], dtype=np.int64)
    _, labels = np.unique(roots, return_inverse=True)
    return labels.reshape(-1).astype(np.int64)
