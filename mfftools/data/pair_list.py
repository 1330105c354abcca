"""A list of image pairs, CSV or TSV (PROTOCOLS 1.5), for the pair protocol.

    path1,path2,issame[,group][,fold][,any other columns]

`issame` is 1/0 or true/false; paths are relative to the list's folder unless `image_root` is
given. Without `group` the list is one group named after the file; without `fold`, pair-eval
cuts each group into 10 contiguous folds as for .bin files. Fold labels can be anything: they are
numbered 0, 1, ... in order of first appearance. `columns` maps other column names, as in BFW's
pair table (`path1=p1,path2=p2,issame=label,group=a1`). Pairs keep the list's order; groups are
sorted by name. The whole list is checked before any image is read.
"""

import logging
from typing import NamedTuple

import numpy as np

from mfftools.data.groups import select_groups
from mfftools.data.image_files import ImageFiles, ImageResolver, LabelledPairs, index_labels
from mfftools.data.table import Problems, Table

logger = logging.getLogger(__name__)

COLUMNS = ("path1", "path2", "issame", "group", "fold")
_ISSAME = {"1": True, "true": True, "0": False, "false": False}


class _Pair(NamedTuple):
    files: list
    names: list
    issame: bool
    group: str
    fold: str


def read_pair_list(path, image_root=None, columns=None, groups=None):
    """Read and check a pair list (a path, or a Table already read) -> LabelledPairs;
    `columns` maps standard names to the file's, `groups` selects groups by name."""
    table = path if isinstance(path, Table) else Table(path, columns, known=COLUMNS)
    table.require(("path1", "path2", "issame"), "a pair list (path1, path2, issame)")
    resolve = ImageResolver(table.path, image_root)
    positions = {name: table.position(name) for name in COLUMNS if table.has(name)}
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
        issame = _ISSAME.get(values[positions["issame"]].lower())
        if issame is None:
            problems.add(
                f"{table.where(line, positions['issame'])}: {values[positions['issame']]!r} is "
                "not 1/0 or true/false"
            )
        group = values[positions["group"]] if "group" in positions else table.path.stem
        if not group:
            problems.add(f"{table.where(line, positions['group'])}: empty group")
        fold = values[positions["fold"]] if "fold" in positions else None
        if fold == "":
            problems.add(f"{table.where(line, positions['fold'])}: empty fold")
        names = [values[positions["path1"]], values[positions["path2"]]]
        pairs.append(_Pair(files, names, issame, group, fold))
    if not table.records:
        problems.add(f"{table.path}: no rows after the header")
    problems.raise_any()
    fold_index = {label: index for index, label in enumerate(dict.fromkeys(p.fold for p in pairs))}
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
    )
