"""Whether an interrupted extraction may be continued, and from which row.

An extraction records in its file everything that defines its rows, labels and embeddings: the
source and a digest of the rows it reads (`rows_sha256`: image names, identities, groups, pairs,
folds), the source options that shaped them (`--columns`, `--group-by`, `--groups`, ...), the
model's weights, the preprocessing, flip and amp. `--resume` continues a file only when all of
them agree, and otherwise names what differs and what to do, so rows of two labellings never
share a file. Which images are skipped may change between runs: the rows already written are
kept up to the first one the new run would not write at that position.
"""
import hashlib
import logging
import os

import h5py
import numpy as np

from mfftools.embeddings import EmbeddingsWriter, partial_path, plain
from mfftools.errors import MfftoolsError
from mfftools.files import publish

logger = logging.getLogger(__name__)

# Attributes that may differ between the runs of one extraction: the checkpoint may have moved
# (its sha256 is compared), and what is skipped is settled below.
SKIP_ATTRS = ("skip_bad_images", "n_skipped_images", "skipped_images", "n_dropped_pairs",
              "n_rows_expected")
_NOT_COMPARED = ("checkpoint", "input_given_scale") + SKIP_ATTRS
# How a message names an attribute: the option that sets it.
_NAMES = {
    "source": "SOURCE",
    "rows_sha256": "the source's rows (its images, identities, groups or pairs changed)",
    "group_by": "--group-by",
    "columns": "--columns",
    "groups": "--groups",
    "image_root": "--image-root",
    "attributes": "--attributes",
    "attributes_sha256": "the --attributes file's content",
    "model": "the model (--model)",
    "model_format": "the model's form",
    "checkpoint_format": "the checkpoint's format",
    "checkpoint_sha256": "the model's weights (sha256)",
    "model_output": "--output",
    "input_size": "--input-size",
    "input_mean": "--input-mean",
    "input_std": "--input-std",
    "channel_order": "the channel order (--bgr)",
    "flip": "flip (--no-flip)",
    "amp": "amp (--amp)",
}
_WHAT_TO_DO = "drop --resume to start over, or rerun with the options the file was started with"


def rows_sha256(source):
    """Digest of what defines a source's rows: layout, group names, and per image its name,
    identity and group, or per pair its issame, group and fold."""
    digest = hashlib.sha256()

    def add(label, values):
        digest.update(f"{label}:{len(values)}\0".encode())
        if isinstance(values, np.ndarray):
            digest.update(np.ascontiguousarray(values).tobytes())
        else:
            digest.update("\0".join(map(str, values)).encode())

    add("layout", [source.layout])
    add("group_names", list(source.group_names))
    add("names", [source.images.image_name(row) for row in range(len(source))])
    if source.layout == "images":
        add("identity", source.identity_names if source.identity_names is not None
            else source.identity.astype(np.int64))
        add("group", source.group.astype(np.int64))
    else:
        add("issame", source.issame.astype(bool))
        add("pair_group", source.pair_group.astype(np.int64))
        if source.fold is not None:
            add("fold", source.fold.astype(np.int64))
    return digest.hexdigest()


def root_attrs(path):
    """The root attributes of an HDF5 file; an error naming it when it cannot be read."""
    try:
        with h5py.File(path, "r") as handle:
            return dict(handle.attrs)
    except OSError as error:
        raise MfftoolsError(
            f"{path}: damaged or not an HDF5 file; cannot resume ({error}); drop --resume to "
            "start over"
        ) from None


def _same(found, expected):
    if found is None:
        return False
    if isinstance(found, np.ndarray) or isinstance(expected, np.ndarray):
        return np.array_equal(np.asarray(found), np.asarray(expected))
    return plain(found) == plain(expected)


def _shown(value):
    """An attribute's value in a message; an option not given (empty text) as `none`."""
    text = plain(value)
    return "none" if text in ("''", '""') else text


