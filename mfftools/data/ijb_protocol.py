"""The IJB-B / IJB-C protocol files (PROTOCOLS 1.7): template pairs, 1:N lists, subject metadata.

    meta/<set>_template_pair_label.txt     <template 1> <template 2> <label 1|0>   (15.66M lines)
    meta/<set>_1N_gallery_G1.csv, _G2.csv  header row; TEMPLATE_ID, SUBJECT_ID, ... one row per
    meta/<set>_1N_probe_mixed.csv          image (IJB-B: _S1, _S2)
    protocols/<set>_metadata.csv           header row; SUBJECT_ID, ..., SKINTONE, GENDER, ...

The pair list is parsed a chunk of lines at a time (numpy's text parser, each line checked to
hold three integers, the label 0 or 1): a bad line is an error naming it.
"""
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mfftools.data.table import Problems, Table
from mfftools.errors import MfftoolsError

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 24
_LISTED = 5


@dataclass
class TemplatePairs:
    """The template pairs of a list (`n_listed` in it), as rows of the known templates: `left`,
    `right` (int32), `genuine` (bool); pairs naming a template without images were skipped when
    allowed (`n_skipped`, `missing`: those template ids, sorted)."""

    left: np.ndarray
    right: np.ndarray
    genuine: np.ndarray
    n_listed: int
    n_skipped: int = 0
    missing: list = field(default_factory=list)

    def __len__(self):
        return len(self.genuine)


def iter_pair_chunks(path, chunk_bytes=CHUNK_BYTES):
    """Yield (line numbers, template 1, template 2, label) arrays, a chunk of lines at a time;
    blank lines are skipped, any other line must be `<int> <int> <0|1>`."""
    path = Path(path)
    try:
        handle = path.open("rb")
    except OSError as error:
        raise MfftoolsError(f"{path}: cannot read ({error.strerror})") from error
    with handle:
        line_number, rest = 1, b""
        while True:
            data = handle.read(chunk_bytes)
            block = rest + data
            if not data:
                if block.strip():
                    yield _parse_block(block + b"\n", path, line_number)
                return
            cut = block.rfind(b"\n") + 1
            block, rest = block[:cut], block[cut:]
            if block:
                yield _parse_block(block, path, line_number)
                line_number += block.count(b"\n")


def _parse_block(block, path, first_line):
    """Whole lines -> (line numbers, t1, t2, label) arrays; an error naming the first bad
    line."""
    if first_line == 1 and block.startswith(b"\xef\xbb\xbf"):
        block = b"   " + block[3:]  # a byte-order mark: spaces keep the line's length
    data = np.frombuffer(block, dtype=np.uint8)
    token = data > 32  # not white space
    starts = np.empty(len(data), dtype=bool)
    starts[0] = token[0]
    np.greater(token[1:], token[:-1], out=starts[1:])
    newlines = np.flatnonzero(data == 10)
    line_starts = np.concatenate([[0], newlines[:-1] + 1])
    tokens = np.add.reduceat(starts, line_starts, dtype=np.int64)
    bad = np.flatnonzero((tokens != 3) & (tokens != 0))
    if len(bad):
        _raise_line(path, first_line + int(bad[0]), block, line_starts[bad[0]], newlines[bad[0]],
                    f"{int(tokens[bad[0]])} fields")
    if not tokens.any():
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, empty, empty.astype(bool)
    try:
        values = np.fromstring(block, dtype=np.int64, sep=" ")
    except ValueError:
        values = None
    if values is None or len(values) != 3 * np.count_nonzero(tokens):
        for index in np.flatnonzero(tokens):
            text = block[line_starts[index] : newlines[index]].split()
            if not all(_is_int(field) for field in text):
                _raise_line(path, first_line + int(index), block, line_starts[index],
                            newlines[index], "not three integers")
        raise MfftoolsError(f"{path}, lines {first_line}-{first_line + len(tokens) - 1}: "
                            "cannot be read as integers")
    values = values.reshape(-1, 3)
    label = values[:, 2]
    wrong = np.flatnonzero((label != 0) & (label != 1))
    if len(wrong):
        index = np.flatnonzero(tokens)[wrong[0]]
        _raise_line(path, first_line + int(index), block, line_starts[index], newlines[index],
                    f"label {int(label[wrong[0]])}, not 1 (genuine) or 0 (impostor)")
    return first_line + np.flatnonzero(tokens), values[:, 0], values[:, 1], label.astype(bool)


