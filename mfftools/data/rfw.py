"""The RFW instance-protocol zip (PROTOCOLS 1.2).

    data/txts/<Group>/<Group>_people.txt     first column: person id, e.g. m.0x1lfrd
    data/data/<Group>/<person id>/<person id>_0001.jpg ...

Groups are sorted by name. An image belongs to a person only when its folder name equals the
person id exactly. One identity per (group, person) pair that has images, labelled 0, 1, ... in
(group, person id) order; images in member-name order within a person. The RFW quirks are reported,
not errors: people listed in two groups (each group keeps its own identity) and listed people
without images.
"""

import logging
from collections import Counter, defaultdict

import numpy as np

from mfftools.data.images import IMAGE_SUFFIXES, EncodedImages
from mfftools.data.zipsource import LazyZip
from mfftools.errors import MfftoolsError

logger = logging.getLogger(__name__)


class RfwInstanceZip(EncodedImages):
    """The images of an RFW instance zip, kept encoded (EncodedImages).

    Attributes: `identity`, `group` (int64 [N]), `group_names` (sorted), `paths` (member names),
    `identity_names` (the person id of each image), `people_in_two_groups` (how many person ids
    are listed in more than one group) and `people_without_images` (["<Group>/<person id>", ...]
    listed but without any image).
    """

    def __init__(self, path, in_memory=False):
        self.archive = LazyZip(path, in_memory=in_memory)
        self.path = self.archive.path
        people = self._read_people()
        self.group_names = sorted(people)
        images = _images_by_person(self.archive.names)
        self.identity, self.group, self.paths, self.people_without_images = _label_images(
            self.group_names, people, images
        )
        if not self.paths:
            raise MfftoolsError(
                f"{self.path}: no images of the listed people under data/data/<Group>/<person id>/"
            )
        listed_in = Counter(person for group_people in people.values() for person in group_people)
        self.people_in_two_groups = sum(count > 1 for count in listed_in.values())
        unlisted = sum(
            len(files) for key, files in images.items() if key[1] not in people.get(key[0], ())
        )
        self._log_summary(unlisted)

    def _log_summary(self, unlisted):
        logger.info(
            "%s: %d images, %d identities in groups %s",
            self.path,
            len(self.paths),
            int(self.identity[-1]) + 1,
            ", ".join(self.group_names),
        )
        if self.people_in_two_groups:
            logger.info(
                "%s: %d people listed in two groups (one identity per group kept)",
                self.path,
                self.people_in_two_groups,
            )
        if self.people_without_images:
            logger.warning(
                "%s: %d listed people have no images: %s",
                self.path,
                len(self.people_without_images),
                ", ".join(self.people_without_images[:10]),
            )
        if unlisted:
            logger.warning(
                "%s: %d images of people not in any people list are ignored", self.path, unlisted
            )

    def _read_people(self):
        """Group name -> set of person ids, from data/txts/<Group>/<Group>_people.txt."""
        people = {}
        for member in self.archive.names:
            parts = member.split("/")
            if (
                len(parts) == 4
                and parts[:2] == ["data", "txts"]
                and parts[3] == f"{parts[2]}_people.txt"
            ):
                people[parts[2]] = _parse_people(self.archive.read(member), f"{self.path}:{member}")
        if not people:
            raise MfftoolsError(
                f"{self.path}: not an RFW instance zip"
                " (no data/txts/<Group>/<Group>_people.txt member)"
            )
        return people

    def __len__(self):
        return len(self.paths)

    @property
    def identity_names(self):
        return [member.split("/")[3] for member in self.paths]

    def encoded(self, index):
        return self.archive.read(self.paths[index])

    def image_name(self, index):
        return self.paths[index]

    def describe(self, index):
        return f"{self.path}:{self.paths[index]}"


def _parse_people(data, where):
    """A people list -> set of person ids (first column of each non-blank line)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise MfftoolsError(f"{where}: not UTF-8 text ({error})") from error
    people = set()
    for line in text.splitlines():
        fields = line.split()
        if fields:
            people.add(fields[0])
    if not people:
        raise MfftoolsError(f"{where}: lists no people")
    return people


def _label_images(group_names, people, images):
    """One identity per (group, person) with images, numbered in (group, person id) order.

    Returns identity and group (int64 arrays), the image member names, and the listed people
    without images as "<Group>/<person id>".
    """
    identity, group, paths, without_images = [], [], [], []
    for group_index, group_name in enumerate(group_names):
        for person in sorted(people[group_name]):
            person_images = sorted(images.get((group_name, person), ()))
            if not person_images:
                without_images.append(f"{group_name}/{person}")
                continue
            next_identity = identity[-1] + 1 if identity else 0
            identity.extend([next_identity] * len(person_images))
            group.extend([group_index] * len(person_images))
            paths.extend(person_images)
    return np.asarray(identity, np.int64), np.asarray(group, np.int64), paths, without_images


def _images_by_person(names):
    """(group, folder name) -> image member names under data/data/<Group>/<folder>/."""
    images = defaultdict(list)
    for member in names:
        parts = member.split("/")
        if (
            len(parts) == 5
            and parts[:2] == ["data", "data"]
            and parts[4].lower().endswith(IMAGE_SUFFIXES)
        ):
            images[(parts[2], parts[3])].append(member)
    return images
