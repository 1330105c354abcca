"""Five facial landmarks per image, and the images they align (PROTOCOLS 1.4, alignment).

A landmark file has one image per line, fields separated by white space:

    <image path> x1 y1 x2 y2 x3 y3 x4 y4 x5 y5 [more numbers ... detector score]

(IJB's `*_name_5pts_score.txt`): the ten coordinates in the image's pixels, and optionally more
numbers, the last of which is the face detector's score. RFW's `<Race>_lmk.txt` puts the
person's label between the path and the coordinates (`<path> <label> x1 y1 ... x5 y5`); a file
named `*_lmk.txt` is read that way. A manifest may carry the columns x1, y1, ..., x5, y5 (and
`score`) instead.

Paths are matched to the source's image names by their suffix, component by component:
`test/data/African/m.0a/m.0a_0001.jpg` matches `data/African/m.0a/m.0a_0001.jpg`, and `1.jpg`
matches `loose_crop/1.jpg`. A line matching two images, or two lines matching one image, is an
error; lines matching no image are counted and logged.
"""
import logging
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

import numpy as np

from mfftools.data.alignment import N_POINTS, TEMPLATE_NAME, check_landmarks
from mfftools.data.images import EncodedImages
from mfftools.data.table import Problems, read_text
from mfftools.errors import MfftoolsError

logger = logging.getLogger(__name__)

COORDINATE_COLUMNS = tuple(f"{axis}{point}" for point in range(1, N_POINTS + 1)
                           for axis in ("x", "y"))
SCORE_COLUMN = "score"
RFW_SUFFIX = "_lmk.txt"


@dataclass
class LandmarkFile:
    """The lines of a landmark file: names as written, points float64 [M, 5, 2], detector
    scores float32 [M] (NaN where a line has none), and each line's number."""

    path: Path
    names: list
    points: np.ndarray
    scores: np.ndarray
    lines: np.ndarray

    def __len__(self):
        return len(self.names)


def read_landmark_file(path):
    """Read and check a whole landmark file (see the module's docstring)."""
    path = Path(path)
    rfw = path.name.endswith(RFW_SUFFIX)
    coordinates_at = 2 if rfw else 1
    problems = Problems()
    names, values, scores, lines = [], [], [], []
    seen = {}
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}, line {number}"
        expected = "a path, a label and 10 coordinates" if rfw else "a path and 10 coordinates"
        if len(fields) < coordinates_at + 2 * N_POINTS or (rfw and len(fields) != 12):
            problems.add(f"{where}: {len(fields)} fields; expected {expected}")
            continue
        try:
            numbers = [float(field) for field in fields[coordinates_at:]]
        except ValueError:
            bad = next(field for field in fields[coordinates_at:] if not _is_number(field))
            problems.add(f"{where}: {bad!r} is not a number")
            continue
        if not np.isfinite(numbers).all():
            problems.add(f"{where}: the numbers must be finite")
            continue
        if fields[0] in seen:
            problems.add(f"{where}: {fields[0]} is listed again (first on line {seen[fields[0]]})")
            continue
        seen[fields[0]] = number
        names.append(fields[0])
        values.append(numbers[: 2 * N_POINTS])
        has_score = not rfw and len(numbers) > 2 * N_POINTS
        scores.append(numbers[-1] if has_score else np.nan)
        lines.append(number)
    if not names and not problems.found:
        problems.add(f"{path}: no landmark lines")
    problems.raise_any()
    return LandmarkFile(
        path=path,
        names=names,
        points=np.asarray(values, dtype=np.float64).reshape(-1, N_POINTS, 2),
        scores=np.asarray(scores, dtype=np.float32),
        lines=np.asarray(lines, dtype=np.int64),
    )


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parts(name):
    """A path's components, from a name written with / or \\ and maybe a leading ./ or /."""
    return PurePosixPath(str(name).replace("\\", "/")).parts[-64:]


def _suffix_of(short, long):
    return len(short) <= len(long) and long[len(long) - len(short):] == short


def match_to_images(landmarks, image_names):
    """For each image name, the index of its landmark line, or -1 when no line names it."""
    by_file_name = {}
    for row, name in enumerate(image_names):
        parts = tuple(part for part in _parts(name) if part not in ("/", "."))
        by_file_name.setdefault(parts[-1] if parts else "", []).append((row, parts))
    found = np.full(len(image_names), -1, dtype=np.int64)
    unmatched = 0
    problems = Problems()
    for index, name in enumerate(landmarks.names):
        parts = tuple(part for part in _parts(name) if part not in ("/", "."))
        candidates = [
            row for row, image_parts in by_file_name.get(parts[-1] if parts else "", ())
            if _suffix_of(parts, image_parts) or _suffix_of(image_parts, parts)
        ]
        where = f"{landmarks.path}, line {landmarks.lines[index]}"
        if not candidates:
            unmatched += 1
        elif len(candidates) > 1:
            problems.add(f"{where}: {name} matches {len(candidates)} images "
                         f"({', '.join(image_names[row] for row in candidates[:3])}); write a "
                         "longer path to tell them apart")
        elif found[candidates[0]] >= 0:
            first = landmarks.lines[found[candidates[0]]]
            problems.add(f"{where}: {name} names the image {image_names[candidates[0]]} "
                         f"again (first on line {first})")
        else:
            found[candidates[0]] = index
    problems.raise_any()
    if unmatched:
        logger.info("%s: %d lines name no image of the source", landmarks.path, unmatched)
    return found


