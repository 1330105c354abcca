"""A manifest of face images, CSV or TSV (PROTOCOLS 1.5), for the instance protocol.

    path,identity,group[,any other columns]
    Asian/n000009/0001_01.jpg,n000009,Asian,...

`path` is relative to the manifest's folder unless `image_root` is given; `identity` is any
string. The group is the `group` column, or, with `group_by`, the values of those columns joined
by "-" (`group_by=["ethnicity", "gender"]` gives groups such as `Asian-Female`); with
`attributes` (a per-identity attributes file), `group_by` names its columns instead. Rows keep the
manifest's order; identities are labelled 0, 1, ... in the sorted order of their names, groups
likewise. The whole manifest is checked before anything is read: every missing file, empty
identity or group, or short row is named with its line and column.
"""

import logging

from mfftools.data.image_files import ImageFiles, ImageResolver, LabelledImages, index_labels
from mfftools.data.table import Problems, Table
from mfftools.errors import MfftoolsError

logger = logging.getLogger(__name__)

COLUMNS = ("path", "identity", "group")


def read_manifest(path, image_root=None, group_by=None, columns=None, attributes=None):
    """Read and check a manifest (a path, or a Table already read) -> LabelledImages;
    `columns` maps standard names to the file's; `attributes`: an Attributes whose `group_by`
    columns make the groups."""
    table = path if isinstance(path, Table) else Table(path, columns, known=COLUMNS)
    table.require(("path", "identity"), "a manifest (path, identity, group)")
    if attributes is not None:
        group_positions = []
    elif group_by:
        group_positions = [table.index_of(column) for column in group_by]
    elif table.has("group"):
        group_positions = [table.position("group")]
    else:
        raise MfftoolsError(
            f"{table.path}, line 1: no column group; add one, or give --group-by COLUMNS "
            f"(the columns are {', '.join(table.header)})"
        )
    resolve = ImageResolver(table.path, image_root)
    path_at, identity_at = table.position("path"), table.position("identity")
    problems = Problems()
    files, names, identities, groups = [], [], [], []
    for line, values in table.rows(problems):
        image = values[path_at]
        file = resolve(image) if image else None
        if not image:
            problems.add(f"{table.where(line, path_at)}: empty path")
        elif file is None:
            problems.add(f"{table.where(line, path_at)}: {resolve.missing(image)}")
        if not values[identity_at]:
            problems.add(f"{table.where(line, identity_at)}: empty identity")
        for position in group_positions:
            if not values[position]:
                problems.add(f"{table.where(line, position)}: empty group value")
        files.append(file)
        names.append(image)
        identities.append(values[identity_at])
        groups.append("-".join(values[position] for position in group_positions))
    if not table.records:
        problems.add(f"{table.path}: no rows after the header")
    problems.raise_any()
    if attributes is not None:
        groups = attributes.groups_of(identities, attributes.default_group_by(group_by))
    distinct, identity = index_labels(identities)
    group_names, group = index_labels(groups)
    logger.info(
        "%s: %d images, %d identities in groups %s", table.path, len(files), len(distinct),
        ", ".join(group_names),
    )
    return LabelledImages(
        images=ImageFiles(files, names),
        identity=identity,
        identity_names=identities,
        group=group,
        group_names=group_names,
    )
