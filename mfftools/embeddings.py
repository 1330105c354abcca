"""The embeddings file (HDF5, schema `mfftools-embeddings/1`): streaming writer, validated reader.

Layout `images` holds one row per image with its identity and group (instance protocol);
layout `pairs` holds 2P rows, rows 2k and 2k+1 forming pair k (pair protocol).
A writer writes `NAME.partial` beside the file, marked `complete=false`, and renames it to NAME
only once every row is written and flushed and it is marked `complete=true`: a file under its
real name is always whole, and an interrupted extraction leaves its partial file to resume from
the first unwritten row. The writer holds the output's lock (`mfftools.locks`) throughout.
"""
import contextlib
import datetime
import logging
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from mfftools import __version__
from mfftools.errors import MfftoolsError
from mfftools.files import publish
from mfftools.locks import output_lock

logger = logging.getLogger(__name__)

SCHEMA = "mfftools-embeddings/1"
LAYOUTS = ("images", "pairs")
# Columns with one value per row, by layout; `source_index` (position of the row's image in its
# source) is our own addition, used to resume after skipped images.
ROW_COLUMNS = {
    "images": ("identity", "group", "path", "source_index"),
    "pairs": ("source_index",),
}
# Per-row columns a file may have, by layout: a writer has those it was created with.
OPTIONAL_ROW_COLUMNS = {
    "images": ("identity_name", "template", "media", "detector_score"),
    "pairs": (),
}
PAIR_COLUMNS = ("issame", "pair_group")
OPTIONAL_PAIR_COLUMNS = ("fold",)
# An images-layout file may carry its own pair list (each image stored once): row indices of
# the two images of each pair, whether they are the same person, and optionally the pair's fold.
PAIR_LIST_COLUMNS = ("pair_index", "pair_issame")
OPTIONAL_PAIR_LIST_COLUMNS = ("pair_fold",)
_COLUMN_DTYPES = {
    "identity": np.int64,
    "group": np.int64,
    "source_index": np.int64,
    "path": h5py.string_dtype("utf-8"),
    "identity_name": h5py.string_dtype("utf-8"),
    "issame": np.bool_,
    "pair_group": np.int64,
    "fold": np.int64,
    "template": np.int64,
    "media": np.int64,
    "detector_score": np.float32,
    "pair_index": np.int64,
    "pair_issame": np.bool_,
    "pair_fold": np.int64,
}
_CHUNK_ROWS = 1024
# Stored row types; every reader gets float32 rows (float64 rows are rounded to float32 as they
# are read, as the canonical rows of the protocols are float32).
STORED_DTYPES = (np.float32, np.float16, np.float64)
PARTIAL_SUFFIX = ".partial"
_ORDERED_BLOCK_ROWS = 4096


def partial_path(path):
    """Where an extraction into `path` keeps its rows until the file is complete."""
    path = Path(path)
    return path.with_name(path.name + PARTIAL_SUFFIX)


@contextlib.contextmanager
def readable(path):
    """Turn h5py's errors while reading `path` (a damaged or truncated file) into one line."""
    try:
        yield
    except MfftoolsError:
        raise
    except (OSError, KeyError, RuntimeError, ValueError) as error:
        first_line = (str(error).splitlines() or [type(error).__name__])[0]
        raise MfftoolsError(
            f"{path}: damaged or truncated HDF5 file ({first_line}); extract it again"
        ) from None


