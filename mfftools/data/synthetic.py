"""Synthetic look-alikes of RFW, BUPT and BFW, written in the real formats (`mfftools synth`).

    OUT_DIR/ValInstData.zip            RFW instance-protocol zip (PROTOCOLS 1.2)
    OUT_DIR/rfw_bin/<Group>_test.bin   insightface pair files, 10 balanced folds (PROTOCOLS 1.3)
    OUT_DIR/TrainingData.zip           training zip with data/index.txt (PROTOCOLS 1.1)
    OUT_DIR/faces/<Ethnicity>-<Gender>/<identity>/<image>   a folder tree (PROTOCOLS 1.5)
    OUT_DIR/faces.csv                  a manifest of those images, with ethnicity and gender
    OUT_DIR/bfw_pairs.csv              a BFW-style pair table of those images, with 5 folds
    OUT_DIR/RFW/test/                  RFW as shipped: loose crops, landmark and pair lists
    OUT_DIR/IJBC/                      an IJB-C look-alike: loose crops, landmarks, templates,
                                       1:1 and 1:N protocol files, subject metadata
                                       (`mfftools.data.synthetic_shipped`)

Faces come from `mfftools.data.faces`; everything is a function of the seed. The pair files use
the instance identities (new images of them), the training zip its own, disjoint identities.
The instance zip carries RFW's two quirks once each, so readers meet them: a person id listed in
two groups (African and Asian), and a listed person without images (in the last group).
The folder tree has identities of its own in eight subgroups (four ethnicities by two genders);
its first image of each identity is a PNG, the others JPEGs, so both decoders are met.
"""

import contextlib
import logging
import pickle
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mfftools.data.faces import (
    GENDER_SHIFTS,
    GROUP_STYLES,
    render_faces,
    sample_appearances,
    sample_variations,
    take,
    with_gender,
)
from mfftools.data.images import encode_image
from mfftools.data.pair_bin import BIN_SUFFIX
from mfftools.data.synthetic_shipped import write_shipped
from mfftools.data.synthetic_sizes import DEFAULTS
from mfftools.data.training_zip import IMAGE_MEMBER, INDEX_MEMBER
from mfftools.data.table import write_table
from mfftools.errors import MfftoolsError
from mfftools.files import atomic_output, write_bytes

logger = logging.getLogger(__name__)

INSTANCE_ZIP = "ValInstData.zip"
BIN_FOLDER = "rfw_bin"
TRAINING_ZIP = "TrainingData.zip"
FACES_FOLDER = "faces"
FACES_MANIFEST = "faces.csv"
BFW_PAIRS = "bfw_pairs.csv"
N_FOLDS = 10
BFW_FOLDS = 5
# BFW's pair table: fold, the two images, label, identities, subgroups (a), genders, ethnicities.
BFW_COLUMNS = ("fold", "p1", "p2", "label", "id1", "id2", "a1", "a2", "g1", "g2", "e1", "e2")

# Independent random streams per part, so changing one size leaves the other parts unchanged.
_INSTANCE, _PAIRS, _TRAINING, _FACES = 1, 2, 3, 4


@dataclass
class SynthSummary:
    """What `synthesize` wrote, with the ground truth the readers must give back."""

    instance_zip: Path
    bin_folder: Path
    training_zip: Path
    group_names: list
    instance_images: dict = field(default_factory=dict)
    instance_identities: dict = field(default_factory=dict)
    people_in_two_groups: int = 0
    people_without_images: list = field(default_factory=list)
    pairs: dict = field(default_factory=dict)
    training_images: int = 0
    training_identities: int = 0
    faces_folder: Path = None
    faces_manifest: Path = None
    bfw_pairs: Path = None
    faces_group_names: list = field(default_factory=list)
    faces_images: dict = field(default_factory=dict)
    faces_identities: dict = field(default_factory=dict)
    faces_pairs: dict = field(default_factory=dict)
    shipped: object = None  # a synthetic_shipped.ShippedSummary
    seconds: float = 0.0


