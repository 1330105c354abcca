"""Embeddings held as arrays (numpy arrays, or torch tensors on any device) read as an
embeddings file is read, so that every protocol takes them through its one path.

An `ArrayEmbeddings` is an images-layout file's view of an array and its labels, an `ArrayPairs`
a pairs-layout file's view of two arrays (row k of each is pair k). Their rows are validated as
a file's rows are (NaN, Inf, all zeros) and handed out as copies, so that no protocol can change
the caller's arrays; a torch tensor's rows are gathered on its own device (`ordered_rows`).

Labels may be anything: identities integers (kept as the integer labels) or any other sortable
labels (strings, ...: numbered in sorted order of their text, as `extract` numbers a manifest's
names), each identity's name its label as text (so two arrays are matched by name as two files
are); groups names (numbered in the order of `group_names`, else sorted) or indices into
`group_names`.
"""
import os
from pathlib import Path

import numpy as np
import torch

from mfftools.embeddings import Embeddings, check_rows, open_embeddings, refuse_bad_rows
from mfftools.errors import MfftoolsError

SINGLE_GROUP = "all"  # the group of every row when no groups are given


def is_path(value):
    """Whether `value` names a file (a str or an os.PathLike) rather than holding arrays."""
    return isinstance(value, (str, os.PathLike))


def _rows(values, name):
    """A 2-d floating-point numpy array or torch tensor (detached), refused otherwise."""
    if isinstance(values, torch.Tensor):
        rows, floating = values.detach(), values.is_floating_point()
    else:
        try:
            rows = np.asarray(values)
        except (TypeError, ValueError) as error:
            raise MfftoolsError(f"{name} must be a numpy array or a torch tensor ({error})") \
                from None
        floating = np.issubdtype(rows.dtype, np.floating)
    if not floating:
        raise MfftoolsError(f"{name} must hold floating-point numbers, found {rows.dtype}")
    if rows.ndim != 2 or not rows.shape[0] or not rows.shape[1]:
        raise MfftoolsError(f"{name} must be a 2-d array [N, D] with N, D > 0, found shape "
                            f"{tuple(rows.shape)}")
    return rows