def _is_int(text):
    try:
        int(text)
    except ValueError:
        return False
    return True


def _raise_line(path, line, block, start, stop, problem):
    text = block[start:stop].decode("utf-8", "replace").strip()
    raise MfftoolsError(f"{path}, line {line}: {problem}; expected `<template 1> <template 2> "
                        f"<label 1|0>`, got {text[:80]!r}")


def read_template_pairs(path, template_ids, skip_missing=False, chunk_bytes=CHUNK_BYTES):
    """The pair list as rows of `template_ids` (sorted int64 ids of the templates with images).

    A pair naming a template without images is an error naming it, or with `skip_missing` it
    is left out and counted.
    """
    template_ids = np.asarray(template_ids, dtype=np.int64)
    lefts, rights, labels = [], [], []
    n_listed = n_skipped = 0
    missing = set()
    for lines, first, second, label in iter_pair_chunks(path, chunk_bytes):
        n_listed += len(label)
        rows = [_rows_of(template_ids, ids) for ids in (first, second)]
        known = (rows[0] >= 0) & (rows[1] >= 0)
        if not known.all():
            unknown = np.concatenate([first[rows[0] < 0], second[rows[1] < 0]])
            if not skip_missing:
                bad = int(np.flatnonzero(~known)[0])
                template = first[bad] if rows[0][bad] < 0 else second[bad]
                raise MfftoolsError(
                    f"{path}, line {int(lines[bad])}: template {int(template)} has no images in "
                    "the embeddings file (not in the tid/mid list, or every image of it skipped "
                    "at extraction); give --skip-missing to leave such pairs out (they are "
                    "counted)")
            missing.update(int(value) for value in unknown)
            n_skipped += int(np.count_nonzero(~known))
        lefts.append(rows[0][known].astype(np.int32))
        rights.append(rows[1][known].astype(np.int32))
        labels.append(label[known])
    if not n_listed:
        raise MfftoolsError(f"{path}: no template pairs")
    if n_skipped:
        logger.warning("%s: %d pairs name %d templates without images; left out", path,
                       n_skipped, len(missing))
    return TemplatePairs(np.concatenate(lefts), np.concatenate(rights), np.concatenate(labels),
                         n_listed, n_skipped, sorted(missing))


def _rows_of(sorted_ids, ids):
    """Positions of `ids` in `sorted_ids`, -1 where absent."""
    position = np.searchsorted(sorted_ids, ids)
    position = np.minimum(position, len(sorted_ids) - 1)
    return np.where(sorted_ids[position] == ids, position, -1)


@dataclass
class TemplateList:
    """A 1:N gallery or probe list: its templates (in ascending id order, as insightface takes
    them) and each one's subject."""

    path: Path
    templates: np.ndarray
    subjects: np.ndarray

    @property
    def name(self):
        """G1, G2, S1, probe_mixed, ...: the file name after `_1N_`, else its stem."""
        stem = self.path.stem
        return stem.split("_1N_", 1)[1].replace("gallery_", "") if "_1N_" in stem else stem


