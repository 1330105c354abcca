"""A folder tree of face images (PROTOCOLS 1.5), for the instance protocol.

    ROOT/<group>/<identity>/<image>      images: .jpg .jpeg .png .bmp

Groups, identities and images are taken in sorted name order; one identity per (group, identity
folder), labelled 0, 1, ... in that order (an identity folder name found in two groups is two
identities, as for RFW). Other files are ignored; images outside that depth are ignored and
counted in the log.
"""

import logging
from pathlib import Path

import numpy as np

from mfftools.data.image_files import ImageFiles, LabelledImages
from mfftools.data.images import IMAGE_SUFFIXES
from mfftools.errors import MfftoolsError

logger = logging.getLogger(__name__)


def _is_image(path):
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def read_folder_tree(root):
    """Index `root/<group>/<identity>/<image>` -> LabelledImages."""
    root = Path(root)
    if not root.is_dir():
        raise MfftoolsError(f"{root}: no such folder")
    files, identity, identity_names, group, group_names = [], [], [], [], []
    misplaced = sum(_is_image(path) for path in root.iterdir())
    for group_folder in sorted(path for path in root.iterdir() if path.is_dir()):
        group_index = len(group_names)
        misplaced += sum(_is_image(path) for path in group_folder.iterdir())
        for person in sorted(path for path in group_folder.iterdir() if path.is_dir()):
            images = sorted(path for path in person.iterdir() if _is_image(path))
            if not images:
                continue
            files += images
            identity += [identity[-1] + 1 if identity else 0] * len(images)
            identity_names += [person.name] * len(images)
            group += [group_index] * len(images)
        if group and group[-1] == group_index:
            group_names.append(group_folder.name)
    if not files:
        raise MfftoolsError(
            f"{root}: no images in <group>/<identity>/ folders (expected "
            f"{root}/<group>/<identity>/<image> with {', '.join(IMAGE_SUFFIXES)} images)"
        )
    if misplaced:
        logger.warning(
            "%s: %d images are not at <group>/<identity>/<image> and are ignored", root, misplaced
        )
    logger.info(
        "%s: %d images, %d identities in groups %s", root, len(files), identity[-1] + 1,
        ", ".join(group_names),
    )
    return LabelledImages(
        images=ImageFiles(files, [str(file.relative_to(root)) for file in files]),
        identity=np.asarray(identity, dtype=np.int64),
        identity_names=identity_names,
        group=np.asarray(group, dtype=np.int64),
        group_names=group_names,
    )
