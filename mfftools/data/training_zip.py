"""The training zip (BUPT-Balancedface / Globalface style, PROTOCOLS 1.1).

    data/index.txt                      line k: <name> <group index> <identity label> <exists flag>
    data/img/0000000.jpg, ...           image k is data/img/%07d.jpg % k

Every line is checked when the reader is built; nothing is silently skipped.
"""

import logging

import numpy as np

from mfftools.data.images import EncodedImages
from mfftools.data.zipsource import LazyZip
from mfftools.errors import MfftoolsError

logger = logging.getLogger(__name__)

INDEX_MEMBER = "data/index.txt"
IMAGE_MEMBER = "data/img/{:07d}.jpg"


class TrainingZip(EncodedImages):
    """The images of a training zip (`encoded(k)`: the bytes of image k) and their labels.

    Attributes: `labels`, `groups` (int64 [N]), `names` (the index names), `num_classes`
    (largest label + 1) and `group_names` (group index -> the first path part of its names, or
    the index as text when the names of a group disagree).
    """

    def __init__(self, path, in_memory=False):
        self.archive = LazyZip(path, in_memory=in_memory)
        self.path = self.archive.path
        if INDEX_MEMBER not in set(self.archive.names):
            raise MfftoolsError(f"{self.path}: not a training zip (no {INDEX_MEMBER} member)")
        text = self.archive.read(INDEX_MEMBER).decode("utf-8", errors="replace")
        self.names, self.groups, self.labels = _parse_index(text, self.path)
        members = set(self.archive.names)
        for line, member in enumerate(self.members(), start=1):
            if member not in members:
                raise MfftoolsError(
                    f"{self.path}: {INDEX_MEMBER} line {line}: member {member} is missing"
                )
        self.num_classes = int(self.labels.max()) + 1
        self.group_names = _group_names(self.names, self.groups)
        logger.info(
            "%s: %d images, %d classes, %d groups",
            self.path,
            len(self.labels),
            self.num_classes,
            len(self.group_names),
        )

    def members(self):
        """The zip member name of each image, in index order."""
        return (IMAGE_MEMBER.format(k) for k in range(len(self.labels)))

    def __len__(self):
        return len(self.labels)

    def encoded(self, index):
        return self.archive.read(IMAGE_MEMBER.format(index))

    def image_name(self, index):
        return self.names[index]

    def describe(self, index):
        return f"{self.path}:{IMAGE_MEMBER.format(index)}"


def _parse_index(text, path):
    """index.txt text -> (names, groups, labels); errors name the line."""
    lines = text.rstrip("\n").split("\n") if text.strip() else []
    if not lines:
        raise MfftoolsError(f"{path}: {INDEX_MEMBER} is empty")
    names, groups, labels = [], np.empty(len(lines), np.int64), np.empty(len(lines), np.int64)
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        where = f"{path}: {INDEX_MEMBER} line {number}"
        if len(fields) != 4:
            raise MfftoolsError(
                f"{where}: expected 4 fields (name, group, label, exists), found {len(fields)}"
            )
        try:
            group, label, _exists = (int(field) for field in fields[1:])
        except ValueError as error:
            raise MfftoolsError(
                f"{where}: group, label and exists flag must be integers ({error})"
            ) from error
        if group < 0 or label < 0:
            raise MfftoolsError(f"{where}: group and label must be non-negative")
        names.append(fields[0])
        groups[number - 1] = group
        labels[number - 1] = label
    return names, groups, labels


def _group_names(names, groups):
    """Group index -> name taken from the first path part of the image names."""
    first_parts = {}
    for name, group in zip(names, groups.tolist()):
        first_parts.setdefault(group, set()).add(name.split("/")[0])
    result = []
    for group in range(int(groups.max()) + 1):
        parts = first_parts.get(group, set())
        result.append(next(iter(parts)) if len(parts) == 1 else str(group))
    return result
