"""RFW as it ships: a folder of loose images with landmark and pair lists (PROTOCOLS 1.6).

    <root>/data/<Race>/<person>/<person>_0001.jpg ...
    <root>/txts/<Race>/<Race>_lmk.txt      <path> <label> x1 y1 ... x5 y5   (tab-separated)
    <root>/txts/<Race>/<Race>_pairs.txt    <person> <n1> <n2>              (a genuine pair)
                                           <person1> <n1> <person2> <n2>   (an impostor pair)

Two layouts. `images`: every image under data/, one identity per (race, person) in sorted order
(a person found in two races is two identities, as in the RFW zip), the race its group.
`pairs`: the pairs of each race in file order, image n of a person being
`data/<Race>/<person>/<person>_000n.jpg`; RFW's folds are contiguous (10 folds of 600 pairs per
race), so pair k of P is in fold k // (P / 10).

Images are aligned by the landmark lists when they are present (every race must have one), and
used as they are when there are none or when `aligned` says so.
"""
import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from mfftools.data.image_files import ImageFiles
from mfftools.data.images import IMAGE_SUFFIXES
from mfftools.data.table import Problems, read_text
from mfftools.errors import MfftoolsError

logger = logging.getLogger(__name__)

N_FOLDS = 10
LANDMARKS = "{race}_lmk.txt"
PAIRS = "{race}_pairs.txt"


def is_rfw_folder(path):
    """Whether `path` looks like RFW as shipped: data/<Race>/ beside txts/<Race>/."""
    path = Path(path)
    return (path / "data").is_dir() and (path / "txts").is_dir()


@dataclass
class RfwFolder:
    """What an RFW folder holds: `races` (sorted), its `root`, and which races have landmark and
    pair lists."""

    root: Path
    races: list

    def text_file(self, race, pattern):
        return self.root / "txts" / race / pattern.format(race=race)

    def landmark_files(self):
        """The landmark list of every race, or [] when none has one; an error when only some
        do."""
        files = [self.text_file(race, LANDMARKS) for race in self.races]
        present = [file.is_file() for file in files]
        if any(present) and not all(present):
            missing = [str(file) for file, here in zip(files, present) if not here]
            raise MfftoolsError(
                f"{self.root}: landmark lists missing for some races: {', '.join(missing)}; "
                "give every race one, or --aligned when the images are already aligned"
            )
        return files if all(present) else []


def open_rfw_folder(root):
    """The races of an RFW folder (folders under data/ that hold images)."""
    root = Path(root)
    if not is_rfw_folder(root):
        raise MfftoolsError(
            f"{root}: not RFW as shipped (expected {root}/data/<Race>/<person>/<image> and "
            f"{root}/txts/<Race>/<Race>_lmk.txt, <Race>_pairs.txt)"
        )
    races = sorted(path.name for path in (root / "data").iterdir() if path.is_dir())
    if not races:
        raise MfftoolsError(f"{root}/data: no race folders")
    return RfwFolder(root, races)


def read_rfw_images(folder):
    """Every image of the folder: (ImageFiles named `data/<Race>/<person>/<file>`, identity,
    identity names, group) with one identity per (race, person)."""
    files, names, identity, identity_names, group = [], [], [], [], []
    for race_index, race in enumerate(folder.races):
        for person in sorted(path for path in (folder.root / "data" / race).iterdir()
                             if path.is_dir()):
            images = sorted(path for path in person.iterdir()
                            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES)
            if not images:
                continue
            label = identity[-1] + 1 if identity else 0
            for image in images:
                files.append(image)
                names.append(f"data/{race}/{person.name}/{image.name}")
                identity.append(label)
                identity_names.append(person.name)
                group.append(race_index)
    if not files:
        raise MfftoolsError(f"{folder.root}/data: no images under <Race>/<person>/")
    logger.info("%s: %d images, %d identities in races %s", folder.root, len(files),
                identity[-1] + 1, ", ".join(folder.races))
    return (ImageFiles(files, names), np.asarray(identity, np.int64), identity_names,
            np.asarray(group, np.int64))