def check_same(found, expected, path, complete=False):
    """An error naming every recorded attribute of `found` (the file's) that differs from
    `expected` (this run's), and what to do; nothing when they agree."""
    compared = [key for key in expected if key not in _NOT_COMPARED]
    differing = [key for key in compared if not _same(found.get(key), expected[key])]
    if not differing:
        return
    if "rows_sha256" in differing and len(differing) > 1:
        differing.remove("rows_sha256")  # the options named explain the rows
    described = []
    for key in differing:
        name = _NAMES.get(key, f"attribute {key!r}")
        if key == "rows_sha256":
            described.append(name)
            continue
        was = "missing" if found.get(key) is None else _shown(found[key])
        described.append(f"{name} is {was} in the file, {_shown(expected[key])} now")
    if complete:
        state, what_to_do = "already complete", "drop --resume to replace it"
    else:
        state, what_to_do = "cannot resume", _WHAT_TO_DO
    raise MfftoolsError(
        f"{path}: {state}, with other settings: {'; '.join(described)}; {what_to_do}"
    )


def open_to_resume(out_path, attrs, rows):
    """For --resume: (a writer positioned at the first row to compute, or None for a new file;
    whether the file is already complete).

    `attrs` are this run's attributes and `rows` the source rows it extracts (after skipping).
    A partial file (or, as earlier versions left it, an incomplete file under the real name)
    is continued when its settings agree; a partial file marked complete (stopped between its
    last write and its rename) is moved into place.
    """
    partial = partial_path(out_path)
    if not partial.exists() and out_path.exists():
        existing = root_attrs(out_path)
        if bool(existing.get("complete", False)):
            check_same(existing, attrs, out_path, complete=True)
            logger.debug("%s is already complete; nothing to resume", out_path)
            return None, True
        os.replace(out_path, partial)  # an incomplete file left by an earlier version
    if not partial.exists():
        logger.info("%s does not exist yet; starting from the first image", partial)
        return None, False
    existing = root_attrs(partial)
    check_same(existing, attrs, partial)
    if bool(existing.get("complete", False)):
        publish(partial, out_path)
        return None, True
    _check_skipping(existing, attrs, partial)
    written = _written_rows(partial, existing)
    keep = _common_prefix(written, rows)
    if keep < len(written):
        logger.info("keeping %d of the %d rows written: the next one is now skipped, or no "
                    "longer skipped", keep, len(written))
    return EmbeddingsWriter.resume(out_path, keep_rows=keep), False


def _written_rows(partial, attrs):
    """The source rows of the rows a partial file records as written."""
    try:
        with h5py.File(partial, "r") as handle:
            return handle["source_index"][: int(attrs.get("rows_written", 0))]
    except (OSError, KeyError) as error:
        raise MfftoolsError(
            f"{partial}: damaged; cannot resume ({error}); drop --resume to start over"
        ) from None


def _common_prefix(written, rows):
    """How many of the written rows are the first rows this run extracts."""
    n = min(len(written), len(rows))
    differ = np.flatnonzero(np.asarray(written[:n]) != np.asarray(rows[:n]))
    return int(differ[0]) if len(differ) else n


def _check_skipping(found, expected, path):
    """A file that left images out is continued only by a run that leaves them out too."""
    skipped = int(found.get("n_skipped_images", 0))
    if skipped and not expected.get("skip_bad_images"):
        raise MfftoolsError(
            f"{path}: cannot resume: the file was started with --skip-bad-images and left out "
            f"{skipped} images; add --skip-bad-images, or drop --resume to start over"
        )


def record_skipping(writer, attrs, pairs=None, pair_list=None):
    """Bring a resumed file's record of skipped images (and its pairs or pair list, which lose
    the dropped ones) up to this run's."""
    for key in SKIP_ATTRS:
        if key in attrs:
            writer.attrs[key] = attrs[key]
        elif key in writer.attrs:
            del writer.attrs[key]
    if pairs is not None:
        writer.set_pairs(pairs)
    if pair_list is not None:
        writer.set_pairs(pair_list, pair_list=True)
