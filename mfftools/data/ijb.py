"""IJB-B / IJB-C as insightface packs them (PROTOCOLS 1.7): loose crops, landmarks, templates.

    <root>/loose_crop/<name>                     (or <root>/images/<name>)
    <root>/meta/<set>_name_5pts_score.txt        <name> x1 y1 ... x5 y5 <detector score>
    <root>/meta/<set>_face_tid_mid.txt           <name> <template id> <media id>

`<set>` is `ijbb` or `ijbc` (any prefix works). Rows follow the tid/mid list; each image is
joined to its landmark line by name. The embeddings file gets the image's `template`, `media`
and `detector_score`; its `identity` is the template id (subjects come with the protocol's
CSV files, not with the images) and its one group is named after the set (`IJBC`).
"""
import logging
from pathlib import Path

import numpy as np

from mfftools.data.image_files import ImageFiles
from mfftools.data.table import Problems, read_text
from mfftools.errors import MfftoolsError

logger = logging.getLogger(__name__)

TID_MID = "_face_tid_mid.txt"
LANDMARKS = "_name_5pts_score.txt"
IMAGE_FOLDERS = ("loose_crop", "images")


def is_ijb_folder(path):
    path = Path(path)
    return (path / "meta").is_dir() and any((path / "meta").glob(f"*{TID_MID}"))


def ijb_files(root):
    """(set prefix, tid/mid list, landmark list, image folder) of an IJB folder."""
    root = Path(root)
    lists = sorted((root / "meta").glob(f"*{TID_MID}")) if (root / "meta").is_dir() else []
    if len(lists) != 1:
        found = f"found {', '.join(path.name for path in lists)}" if lists else "found none"
        raise MfftoolsError(f"{root}/meta: expected one <set>{TID_MID} list (e.g. "
                            f"ijbc{TID_MID}), {found}")
    prefix = lists[0].name[: -len(TID_MID)]
    folders = [root / name for name in IMAGE_FOLDERS if (root / name).is_dir()]
    if not folders:
        raise MfftoolsError(f"{root}: no image folder ({' or '.join(IMAGE_FOLDERS)})")
    return prefix, lists[0], root / "meta" / f"{prefix}{LANDMARKS}", folders[0]


def read_tid_mid(path):
    """(names, template ids int64, media ids int64) of a `<name> <tid> <mid>` list."""
    problems = Problems()
    names, templates, medias = [], [], []
    seen = {}
    for line, content in enumerate(read_text(Path(path)).splitlines(), start=1):
        fields = content.split()
        if not fields:
            continue
        if len(fields) != 3:
            problems.add(f"{path}, line {line}: {len(fields)} fields; expected "
                         "`<image> <template id> <media id>`")
            continue
        try:
            template, media = int(fields[1]), int(fields[2])
        except ValueError:
            problems.add(f"{path}, line {line}: template and media ids must be integers, got "
                         f"{fields[1]!r} and {fields[2]!r}")
            continue
        if fields[0] in seen:
            problems.add(f"{path}, line {line}: {fields[0]} is listed again (first on line "
                         f"{seen[fields[0]]})")
            continue
        seen[fields[0]] = line
        names.append(fields[0])
        templates.append(template)
        medias.append(media)
    if not names and not problems.found:
        problems.add(f"{path}: no images listed")
    problems.raise_any()
    return names, np.asarray(templates, np.int64), np.asarray(medias, np.int64)


def ijb_source(root, aligned=False, allow_missing=False):
    """An ExtractionSource of an IJB folder: images in tid/mid order with their template,
    media and detector score, aligned by their landmarks unless `aligned`."""
    from dataclasses import replace

    from mfftools.data.landmarks import align_source, landmarks_of_images, read_landmark_file
    from mfftools.sources import ExtractionSource

    root = Path(root)
    prefix, tid_mid, landmark_list, folder = ijb_files(root)
    names, templates, medias = read_tid_mid(tid_mid)
    problems = Problems()
    files = [folder / name for name in names]
    for name, file in zip(names, files):
        if not file.is_file():
            problems.add(f"{tid_mid}: no image {name} in {folder}")
    problems.raise_any()
    paths = [f"{folder.name}/{name}" for name in names]
    source = ExtractionSource(
        images=ImageFiles(files, paths),
        layout="images",
        group_names=[prefix.upper()],
        description=str(root.resolve()),
        identity=templates,
        group=np.zeros(len(names), dtype=np.int64),
        columns={"template": templates, "media": medias},
    )
    logger.info("%s: %d images, %d templates, %d media", root, len(names),
                len(np.unique(templates)), len(np.unique(medias)))
    if not landmark_list.is_file():
        raise MfftoolsError(f"{landmark_list}: no such file; IJB's landmark list gives each "
                            "image's landmarks and detector score")
    points, scores = landmarks_of_images(read_landmark_file(landmark_list), names)
    if aligned:
        source = replace(source, attrs={"aligned": True})
        missing = np.isnan(scores)
        if missing.any():
            raise MfftoolsError(f"{landmark_list}: {int(missing.sum())} images have no detector "
                                f"score, e.g. {names[int(np.flatnonzero(missing)[0])]}")
        return replace(source, columns=dict(source.columns, detector_score=scores))
    return align_source(source, points, scores, allow_missing=allow_missing)