def synthesize(
    out_dir,
    *,
    identities_per_group=DEFAULTS["identities_per_group"],
    images_per_identity=DEFAULTS["images_per_identity"],
    max_images_per_identity=DEFAULTS["max_images_per_identity"],
    pairs_per_group=DEFAULTS["pairs_per_group"],
    train_identities_per_group=DEFAULTS["train_identities_per_group"],
    train_images_per_identity=DEFAULTS["train_images_per_identity"],
    faces_identities_per_group=DEFAULTS["faces_identities_per_group"],
    faces_images_per_identity=DEFAULTS["faces_images_per_identity"],
    faces_pairs_per_group=DEFAULTS["faces_pairs_per_group"],
    rfw_identities_per_group=DEFAULTS["rfw_identities_per_group"],
    rfw_images_per_identity=DEFAULTS["rfw_images_per_identity"],
    rfw_pairs_per_group=DEFAULTS["rfw_pairs_per_group"],
    ijbc_subjects=DEFAULTS["ijbc_subjects"],
    ijbc_templates_per_subject=DEFAULTS["ijbc_templates_per_subject"],
    seed=0,
    jpeg_quality=95,
    batch_size=32,
    progress=False,
):
    """Write the synthetic data sets into `out_dir` and return a SynthSummary.

    Images per instance identity follow a geometric law with mean `images_per_identity`, cut at
    `max_images_per_identity` (many single-image identities, as in RFW). The folder tree has
    `faces_identities_per_group` identities of `faces_images_per_identity` images in each of
    its eight subgroups, and the pair table `faces_pairs_per_group` pairs per subgroup.
    """
    _check_sizes(
        identities_per_group,
        images_per_identity,
        max_images_per_identity,
        pairs_per_group,
        train_identities_per_group,
        train_images_per_identity,
    )
    _check_faces_sizes(faces_identities_per_group, faces_images_per_identity,
                       faces_pairs_per_group)
    started = time.perf_counter()
    out_dir = Path(out_dir)
    (out_dir / BIN_FOLDER).mkdir(parents=True, exist_ok=True)
    group_names = sorted(GROUP_STYLES)
    summary = SynthSummary(
        out_dir / INSTANCE_ZIP, out_dir / BIN_FOLDER, out_dir / TRAINING_ZIP, group_names
    )
    painter = _Painter(jpeg_quality, batch_size, progress)

    try:
        with _atomic_zip(summary.instance_zip) as archive:
            for group_index, group in enumerate(group_names):
                rng = np.random.default_rng([seed, _INSTANCE, group_index])
                appearance = sample_appearances(rng, identities_per_group, GROUP_STYLES[group])
                counts = _image_counts(
                    rng, identities_per_group, images_per_identity, max_images_per_identity
                )
                _write_instance_group(
                    archive, rng, group_index, group, appearance, counts, painter, summary
                )
                pairs_rng = np.random.default_rng([seed, _PAIRS, group_index])
                bin_path = summary.bin_folder / f"{group}{BIN_SUFFIX}"
                _write_pair_bin(
                    bin_path, pairs_rng, appearance, GROUP_STYLES[group], pairs_per_group, painter
                )
                summary.pairs[group] = pairs_per_group

        _write_training_zip(
            summary, seed, train_identities_per_group, train_images_per_identity, painter
        )
        _write_faces(
            out_dir, summary, seed, faces_identities_per_group, faces_images_per_identity,
            faces_pairs_per_group, painter,
        )
        summary.shipped = write_shipped(
            out_dir, seed, rfw_identities_per_group, rfw_images_per_identity,
            rfw_pairs_per_group, ijbc_subjects, ijbc_templates_per_subject, jpeg_quality,
        )
    finally:
        painter.close()
    summary.seconds = time.perf_counter() - started
    logger.info("synthetic data written to %s in %.1f s", out_dir, summary.seconds)
    return summary


def _check_sizes(identities, mean_images, max_images, pairs, train_identities, train_images):
    if identities < 2 or train_identities < 2:
        raise MfftoolsError("need at least 2 identities per group")
    if mean_images < 1 or max_images < 1 or train_images < 1:
        raise MfftoolsError("images per identity must be at least 1")
    if pairs <= 0 or pairs % (2 * N_FOLDS):
        raise MfftoolsError(
            f"pairs per group must be a positive multiple of {2 * N_FOLDS}"
            f" (10 balanced folds), got {pairs}"
        )


def _check_faces_sizes(identities, images, pairs):
    if identities < 2:
        raise MfftoolsError("the folder tree needs at least 2 identities per subgroup")
    if images < 2:
        raise MfftoolsError("the folder tree needs at least 2 images per identity (genuine pairs)")
    if pairs <= 0 or pairs % (2 * BFW_FOLDS):
        raise MfftoolsError(
            f"pairs per subgroup must be a positive multiple of {2 * BFW_FOLDS}"
            f" ({BFW_FOLDS} balanced folds), got {pairs}"
        )