def read_rfw_pairs(folder, races=None):
    """The pair lists of `races` (all by default): (ImageFiles of 2P rows, issame [P],
    pair_group [P] indices into `races`, fold [P])."""
    races = list(folder.races if races is None else races)
    problems = Problems()
    files, names, issame, pair_group, fold = [], [], [], [], []
    for race_index, race in enumerate(races):
        path = folder.text_file(race, PAIRS)
        if not path.is_file():
            raise MfftoolsError(f"{path}: no pair list for {race}")
        pairs = _parse_pairs(path, problems)
        if pairs and len(pairs) % N_FOLDS:
            problems.add(f"{path}: {len(pairs)} pairs; RFW's {N_FOLDS} folds need a multiple "
                         f"of {N_FOLDS}")
        per_fold = max(len(pairs) // N_FOLDS, 1)
        for position, (line, first, second, same) in enumerate(pairs):
            for person, number in (first, second):
                name = f"data/{race}/{person}/{person}_{number:04d}.jpg"
                file = folder.root / name
                if not file.is_file():
                    problems.add(f"{path}, line {line}: no image {name} in {folder.root}")
                files.append(file)
                names.append(name)
            issame.append(same)
            pair_group.append(race_index)
            fold.append(position // per_fold)
    problems.raise_any()
    if not issame:
        raise MfftoolsError(f"{folder.root}/txts: no pairs")
    return (ImageFiles(files, names), np.asarray(issame, bool), np.asarray(pair_group, np.int64),
            np.asarray(fold, np.int64))


def _parse_pairs(path, problems):
    """[(line, (person, n1), (person, n2), issame)] of one race's pair list."""
    pairs = []
    for line, content in enumerate(read_text(Path(path)).splitlines(), start=1):
        fields = content.split()
        if not fields:
            continue
        if len(fields) not in (3, 4):
            problems.add(f"{path}, line {line}: {len(fields)} fields; expected `person n1 n2` "
                         "(genuine) or `person1 n1 person2 n2` (impostor)")
            continue
        numbers = [fields[1], fields[2]] if len(fields) == 3 else [fields[1], fields[3]]
        if not all(number.isdigit() for number in numbers):
            problems.add(f"{path}, line {line}: image numbers must be positive integers, got "
                         f"{' and '.join(numbers)}")
            continue
        if len(fields) == 3:
            pairs.append((line, (fields[0], int(fields[1])), (fields[0], int(fields[2])), True))
        else:
            if fields[0] == fields[2]:
                problems.add(f"{path}, line {line}: an impostor pair of one person, {fields[0]}")
                continue
            pairs.append((line, (fields[0], int(fields[1])), (fields[2], int(fields[3])), False))
    return pairs


def rfw_source(root, layout="images", aligned=False, groups=None, allow_missing=False):
    """An ExtractionSource of an RFW folder in the `images` or `pairs` layout (`groups`: the
    races to keep, pairs layout), aligned by its landmark lists unless `aligned`."""
    from mfftools.data.groups import select_groups
    from mfftools.data.landmarks import align_source, landmarks_of_images, read_landmark_file
    from mfftools.sources import ExtractionSource

    folder = open_rfw_folder(root)
    description = str(folder.root.resolve())
    if layout == "pairs":
        races = select_groups(folder.races, groups, str(folder.root))
        images, issame, pair_group, fold = read_rfw_pairs(folder, races)
        source = ExtractionSource(images=images, layout="pairs", group_names=races,
                                  description=description, issame=issame,
                                  pair_group=pair_group, fold=fold)
        row_race = np.repeat(pair_group, 2)
    else:
        races = folder.races
        images, identity, identity_names, group = read_rfw_images(folder)
        source = ExtractionSource(images=images, layout="images", group_names=races,
                                  description=description, identity=identity,
                                  identity_names=identity_names, group=group)
        row_race = group
    if aligned:
        return replace(source, attrs={"aligned": True})
    landmark_files = folder.landmark_files()
    if not landmark_files:
        logger.warning("%s: no landmark lists (txts/<Race>/<Race>_lmk.txt): the images are used "
                       "as they are; give --aligned to record that they are aligned", folder.root)
        return source
    points = np.full((len(images), 5, 2), np.nan)
    for race_index, race in enumerate(races):
        rows = np.flatnonzero(row_race == race_index)
        landmarks = read_landmark_file(folder.text_file(race, LANDMARKS))
        points[rows], _ = landmarks_of_images(landmarks, [images.names[row] for row in rows])
    return align_source(source, points, allow_missing=allow_missing)