@dataclass
class Embeddings:
    """A validated embeddings file; labels in memory, embedding rows read on demand.

    `identity`/`group` (images layout) and `issame`/`pair_group` (pairs layout) are numpy arrays;
    the others are None. Optional: `image_paths` and `identity_names` (images layout), `fold`
    (pairs layout: each pair's fold index, when the source assigns folds), `template`, `media`
    (int64) and `detector_score` (float32) of IJB-style images (images layout), and an
    images-layout file's own pair list: `pair_index` [P, 2] (row indices), `pair_issame` [P] and
    `pair_fold` [P].
    """

    path: Path
    layout: str
    group_names: list
    n_rows: int
    dim: int
    dtype: np.dtype
    attrs: dict = field(default_factory=dict)
    identity: np.ndarray = None
    group: np.ndarray = None
    image_paths: np.ndarray = None
    identity_names: np.ndarray = None
    issame: np.ndarray = None
    pair_group: np.ndarray = None
    fold: np.ndarray = None
    template: np.ndarray = None
    media: np.ndarray = None
    detector_score: np.ndarray = None
    pair_index: np.ndarray = None
    pair_issame: np.ndarray = None
    pair_fold: np.ndarray = None

    @property
    def has_pairs(self):
        """Whether the file holds pairs: the pairs layout, or an images layout with a pair list."""
        return self.layout == "pairs" or self.pair_index is not None

    @property
    def model_name(self):
        """The model these embeddings come from: the `model` attribute, else the stem of the
        `checkpoint` attribute, else None (a hand-written file that names neither)."""
        if "model" in self.attrs:
            return _str(self.attrs["model"])
        if "checkpoint" in self.attrs:
            return Path(_str(self.attrs["checkpoint"])).stem
        return None

    def iter_blocks(self, block_rows=65536, start=0, stop=None):
        """Yield (first_row, float32 block) over rows [start, stop), validating each block."""
        stop = self.n_rows if stop is None else stop
        with readable(self.path), h5py.File(self.path, "r") as handle:
            dataset = handle["embeddings"]
            for first in range(start, stop, block_rows):
                with np.errstate(over="ignore"):  # float64 beyond float32: Inf, refused below
                    block = dataset[first : min(first + block_rows, stop)].astype(np.float32)
                check_rows(block, first, f"{self.path}: dataset 'embeddings'")
                yield first, block

    def read(self, start=0, stop=None):
        """Rows [start, stop) as one float32 array (validated)."""
        stop = self.n_rows if stop is None else stop
        out = np.empty((stop - start, self.dim), dtype=np.float32)
        for first, block in self.iter_blocks(start=start, stop=stop):
            out[first - start : first - start + len(block)] = block
        return out

    def ordered_rows(self, order):
        """All rows, row `order[k]` at position k (`order`: a permutation of the rows), as one
        float32 torch tensor (validated) on the host, read block by block into place."""
        import torch

        rows = np.empty((self.n_rows, self.dim), dtype=np.float32)
        position = np.empty_like(order)
        position[order] = np.arange(len(order))
        # Blocks of a few MB: freed and allocated again, their memory is reused, not faulted in.
        for first, block in self.iter_blocks(block_rows=_ORDERED_BLOCK_ROWS):
            rows[position[first : first + len(block)]] = block
        return torch.from_numpy(rows)


def check_rows(block, first_row, where):
    """Refuse a block of float32 rows (numpy) whose first row is row `first_row` of `where`
    ("FILE: dataset 'embeddings'", or an array's name) when a row holds NaN or Inf or is all
    zeros."""
    refuse_bad_rows(~np.isfinite(block).all(axis=1), ~block.any(axis=1),
                    first_row + np.arange(len(block)), where)


def refuse_bad_rows(nonfinite, zero, row_numbers, where):
    """The error for the first row (by `row_numbers`) that holds NaN or Inf, else the first that
    is all zeros; nothing when no row is flagged."""
    for flagged, problem in ((nonfinite, "contains NaN or Inf"), (zero, "is all zeros")):
        if flagged.any():
            row = int(np.asarray(row_numbers)[flagged].min())
            raise MfftoolsError(f"{where} row {row} {problem}")