def _image_counts(rng, n_identities, mean, maximum):
    """Images per identity: geometric with the given mean, at most `maximum`; at least one
    identity has two images when `maximum` allows, so every group has genuine pairs."""
    counts = np.minimum(rng.geometric(1.0 / mean, n_identities), maximum)
    if maximum >= 2 and counts.max() < 2:
        counts[0] = 2
    return counts


def _person_id(prefix, group_index, number):
    """An RFW-like person id, e.g. m.0b1z: prefix, group letter, number in base 36."""
    digits = np.base_repr(number, 36).lower()
    return f"{prefix}.0{chr(ord('a') + group_index)}{digits}"


def _write_instance_group(archive, rng, group_index, group, appearance, counts, painter, summary):
    people = [_person_id("m", group_index, k) for k in range(len(counts))]
    if group_index == 1:  # RFW quirk: one person listed in two groups
        people[0] = _person_id("m", 0, 0)
        summary.people_in_two_groups = 1
    listed = [f"{person}\t{count}\n" for person, count in zip(people, counts)]
    if group_index == len(GROUP_STYLES) - 1:  # RFW quirk: a listed person without images
        missing = _person_id("m", group_index, len(counts))
        listed.append(f"{missing}\t0\n")
        summary.people_without_images.append(f"{group}/{missing}")
    archive.writestr(f"data/txts/{group}/{group}_people.txt", "".join(listed))
    identity = np.repeat(np.arange(len(counts)), counts)
    variation = sample_variations(rng, len(identity), GROUP_STYLES[group].difficulty)
    first_row = np.concatenate([[0], np.cumsum(counts)[:-1]])
    for row, data in enumerate(painter.encoded(take(appearance, identity), variation)):
        person = people[identity[row]]
        copy = row - first_row[identity[row]] + 1
        archive.writestr(f"data/data/{group}/{person}/{person}_{copy:04d}.jpg", data)
    summary.instance_images[group] = len(identity)
    summary.instance_identities[group] = len(counts)


def _write_training_zip(summary, seed, identities_per_group, images_per_identity, painter):
    """Identities of every group in turn, labelled 0, 1, ... across groups; index.txt last."""
    with _atomic_zip(summary.training_zip) as archive:
        index_lines = []
        for group_index, group in enumerate(summary.group_names):
            rng = np.random.default_rng([seed, _TRAINING, group_index])
            appearance = sample_appearances(rng, identities_per_group, GROUP_STYLES[group])
            identity = np.repeat(np.arange(identities_per_group), images_per_identity)
            variation = sample_variations(rng, len(identity), GROUP_STYLES[group].difficulty)
            for row, data in enumerate(painter.encoded(take(appearance, identity), variation)):
                person = _person_id("t", group_index, int(identity[row]))
                copy = row % images_per_identity + 1
                label = summary.training_identities + int(identity[row])
                archive.writestr(IMAGE_MEMBER.format(len(index_lines)), data)
                index_lines.append(
                    f"{group}/{person}/{person}_{copy:04d}.jpg {group_index} {label} 1\n"
                )
            summary.training_identities += identities_per_group
        archive.writestr(INDEX_MEMBER, "".join(index_lines))
        summary.training_images = len(index_lines)