def _column(values, length, name, per="embedding"):
    """A 1-d numpy array of one value per row (`length`), refused otherwise."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    values = np.asarray(values)
    if values.ndim != 1 or len(values) != length:
        raise MfftoolsError(f"{name} must hold one value per {per} ({length}), found shape "
                            f"{values.shape}")
    return values


def identity_labels(identities, n_rows, name="identities"):
    """(int64 label of each row, each row's identity name): integer labels as they are, any
    others numbered in sorted order of their text."""
    values = _column(identities, n_rows, name)
    if np.issubdtype(values.dtype, np.integer):
        return values.astype(np.int64), values.astype(str)
    names = values.astype(str)
    _, labels = np.unique(names, return_inverse=True)
    return labels.reshape(-1).astype(np.int64), names


def group_indices(groups, n_rows, group_names=None, name="groups", per="embedding"):
    """(group index of each row, group names) of group names or indices; without groups, one
    group (SINGLE_GROUP, or the one name of `group_names`)."""
    if groups is None:
        names = [SINGLE_GROUP] if group_names is None else [str(g) for g in group_names]
        if len(names) != 1:
            raise MfftoolsError(f"{len(names)} group_names but no {name} to place the rows in "
                                "them: give each row's group")
        return np.zeros(n_rows, dtype=np.int64), names
    values = _column(groups, n_rows, name, per)
    if group_names is not None:
        group_names = [str(g) for g in group_names]
        if len(set(group_names)) < len(group_names):
            raise MfftoolsError(f"group_names repeat a name: {', '.join(group_names)}")
    if np.issubdtype(values.dtype, np.integer):
        names = group_names if group_names is not None else [
            str(g) for g in range(int(values.max()) + 1)]
        outside = (values < 0) | (values >= len(names))
        if outside.any():
            row = int(np.flatnonzero(outside)[0])
            raise MfftoolsError(f"{name} row {row} is {int(values[row])}, outside the "
                                f"{len(names)} group names")
        return values.astype(np.int64), names
    text = values.astype(str)
    names = group_names if group_names is not None else sorted(set(text.tolist()))
    position = {group: k for k, group in enumerate(names)}
    unknown = sorted(set(text.tolist()) - set(position))
    if unknown:
        raise MfftoolsError(f"{name} {', '.join(map(repr, unknown[:5]))} "
                            f"{'is' if len(unknown) == 1 else 'are'} not in group_names "
                            f"({', '.join(names)})")
    return np.array([position[group] for group in text.tolist()], dtype=np.int64), names


def _dtype(rows):
    """The numpy dtype the rows are stored in (bfloat16, which numpy lacks, as float32)."""
    if isinstance(rows, torch.Tensor):
        return np.dtype({torch.float16: "float16", torch.float64: "float64"}.get(rows.dtype,
                                                                                 "float32"))
    return rows.dtype


def _float32_copy(rows):
    """float32 numpy copy of some rows (a numpy array or a tensor on any device); values beyond
    float32 become Inf (refused by the checks)."""
    if isinstance(rows, torch.Tensor):
        return rows.to("cpu", torch.float32, copy=True).numpy()
    with np.errstate(over="ignore"):
        return np.array(rows, dtype=np.float32)


class ArrayEmbeddings(Embeddings):
    """An images-layout embeddings file's view of an array [N, D] and its labels (module
    docstring); `name` names the array in messages. Optional per-row columns as a file has
    them: `template`, `media` (integers) and `detector_score` (of IJB-style images)."""

    def __init__(self, rows, identities, groups=None, group_names=None, name="embeddings",
                 template=None, media=None, detector_score=None):
        rows = _rows(rows, name)
        n_rows, dim = rows.shape
        identity, names = identity_labels(identities, n_rows)
        group, group_names = group_indices(groups, n_rows, group_names)
        super().__init__(path=Path(f"<{name} array>"), layout="images", group_names=group_names,
                         n_rows=n_rows, dim=dim, dtype=_dtype(rows), identity=identity,
                         group=group, identity_names=names)
        if len(np.unique(identity)) < 2:
            raise MfftoolsError(f"{self.path}: fewer than two identities; nothing to compare")
        for column, values in (("template", template), ("media", media)):
            if values is not None:
                values = _column(values, n_rows, column)
                if not np.issubdtype(values.dtype, np.integer):
                    raise MfftoolsError(f"{column} must be integers, found {values.dtype}")
                setattr(self, column, values.astype(np.int64))
        if detector_score is not None:
            score = _column(detector_score, n_rows, "detector_score").astype(np.float32)
            if not np.isfinite(score).all():
                row = int(np.flatnonzero(~np.isfinite(score))[0])
                raise MfftoolsError(f"detector_score row {row} is not finite")
            self.detector_score = score
        self.rows, self.name = rows, name

    def iter_blocks(self, block_rows=65536, start=0, stop=None):
        """Yield (first_row, float32 block) over rows [start, stop): validated copies."""
        stop = self.n_rows if stop is None else stop
        for first in range(start, stop, block_rows):
            block = _float32_copy(self.rows[first : min(first + block_rows, stop)])
            check_rows(block, first, self.name)
            yield first, block

    def ordered_rows(self, order):
        """All rows in `order` as one float32 tensor (validated), gathered on the array's own
        device (a numpy array's: the host)."""
        if isinstance(self.rows, torch.Tensor):
            index = torch.from_numpy(np.asarray(order, dtype=np.int64)).to(self.rows.device)
            rows = self.rows.index_select(0, index).to(torch.float32)
            nonfinite = (~torch.isfinite(rows).all(dim=1)).cpu().numpy()
            zero = (~rows.bool().any(dim=1)).cpu().numpy()
        else:
            with np.errstate(over="ignore"):
                rows = torch.from_numpy(self.rows[order].astype(np.float32, copy=False))
            nonfinite = ~torch.isfinite(rows).all(dim=1).numpy()
            zero = ~rows.bool().any(dim=1).numpy()
        refuse_bad_rows(nonfinite, zero, order, self.name)
        return rows


class ArrayPairs(Embeddings):
    """A pairs-layout embeddings file's view of two arrays [P, D] (pair k: row k of each), the
    pairs' labels `issame` and their groups, and optionally each pair's fold."""

    def __init__(self, first, second, issame, groups=None, group_names=None, folds=None,
                 names=("embeddings_a", "embeddings_b")):
        first, second = _rows(first, names[0]), _rows(second, names[1])
        if tuple(first.shape) != tuple(second.shape):
            raise MfftoolsError(f"{names[0]} and {names[1]} must have the same shape (one row "
                                f"per pair), found {tuple(first.shape)} and "
                                f"{tuple(second.shape)}")
        n_pairs, dim = first.shape
        same = _column(issame, n_pairs, "issame", per="pair")
        if same.dtype != bool and not (np.issubdtype(same.dtype, np.integer)
                                       and np.isin(same, (0, 1)).all()):
            raise MfftoolsError(f"issame must hold True/False (or 1/0) per pair, found "
                                f"{same.dtype} values")
        group, group_names = group_indices(groups, n_pairs, group_names, per="pair")
        super().__init__(path=Path(f"<{names[0]}, {names[1]} arrays>"), layout="pairs",
                         group_names=group_names, n_rows=2 * n_pairs, dim=dim,
                         dtype=_dtype(first), issame=same.astype(bool), pair_group=group)
        if folds is not None:
            fold = _column(folds, n_pairs, "folds", per="pair")
            if not np.issubdtype(fold.dtype, np.integer) or (fold < 0).any():
                raise MfftoolsError("folds must hold each pair's fold index 0, 1, ...")
            self.fold = fold.astype(np.int64)
        self.pair_rows, self.names = (first, second), names

    def iter_blocks(self, block_rows=65536, start=0, stop=None):
        """Yield (first_row, float32 block) over rows [start, stop) of the interleaved pairs
        (row 2k: pair k's first image, row 2k + 1 its second): validated copies."""
        stop = self.n_rows if stop is None else stop
        for first in range(start, stop, block_rows):
            last = min(first + block_rows, stop)
            pair_start, pair_stop = first // 2, (last + 1) // 2
            block = np.empty((2 * (pair_stop - pair_start), self.dim), dtype=np.float32)
            for side, (rows, name) in enumerate(zip(self.pair_rows, self.names)):
                part = _float32_copy(rows[pair_start:pair_stop])
                check_rows(part, pair_start, name)
                block[side::2] = part
            yield first, block[first - 2 * pair_start : last - 2 * pair_start]


def images(source, identities=None, groups=None, group_names=None, name="embeddings", **columns):
    """The images-layout Embeddings of `source`: an embeddings file's path (its own labels), an
    opened Embeddings, or an array with its `identities` and `groups` (ArrayEmbeddings)."""
    if is_path(source) or isinstance(source, Embeddings):
        given = [label for label, value in (("identities", identities), ("groups", groups),
                                            ("group_names", group_names), *columns.items())
                 if value is not None]
        if given:
            raise MfftoolsError(f"{file_name(source)}: an embeddings file holds its own "
                                f"labels; {', '.join(given)} go with arrays")
        if is_path(source):
            return open_embeddings(source, layout="images")
        if source.layout != "images":
            raise MfftoolsError(f"{source.path}: this command needs a 'images'-layout "
                                f"embeddings file, this one has layout {source.layout!r}")
        return source
    if identities is None:
        raise MfftoolsError(f"{name}: an array of embeddings needs each row's identity "
                            "(identities, or probe_identities for probes)")
    return ArrayEmbeddings(source, identities, groups, group_names, name=name, **columns)


def pairs(first, second=None, issame=None, groups=None, group_names=None, folds=None):
    """The Embeddings holding pairs of `first`: an embeddings file's path or an opened
    Embeddings (a pairs-layout file, or an images-layout one with its pair list), or two arrays
    with `issame` and the pairs' groups (ArrayPairs)."""
    if is_path(first) or isinstance(first, Embeddings):
        given = [label for label, value in (("embeddings_b", second), ("issame", issame),
                                            ("groups", groups), ("group_names", group_names),
                                            ("folds", folds)) if value is not None]
        if given:
            raise MfftoolsError(f"{file_name(first)}: an embeddings file holds its own pairs; "
                                f"{', '.join(given)} go with arrays")
        return open_embeddings(first) if is_path(first) else first
    if second is None or issame is None:
        raise MfftoolsError("pairs of arrays: give embeddings_a, embeddings_b (row k of each: "
                            "pair k) and issame")
    return ArrayPairs(first, second, issame, groups, group_names, folds)


def file_of(embeddings):
    """The file an opened Embeddings was read from, or None for arrays."""
    return None if isinstance(embeddings, (ArrayEmbeddings, ArrayPairs)) else embeddings.path


def opened(source):
    """An embeddings file's path opened (its labels read once); anything else as it is."""
    return open_embeddings(source) if is_path(source) else source


def file_name(source):
    """The file a path or an opened Embeddings names, for messages."""
    return source if is_path(source) else source.path


def is_array(value):
    """Whether `value` holds embeddings itself (an array or tensor) rather than naming or being
    an embeddings file."""
    return not (is_path(value) or isinstance(value, Embeddings))


def shared_group_names(*columns):
    """Group names that fit every column of group labels given (None entries skipped), so that
    arrays read apart (a gallery and its probes) name their groups alike: the indices 0 to the
    largest index of integer columns, the sorted union of the labels of other columns; None when
    the columns mix the two (or none is given)."""
    values = [_column(column, len(column), "groups") for column in columns if column is not None]
    if not values:
        return None
    integer = [np.issubdtype(column.dtype, np.integer) for column in values]
    if all(integer):
        return [str(g) for g in range(max(int(column.max()) for column in values) + 1)]
    if any(integer):
        return None
    return sorted(set().union(*(column.astype(str).tolist() for column in values)))