def _str(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def plain(value):
    """An attribute value as a message shows it: `True`, `0.5`, `[112, 112]`, `'African'`,
    never numpy's `np.True_` or `array([...])`."""
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    return repr(value)


def open_embeddings(path, layout=None, allow_incomplete=False):
    """Open and validate an embeddings file; labels are loaded, embeddings are not.

    Checks the schema, layout, lengths, group indices and identity count here; NaN/Inf/zero rows
    are checked as rows are read (`Embeddings.read` / `iter_blocks`).
    """
    path = Path(path)
    if not path.is_file():
        partial = partial_path(path)
        if partial.is_file():
            raise MfftoolsError(
                f"{path}: not written yet: its extraction was interrupted or is still running "
                f"({partial} holds the rows so far); resume it with `mfftools extract --resume`"
            )
        raise MfftoolsError(f"{path}: embeddings file not found")
    if not h5py.is_hdf5(path):
        raise MfftoolsError(
            f"{path}: not an HDF5 file (damaged, truncated, or another kind of file); "
            "extract it again"
        )
    with readable(path), h5py.File(path, "r") as handle:
        attrs = {key: handle.attrs[key] for key in handle.attrs}
        schema = _str(attrs.get("schema", ""))
        if schema != SCHEMA:
            raise MfftoolsError(f"{path}: schema is {schema!r}, expected {SCHEMA!r}")
        file_layout = _str(attrs.get("layout", ""))
        if file_layout not in LAYOUTS:
            raise MfftoolsError(f"{path}: layout is {file_layout!r}, expected one of {LAYOUTS}")
        if layout is not None and file_layout != layout:
            raise MfftoolsError(
                f"{path}: this command needs a {layout!r}-layout embeddings file, "
                f"this one has layout {file_layout!r}"
            )
        if "complete" not in attrs and not allow_incomplete:
            raise MfftoolsError(
                f"{path}: root attribute 'complete' is missing, so the file was not written by a "
                "finished mfftools extraction; a file written by other tools must set "
                "complete=True once all its rows are in (see docs/embeddings-file.md)"
            )
        if not bool(attrs.get("complete", False)) and not allow_incomplete:
            raise MfftoolsError(
                f"{path}: the file is incomplete (complete=False: an extraction was interrupted "
                "or is still running); resume it with `mfftools extract --resume` first"
            )
        if "group_names" not in attrs:
            raise MfftoolsError(f"{path}: root attribute 'group_names' is missing")
        group_names = [_str(name) for name in np.atleast_1d(attrs["group_names"])]
        if "embeddings" not in handle:
            raise MfftoolsError(f"{path}: dataset 'embeddings' is missing")
        dataset = handle["embeddings"]
        if dataset.ndim != 2 or dataset.dtype not in STORED_DTYPES:
            raise MfftoolsError(
                f"{path}: dataset 'embeddings' must be [N, D] float32, float16 or float64, "
                f"found shape {dataset.shape} {dataset.dtype}"
            )
        n_rows, dim = dataset.shape
        embeddings = Embeddings(
            path=path,
            layout=file_layout,
            group_names=group_names,
            n_rows=n_rows,
            dim=dim,
            dtype=dataset.dtype,
            attrs={key: value for key, value in attrs.items() if key != "group_names"},
        )
        if file_layout == "images":
            _read_images_labels(handle, embeddings)
        else:
            _read_pairs_labels(handle, embeddings)
    return embeddings


def _read_column(handle, name, length, path):
    if name not in handle:
        raise MfftoolsError(f"{path}: dataset {name!r} is missing")
    column = handle[name][()]
    if column.ndim != 1 or len(column) != length:
        raise MfftoolsError(
            f"{path}: dataset {name!r} has shape {column.shape}, expected ({length},)"
        )
    return column


def _check_group_index(groups, n_groups, name, path):
    bad = (groups < 0) | (groups >= n_groups)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise MfftoolsError(
            f"{path}: dataset {name!r} row {row} is {int(groups[row])}, "
            f"outside the {n_groups} group names"
        )


def _read_images_labels(handle, embeddings):
    path, n_rows = embeddings.path, embeddings.n_rows
    identity = _read_column(handle, "identity", n_rows, path)
    group = _read_column(handle, "group", n_rows, path)
    for name, column in (("identity", identity), ("group", group)):
        if not np.issubdtype(column.dtype, np.integer):
            raise MfftoolsError(f"{path}: dataset {name!r} must be integer, found {column.dtype}")
    _check_group_index(group, len(embeddings.group_names), "group", path)
    if len(np.unique(identity)) < 2:
        raise MfftoolsError(f"{path}: fewer than two identities; nothing to compare")
    embeddings.identity = identity.astype(np.int64)
    embeddings.group = group.astype(np.int64)
    embeddings.image_paths = _read_optional_strings(handle, "path", n_rows, path)
    embeddings.identity_names = _read_optional_strings(handle, "identity_name", n_rows, path)
    for name in ("template", "media"):
        if name in handle:
            column = _read_column(handle, name, n_rows, path)
            if not np.issubdtype(column.dtype, np.integer):
                raise MfftoolsError(f"{path}: dataset {name!r} must be integer, found "
                                    f"{column.dtype}")
            setattr(embeddings, name, column.astype(np.int64))
    if "detector_score" in handle:
        score = _read_column(handle, "detector_score", n_rows, path).astype(np.float32)
        if not np.isfinite(score).all():
            row = int(np.flatnonzero(~np.isfinite(score))[0])
            raise MfftoolsError(f"{path}: dataset 'detector_score' row {row} is not finite")
        embeddings.detector_score = score
    if "pair_index" in handle:
        _read_pair_list(handle, embeddings)
    elif any(name in handle for name in ("pair_issame", "pair_fold")):
        raise MfftoolsError(f"{path}: datasets 'pair_issame'/'pair_fold' need 'pair_index'")


def _read_pair_list(handle, embeddings):
    """An images-layout file's own pair list: row indices in range, one label per pair."""
    path, n_rows = embeddings.path, embeddings.n_rows
    index = handle["pair_index"][()]
    if index.ndim != 2 or index.shape[1] != 2 or not np.issubdtype(index.dtype, np.integer):
        raise MfftoolsError(
            f"{path}: dataset 'pair_index' must be [P, 2] integer row indices, found shape "
            f"{index.shape} {index.dtype}"
        )
    outside = (index < 0) | (index >= n_rows)
    if outside.any():
        pair = int(np.flatnonzero(outside.any(axis=1))[0])
        raise MfftoolsError(
            f"{path}: dataset 'pair_index' pair {pair} is {index[pair].tolist()}, outside the "
            f"{n_rows} rows"
        )
    embeddings.pair_index = np.asarray(index, dtype=np.int64)  # no copy of IJB-C's 15.66M pairs
    embeddings.pair_issame = _read_column(handle, "pair_issame", len(index), path).astype(bool)
    if "pair_fold" in handle:
        embeddings.pair_fold = _read_fold(handle, "pair_fold", len(index), path)


def _read_optional_strings(handle, name, length, path):
    if name not in handle:
        return None
    if handle[name].shape != (length,):
        raise MfftoolsError(
            f"{path}: dataset {name!r} has shape {handle[name].shape}, expected ({length},)"
        )
    return handle[name].asstr()[()]


def _read_pairs_labels(handle, embeddings):
    path, n_rows = embeddings.path, embeddings.n_rows
    if n_rows % 2:
        raise MfftoolsError(f"{path}: pairs layout needs an even number of rows, found {n_rows}")
    issame = _read_column(handle, "issame", n_rows // 2, path)
    pair_group = _read_column(handle, "pair_group", n_rows // 2, path)
    _check_group_index(pair_group, len(embeddings.group_names), "pair_group", path)
    embeddings.issame = issame.astype(bool)
    embeddings.pair_group = pair_group.astype(np.int64)
    if "fold" in handle:
        embeddings.fold = _read_fold(handle, "fold", n_rows // 2, path)


def _read_fold(handle, name, length, path):
    fold = _read_column(handle, name, length, path)
    if not np.issubdtype(fold.dtype, np.integer) or (fold < 0).any():
        raise MfftoolsError(
            f"{path}: dataset {name!r} must hold fold indices 0, 1, ..., found {fold.dtype} "
            f"values from {fold.min()}"
        )
    return fold.astype(np.int64)


class EmbeddingsWriter:
    """Stream embedding rows (and their per-row labels) into a new or resumed file.

    Rows go to the partial file (`partial_path`), `complete=false`. Every `append` is flushed and
    then recorded in the root attribute `rows_written`, so a crash loses at most the block being
    written and `resume` continues from the first row not recorded. `finish()` marks the file
    complete and renames it to its real name. The writer holds the output's lock from `create`
    or `resume` until `finish` or `close`.

    Use as a context manager: leaving the block normally finishes the file, an exception leaves
    the partial file (resumable).
    """

    def __init__(self, handle, layout, path, lock):
        self._handle = handle
        self._lock = lock
        self.layout = layout
        self.path = Path(path)
        self.rows_written = int(handle.attrs["rows_written"])
        self.columns = ROW_COLUMNS[layout] + tuple(
            name for name in OPTIONAL_ROW_COLUMNS[layout] if name in handle
        )

    @classmethod
    def create(cls, path, *, layout, dim, group_names, dtype="float32", pairs=None, attrs=None,
               optional_columns=(), pair_list=None):
        """Start a new file for `path` (replacing any partial one). `pairs` = dict(issame=...,
        pair_group=..., optionally fold=...) for the pairs layout; `pair_list` =
        dict(pair_index=..., pair_issame=..., optionally pair_fold=...) for an images-layout
        file that carries its own pairs.

        `attrs` are extra root attributes (model, checkpoint, checkpoint_sha256, flip, source, ...).
        `optional_columns`: per-row columns of OPTIONAL_ROW_COLUMNS the file has (`append` then
        needs them too).
        """
        unknown = set(optional_columns) - set(OPTIONAL_ROW_COLUMNS.get(layout, ()))
        if unknown:
            raise ValueError(f"no optional columns {sorted(unknown)} in the {layout} layout")
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        if (layout == "pairs") != (pairs is not None):
            raise ValueError("`pairs` columns are given exactly for the pairs layout")
        if layout == "pairs" and pair_list is not None:
            raise ValueError("a pair list belongs to the images layout")
        path = Path(path)
        lock = contextlib.ExitStack()
        lock.enter_context(output_lock(path))
        try:
            handle = h5py.File(partial_path(path), "w")
        except BaseException:
            lock.close()
            raise
        handle.attrs["schema"] = SCHEMA
        handle.attrs["layout"] = layout
        handle.attrs["group_names"] = np.array(list(group_names), dtype=h5py.string_dtype())
        handle.attrs["complete"] = False
        handle.attrs["rows_written"] = 0
        handle.attrs["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
        handle.attrs["mfftools_version"] = __version__
        for key, value in (attrs or {}).items():
            handle.attrs[key] = value
        handle.create_dataset(
            "embeddings",
            shape=(0, dim),
            maxshape=(None, dim),
            dtype=np.dtype(dtype),
            chunks=(_CHUNK_ROWS, dim),
        )
        for name in ROW_COLUMNS[layout] + tuple(optional_columns):
            handle.create_dataset(
                name, shape=(0,), maxshape=(None,), dtype=_COLUMN_DTYPES[name], chunks=(8192,)
            )
        writer = cls(handle, layout, path, lock)
        if pairs is not None:
            writer.set_pairs(pairs)
        if pair_list is not None:
            writer.set_pairs(pair_list, pair_list=True)
        handle.flush()
        return writer

    @classmethod
    def resume(cls, path, keep_rows=None):
        """Reopen the partial file of `path`, dropping any rows written after the last recorded
        append (and after the first `keep_rows`, when given). Whether it may be continued (the
        same source, model and options) is `mfftools.resume`'s to decide.
        """
        path = Path(path)
        partial = partial_path(path)
        lock = contextlib.ExitStack()
        lock.enter_context(output_lock(path))
        try:
            handle = h5py.File(partial, "r+")
        except OSError as error:
            lock.close()
            raise MfftoolsError(
                f"{partial}: cannot reopen to resume ({error}); drop --resume to start over"
            ) from None
        try:
            if _str(handle.attrs.get("schema", "")) != SCHEMA:
                raise MfftoolsError(f"{partial}: not an mfftools embeddings file; cannot resume")
            writer = cls(handle, _str(handle.attrs["layout"]), path, lock)
            if keep_rows is not None:
                writer.rows_written = min(writer.rows_written, keep_rows)
                handle.attrs["rows_written"] = writer.rows_written
            for name in ("embeddings",) + writer.columns:
                handle[name].resize(writer.rows_written, axis=0)
        except BaseException:
            handle.close()
            lock.close()
            raise
        logger.info("resuming %s after %d rows", partial, writer.rows_written)
        return writer

    @property
    def attrs(self):
        """The file's root attributes (an h5py AttributeManager: read and set)."""
        return self._handle.attrs

    def set_pairs(self, pairs, pair_list=False):
        """Write (or replace) the per-pair columns: issame, pair_group, optionally fold; or, with
        `pair_list`, an images-layout file's pair_index, pair_issame, optionally pair_fold."""
        required, optional = ((PAIR_LIST_COLUMNS, OPTIONAL_PAIR_LIST_COLUMNS) if pair_list
                              else (PAIR_COLUMNS, OPTIONAL_PAIR_COLUMNS))
        for name in required + optional:
            if name in self._handle:
                del self._handle[name]
            if name in required or pairs.get(name) is not None:
                self._handle.create_dataset(name, data=np.asarray(pairs[name], _COLUMN_DTYPES[name]))

    @property
    def last_source_index(self):
        """Source position of the last written row, or -1 if none."""
        if self.rows_written == 0:
            return -1
        return int(self._handle["source_index"][self.rows_written - 1])

    def append(self, embeddings, **columns):
        """Append a block of rows; `columns` holds this layout's per-row labels, same length.

        `source_index` defaults to consecutive positions after the last written row.
        """
        embeddings = np.asarray(embeddings)
        count = len(embeddings)
        if "source_index" not in columns:
            start = self.last_source_index + 1
            columns["source_index"] = np.arange(start, start + count)
        expected = set(self.columns)
        if set(columns) != expected:
            raise ValueError(f"append needs columns {sorted(expected)}, got {sorted(columns)}")
        first, last = self.rows_written, self.rows_written + count
        for name, values in [("embeddings", embeddings)] + list(columns.items()):
            if len(values) != count:
                raise ValueError(f"column {name!r} has {len(values)} rows, embeddings {count}")
            dataset = self._handle[name]
            dataset.resize(last, axis=0)
            dataset[first:last] = values
        self._handle.flush()
        self.rows_written = last
        self._handle.attrs["rows_written"] = last
        self._handle.flush()

    def finish(self):
        """Mark the file complete, close it and move it to its real name (replacing any file
        there); refused when fewer rows than `n_rows_expected` were written."""
        expected = self._handle.attrs.get("n_rows_expected")
        if expected is not None and int(expected) != self.rows_written:
            self.close()
            raise MfftoolsError(
                f"{partial_path(self.path)}: {self.rows_written} rows written of {int(expected)} "
                "expected; not marked complete (resume it with --resume)"
            )
        self._handle.flush()
        self._handle.attrs["complete"] = True
        self._handle.close()
        try:
            publish(partial_path(self.path), self.path)
        finally:
            self._lock.close()

    def close(self):
        """Close the partial file as it is (resumable) and release the lock."""
        if self._handle.id.valid:
            self._handle.close()
        self._lock.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, traceback):
        if exc_type is None:
            self.finish()
        else:
            self.close()