def read_template_list(path):
    """A 1:N CSV: the TEMPLATE_ID and SUBJECT_ID columns (by name, else the first two), one row
    per image; a template listed with two subjects is an error."""
    table = Table(path)
    if not table.records:
        raise MfftoolsError(f"{path}: no rows after the header")
    upper = [name.upper() for name in table.header]
    at = [upper.index(name) if name in upper else default
          for name, default in (("TEMPLATE_ID", 0), ("SUBJECT_ID", 1))]
    if len(table.header) < 2:
        raise MfftoolsError(f"{path}, line 1: expected TEMPLATE_ID and SUBJECT_ID columns")
    problems = Problems()
    subject_of = {}
    for line, values in table.records:
        try:
            template, subject = (int(values[position]) for position in at)
        except (ValueError, IndexError):
            problems.add(f"{path}, line {line}: TEMPLATE_ID and SUBJECT_ID must be integers")
            continue
        if subject_of.setdefault(template, (subject, line))[0] != subject:
            first_subject, first_line = subject_of[template]
            problems.add(f"{path}, line {line}: template {template} belongs to subject "
                         f"{subject} here but to {first_subject} on line {first_line}")
    problems.raise_any()
    templates = np.array(sorted(subject_of), dtype=np.int64)
    subjects = np.array([subject_of[int(t)][0] for t in templates], dtype=np.int64)
    return TemplateList(Path(path), templates, subjects)


SKIN_TONES = range(1, 7)
GENDERS = {"1": "male", "0": "female"}


@dataclass
class SubjectGroups:
    """Each subject's group (`group_of`: subject -> group name), the group names in order, and
    the subjects whose annotations disagree (`inconsistent`: the most common value was kept)."""

    group_of: dict
    group_names: list
    inconsistent: int


def read_metadata(path, group_by=("skintone", "gender")):
    """Subject groups from IJB-C's metadata CSV (one row per annotated face): the columns named
    by `group_by` (SKINTONE 1-6, GENDER 1 male / 0 female, or any other column), group names
    such as `skintone3-female`. A subject's value is the most common over its faces."""
    table = Table(path)
    upper = [name.upper() for name in table.header]
    if "SUBJECT_ID" not in upper:
        raise MfftoolsError(f"{path}, line 1: no SUBJECT_ID column; the columns are "
                            f"{', '.join(table.header)}")
    positions = []
    for column in group_by:
        if column.upper() not in upper:
            raise MfftoolsError(f"{path}, line 1: no column {column!r} for --group-by; the "
                                f"columns are {', '.join(table.header)}")
        positions.append(upper.index(column.upper()))
    subject_at = upper.index("SUBJECT_ID")
    problems = Problems()
    seen = {}
    for line, values in table.records:
        if len(values) <= max(positions + [subject_at]):
            problems.add(f"{path}, line {line}: {len(values)} fields, the header has "
                         f"{len(table.header)}")
            continue
        try:
            subject = int(values[subject_at])
        except ValueError:
            problems.add(f"{path}, line {line}: SUBJECT_ID {values[subject_at]!r} is not an "
                         "integer")
            continue
        labels = []
        for column, position in zip(group_by, positions):
            value = values[position]
            label = _group_label(column, value)
            if label is None:
                problems.add(f"{table.where(line, position)}: {value!r} is not a "
                             f"{column.upper()} value")
                break
            labels.append(label)
        else:
            seen.setdefault(subject, Counter())["-".join(labels)] += 1
    problems.raise_any()
    if not seen:
        raise MfftoolsError(f"{path}: no subjects")
    group_of, inconsistent = {}, 0
    for subject, counts in seen.items():
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        group_of[subject] = ranked[0][0]
        inconsistent += len(ranked) > 1
    if inconsistent:
        logger.warning("%s: %d subjects have faces annotated differently; each keeps its most "
                       "common annotation", path, inconsistent)
    return SubjectGroups(group_of, sorted(set(group_of.values())), inconsistent)


def _group_label(column, value):
    """`skintone3`, `female`, ... for a metadata value; None when it is not a valid one."""
    name = column.lower()
    if name == "skintone":
        return f"skintone{value}" if value in {str(tone) for tone in SKIN_TONES} else None
    if name == "gender":
        return GENDERS.get(value)
    return f"{name}{value}" if value else None