def _write_faces(out_dir, summary, seed, n_identities, n_images, n_pairs, painter):
    """The folder tree of eight subgroups, its manifest and its BFW-style pair table."""
    folder = out_dir / FACES_FOLDER
    manifest_rows, pair_rows = [], []
    for ethnicity_index, ethnicity in enumerate(summary.group_names):
        for gender_index, gender in enumerate(GENDER_SHIFTS):
            subgroup = f"{ethnicity}-{gender}"
            rng = np.random.default_rng([seed, _FACES, ethnicity_index, gender_index])
            style = GROUP_STYLES[ethnicity]
            appearance = with_gender(sample_appearances(rng, n_identities, style), gender)
            identity = np.repeat(np.arange(n_identities), n_images)
            variation = sample_variations(rng, len(identity), style.difficulty)
            formats = ["PNG" if row % n_images == 0 else "JPEG" for row in range(len(identity))]
            paths = []
            for row, data in enumerate(
                painter.encoded(take(appearance, identity), variation, formats)
            ):
                person = _person_id("f", ethnicity_index, 2 * int(identity[row]) + gender_index)
                suffix = ".png" if formats[row] == "PNG" else ".jpg"
                name = f"{subgroup}/{person}/{person}_{row % n_images + 1:04d}{suffix}"
                write_bytes(folder / name, data)
                paths.append(f"{FACES_FOLDER}/{name}")
                manifest_rows.append((paths[-1], person, ethnicity, ethnicity, gender))
            for fold, first, second, same in _bfw_pairs(rng, n_identities, n_images, n_pairs):
                people = [_person_id("f", ethnicity_index, 2 * (index // n_images) + gender_index)
                          for index in (first, second)]
                pair_rows.append((fold, paths[first], paths[second], int(same), *people,
                                  subgroup, subgroup, gender, gender, ethnicity, ethnicity))
            summary.faces_group_names.append(subgroup)
            summary.faces_images[subgroup] = len(identity)
            summary.faces_identities[subgroup] = n_identities
            summary.faces_pairs[subgroup] = n_pairs
    summary.faces_folder = folder
    summary.faces_manifest = write_table(
        out_dir / FACES_MANIFEST, ("path", "identity", "group", "ethnicity", "gender"),
        manifest_rows,
    )
    summary.bfw_pairs = write_table(out_dir / BFW_PAIRS, BFW_COLUMNS, pair_rows)


def _bfw_pairs(rng, n_identities, n_images, n_pairs):
    """(fold, first image, second image, same) of n_pairs pairs: BFW_FOLDS folds, each its
    genuine pairs (two images of one identity) then as many impostor pairs."""
    half = n_pairs // (2 * BFW_FOLDS)
    for fold in range(1, BFW_FOLDS + 1):
        for identity in rng.integers(0, n_identities, half):
            first, second = rng.choice(n_images, 2, replace=False)
            yield fold, identity * n_images + first, identity * n_images + second, True
        first = rng.integers(0, n_identities, half)
        second = (first + rng.integers(1, n_identities, half)) % n_identities
        for a, b in zip(first, second):
            images = rng.integers(0, n_images, 2)
            yield fold, a * n_images + images[0], b * n_images + images[1], False


def _write_pair_bin(path, rng, appearance, style, n_pairs, painter):
    """10 folds of n_pairs/10 pairs, each fold its genuine pairs then its impostor pairs."""
    n_identities = len(appearance["skin"])
    half = n_pairs // (2 * N_FOLDS)
    rows, issame = [], []
    for _ in range(N_FOLDS):
        genuine = rng.integers(0, n_identities, half)
        first = rng.integers(0, n_identities, half)
        second = (first + rng.integers(1, n_identities, half)) % n_identities
        rows += [identity for k in genuine for identity in (k, k)]
        rows += [identity for pair in zip(first, second) for identity in pair]
        issame += [True] * half + [False] * half
    variation = sample_variations(rng, len(rows), style.difficulty)
    bins = list(painter.encoded(take(appearance, np.asarray(rows)), variation))
    with atomic_output(path) as temporary, temporary.open("wb") as handle:
        pickle.dump((bins, issame), handle, protocol=4)


class _Painter:
    """Renders and JPEG-encodes images batch by batch, with one progress bar for the whole run."""

    def __init__(self, quality, batch_size, progress):
        self.quality = quality
        self.batch_size = batch_size
        self.bar = tqdm(unit="img", desc="synth", disable=not (progress and sys.stderr.isatty()))

    def encoded(self, appearance, variation, formats=None):
        """Yield the encoded bytes of each image, in row order; `formats` gives each image's
        format (JPEG or PNG; all JPEG by default)."""
        n_images = len(variation["noise_seed"])
        for start in range(0, n_images, self.batch_size):
            rows = slice(start, min(start + self.batch_size, n_images))
            rendered = render_faces(take(appearance, rows), take(variation, rows))
            for row, pixels in enumerate(rendered, start=start):
                fmt = "JPEG" if formats is None else formats[row]
                yield encode_image(pixels, fmt=fmt, quality=self.quality)
            self.bar.update(rows.stop - rows.start)

    def close(self):
        self.bar.close()


class _StoredZip:
    """Members written uncompressed with a fixed timestamp, so the same seed gives the same bytes."""

    def __init__(self, archive):
        self.archive = archive

    def writestr(self, name, data):
        info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16  # rw-r--r-- when extracted
        self.archive.writestr(info, data)


@contextlib.contextmanager
def _atomic_zip(path):
    """A zip written under a temporary name and moved into place only when complete."""
    with atomic_output(path) as temporary:
        with zipfile.ZipFile(temporary, "w", zipfile.ZIP_STORED) as archive:
            yield _StoredZip(archive)