def manifest_landmarks(table):
    """Landmarks from a manifest's x1, y1, ..., x5, y5 columns (and `score`), or None when it
    has none: (points float64 [N, 5, 2], NaN where a row's cells are empty; scores float32 [N]
    or None)."""
    present = [column for column in COORDINATE_COLUMNS if column in table.header]
    if not present:
        return None
    if len(present) != len(COORDINATE_COLUMNS):
        missing = [column for column in COORDINATE_COLUMNS if column not in table.header]
        raise MfftoolsError(f"{table.path}, line 1: landmark columns {', '.join(missing)} are "
                            "missing (x1, y1, ..., x5, y5 all, or none)")
    positions = [table.header.index(column) for column in COORDINATE_COLUMNS]
    score_at = table.header.index(SCORE_COLUMN) if SCORE_COLUMN in table.header else None
    problems = Problems()
    points = np.full((len(table.records), 2 * N_POINTS), np.nan)
    scores = np.full(len(table.records), np.nan, dtype=np.float32)
    for row, (line, values) in enumerate(table.records):
        cells = [values[position] if position < len(values) else "" for position in positions]
        if not any(cells):
            continue
        for position, cell in zip(positions, cells):
            if not _is_number(cell) or not np.isfinite(float(cell)):
                problems.add(f"{table.where(line, position)}: {cell!r} is not a finite number")
        if score_at is not None and score_at < len(values) and values[score_at]:
            if not _is_number(values[score_at]):
                problems.add(f"{table.where(line, score_at)}: {values[score_at]!r} is not a "
                             "number")
            else:
                scores[row] = float(values[score_at])
        if not problems.found:
            points[row] = [float(cell) for cell in cells]
    problems.raise_any()
    return points.reshape(-1, N_POINTS, 2), (scores if score_at is not None else None)


class AlignedImages(EncodedImages):
    """Images decoded and aligned by their landmarks (float64 [N, 5, 2]; NaN rows: none given,
    and such an image is refused by name when decoded)."""

    def __init__(self, images, landmarks):
        self.images = images
        self.landmarks = landmarks

    def __len__(self):
        return len(self.images)

    def encoded(self, index):
        return self.images.encoded(index)

    def image_name(self, index):
        return self.images.image_name(index)

    def describe(self, index):
        return self.images.describe(index)

    def decode(self, index, preprocessing):
        name = self.describe(index)
        if np.isnan(self.landmarks[index]).any():
            raise MfftoolsError(f"{name}: no landmarks, so it cannot be aligned")
        points = check_landmarks(self.landmarks[index], name)
        return preprocessing.decode(self.encoded(index), name, landmarks=points)


def missing_landmarks(landmarks):
    """Rows whose landmarks are missing (NaN)."""
    return np.flatnonzero(np.isnan(landmarks.reshape(len(landmarks), -1)).any(axis=1))


def refuse_missing(landmarks, names, where):
    """An error naming the images without landmarks (the first few), if any."""
    missing = missing_landmarks(landmarks)
    if len(missing):
        listed = ", ".join(names[row] for row in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise MfftoolsError(
            f"{where}: {len(missing)} images have no landmarks, so they cannot be aligned: "
            f"{listed}{more}; add them, or give --skip-bad-images to leave them out (counted "
            "as skipped)"
        )


def landmarks_of_images(landmarks, image_names):
    """(points float64 [N, 5, 2], scores float32 [N]) of the named images from a LandmarkFile;
    NaN for an image no line names. A name may repeat (an image in several pairs)."""
    distinct, inverse = np.unique(np.asarray(image_names, dtype=str), return_inverse=True)
    index = match_to_images(landmarks, [str(name) for name in distinct])[inverse.reshape(-1)]
    found = index >= 0
    points = np.full((len(image_names), N_POINTS, 2), np.nan)
    scores = np.full(len(image_names), np.nan, dtype=np.float32)
    points[found] = landmarks.points[index[found]]
    scores[found] = landmarks.scores[index[found]]
    return points, scores


def align_source(source, points, scores=None, allow_missing=False):
    """An ExtractionSource whose images are aligned by `points` (float64 [N, 5, 2], NaN where an
    image has none), with its detector scores as the `detector_score` column (images layout,
    when every image with landmarks has one). Images without landmarks are refused by name,
    unless `allow_missing` (then extraction skips them as bad images)."""
    names = [source.images.image_name(row) for row in range(len(source))]
    if not allow_missing:
        refuse_missing(points, names, source.description)
    columns = dict(source.columns or {})
    if scores is not None and source.layout == "images":
        usable = ~np.isnan(points).reshape(len(points), -1).any(axis=1)
        if np.isnan(scores[usable]).any():
            logger.info("%s: not every image has a detector score; none is recorded",
                        source.description)
        else:
            columns["detector_score"] = np.where(usable, scores, 0.0).astype(np.float32)
    attrs = dict(source.attrs or {}, aligned=True, alignment_template=TEMPLATE_NAME)
    return replace(source, images=AlignedImages(source.images, points), columns=columns or None,
                   attrs=attrs)


def align_by_file(source, path, allow_missing=False):
    """`source` aligned by the landmark file `path` (see `align_source`)."""
    landmarks = read_landmark_file(path)
    names = [source.images.image_name(row) for row in range(len(source))]
    points, scores = landmarks_of_images(landmarks, names)
    return align_source(source, points, scores, allow_missing=allow_missing)
