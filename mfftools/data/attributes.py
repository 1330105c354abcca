"""Per-identity attributes (`--attributes FILE`): demographic columns joined to any source by
identity, so that `--group-by` works without a column on every image's row.

    identity,ethnicity,gender[,any other columns]          CSV or TSV, one row per identity
    n000009,Asian,Female

The identity is matched to the source's identity names (a folder tree's identity folders, a
manifest's `identity`, RFW's person ids; a pair list's `identity1`/`identity2`). A group is the
values of the `--group-by` columns joined by "-", as for a manifest. An identity of the source
without a row, with two rows that disagree, or with an empty value in a grouping column is an
error naming it (and the lines); rows for identities the source does not hold are ignored.
"""
import logging

from mfftools.data.table import Problems, Table
from mfftools.errors import MfftoolsError

logger = logging.getLogger(__name__)


class Attributes:
    """An attributes file read whole: `header`, and per identity its line and values."""

    def __init__(self, path):
        self.table = Table(path, known=("identity",))
        self.table.require(("identity",), "an attributes file (identity, then attribute columns)")
        self.path = self.table.path
        at = self.table.position("identity")
        problems = Problems()
        self.rows = {}
        for line, values in self.table.rows(problems):
            identity = values[at]
            if not identity:
                problems.add(f"{self.table.where(line, at)}: empty identity")
                continue
            if identity in self.rows and self.rows[identity][1] != values:
                problems.add(
                    f"{self.path}, lines {self.rows[identity][0]} and {line}: identity "
                    f"{identity!r} has two rows that disagree; keep one"
                )
                continue
            self.rows.setdefault(identity, (line, values))
        if not self.table.records:
            problems.add(f"{self.path}: no rows after the header")
        problems.raise_any()

    def default_group_by(self, given):
        """The grouping columns: `given`, else the file's `group` column; an error without
        either."""
        if given:
            return tuple(given)
        if "group" in self.table.header:
            return ("group",)
        raise MfftoolsError(
            f"{self.path}, line 1: give --group-by COLUMNS to make groups from its attributes "
            f"(its columns are {', '.join(self.table.header)}), or add a 'group' column"
        )

    def groups_of(self, identities, group_by):
        """The group of each identity name (its `group_by` values joined by "-"); an error
        listing identities without a row or with an empty grouping value."""
        positions = [self.table.index_of(column) for column in group_by]
        problems = Problems()
        found = {}
        for identity in dict.fromkeys(identities):
            if identity not in self.rows:
                problems.add(f"{self.path}: no row for identity {identity!r} (add one: "
                             "every identity of the source needs its attributes)")
                continue
            line, values = self.rows[identity]
            for position in positions:
                if not values[position]:
                    problems.add(f"{self.table.where(line, position)}: empty value for "
                                 f"identity {identity!r}")
            found[identity] = "-".join(values[position] for position in positions)
        problems.raise_any()
        unused = len(self.rows) - len(found)
        if unused:
            logger.info("%s: %d identities have attributes but no images in the source",
                        self.path, unused)
        return [found[identity] for identity in identities]
