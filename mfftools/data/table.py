"""Delimited tables (CSV, TSV) with a header row: the user's manifests and pair lists.

The delimiter follows the extension (`.csv` comma, `.tsv` tab), unless the header row shows the
other one alone (a tab-separated file named `.csv`, as spreadsheets export them); the text is
UTF-8 (a byte-order mark is allowed). A reader asks for columns by their standard names (`path`, `identity`, `path1`,
...); `--columns path1=p1,issame=label` maps a standard name to the file's own column. Every
error names the file, the line and the column, so a bad row can be found and fixed.
"""

import csv
import io
import logging
from pathlib import Path

from mfftools.errors import MfftoolsError

logger = logging.getLogger(__name__)

TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t"}
# Problems listed in one error; the rest are counted.
_LISTED_PROBLEMS = 5


def is_table(path):
    return Path(path).suffix.lower() in TABLE_SUFFIXES


def parse_column_map(text):
    """`"path1=p1, issame=label"` -> {"path1": "p1", "issame": "label"}; None for None."""
    if text is None:
        return None
    mapping = {}
    for item in text.split(","):
        if not item.strip():
            continue
        name, separator, column = (part.strip() for part in item.partition("="))
        if not separator or not name or not column:
            raise MfftoolsError(
                f"--columns: {item.strip()!r} is not NAME=COLUMN (e.g. path1=p1,issame=label)"
            )
        mapping[name] = column
    return mapping


class Table:
    """A whole table in memory: `header` (the file's column names) and `records` [(line, [values])].

    `columns` maps standard names to the file's column names (names not mapped are their own
    column); `known` are the standard names a caller may map.
    """

    def __init__(self, path, columns=None, known=()):
        self.path = Path(path)
        delimiter = TABLE_SUFFIXES.get(self.path.suffix.lower())
        if delimiter is None:
            raise MfftoolsError(f"{self.path}: a table must be a .csv or a .tsv file")
        text = read_text(self.path)
        delimiter = _delimiter(text, delimiter, self.path)
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        try:
            self.header = [name.strip() for name in next(reader)]
        except StopIteration:
            raise MfftoolsError(f"{self.path}: empty file; expected a header row") from None
        except csv.Error as error:
            raise MfftoolsError(f"{self.path}, line 1: {error}") from error
        self.records = []
        try:
            for values in reader:
                if any(value.strip() for value in values):
                    self.records.append((reader.line_num, [value.strip() for value in values]))
        except csv.Error as error:
            raise MfftoolsError(f"{self.path}, line {reader.line_num}: {error}") from error
        self._columns = self._resolve(columns or {}, known)

    def _resolve(self, columns, known):
        unknown = [name for name in columns if name not in known]
        if unknown:
            raise MfftoolsError(
                f"--columns: unknown name {', '.join(unknown)} (the names are "
                f"{', '.join(known)})"
            )
        resolved = {}
        for name in known:
            column = columns.get(name, name)
            if column in self.header:
                resolved[name] = self.header.index(column)
            elif name in columns:
                raise MfftoolsError(
                    f"{self.path}, line 1: no column {column!r} (mapped to {name} by --columns); "
                    f"the columns are {', '.join(self.header)}"
                )
        return resolved

    def has(self, name):
        """Whether the standard column `name` is present (under its own or a mapped name)."""
        return name in self._columns

    def require(self, names, what):
        """An error naming the missing standard columns; `what` says what the table is for."""
        missing = [name for name in names if name not in self._columns]
        if missing:
            raise MfftoolsError(
                f"{self.path}, line 1: no column {', '.join(missing)} for {what}; the columns "
                f"are {', '.join(self.header)} (map yours with --columns "
                f"{missing[0]}=YOUR_COLUMN)"
            )

    def index_of(self, column):
        """Position of the file's column `column` (a --group-by name); an error if absent."""
        if column not in self.header:
            raise MfftoolsError(
                f"{self.path}, line 1: no column {column!r}; the columns are "
                f"{', '.join(self.header)}"
            )
        return self.header.index(column)

    def position(self, name):
        """Position of the standard column `name`."""
        return self._columns[name]

    def where(self, line, position):
        """`file, line L, column C (name)` for messages."""
        return f"{self.path}, line {line}, column {position + 1} ({self.header[position]})"

    def rows(self, problems):
        """Yield (line, values) of the records with as many fields as the header; the others
        are added to `problems`."""
        width = len(self.header)
        for line, values in self.records:
            if len(values) != width:
                problems.add(
                    f"{self.path}, line {line}: {len(values)} fields, the header has {width}"
                )
                continue
            yield line, values


class Problems:
    """Errors found while checking a whole index; raised together, the first few listed."""

    def __init__(self):
        self.found = []

    def add(self, message):
        self.found.append(message)

    def raise_any(self):
        if not self.found:
            return
        shown = self.found[:_LISTED_PROBLEMS]
        more = len(self.found) - len(shown)
        raise MfftoolsError(
            "\n".join(shown) + (f"\n... and {more} more problems" if more else "")
        )


def _delimiter(text, expected, path):
    """The extension's delimiter, or the other one when the header row holds only that."""
    header = text.split("\n", 1)[0]
    other = "\t" if expected == "," else ","
    if other in header and expected not in header:
        logger.info("%s: the header row is %s-separated; reading it so", path,
                    "tab" if other == "\t" else "comma")
        return other
    return expected


def read_text(path):
    """A file's UTF-8 text (a byte-order mark allowed); errors name the file and the line."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise MfftoolsError(f"{path}: cannot read ({error.strerror})") from error
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise MfftoolsError(f"{path}, line {line}: not UTF-8 text ({error.reason})") from error


def write_table(path, header, rows):
    """A CSV file (header row, then `rows`), written atomically; returns the path."""
    from mfftools.files import write_text

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return write_text(path, buffer.getvalue())
