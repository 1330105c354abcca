"""What a report holds, independent of how it is rendered: a summary, sections of tables and
figures, and notes."""
import re
from dataclasses import dataclass, field

NOTES_TITLE = "Left out, and why"


@dataclass
class Statements:
    """Sentences printed as a list under a heading (the significance statements of a section)."""

    title: str
    sentences: list
    note: str = ""


@dataclass
class Thumbnail:
    """One image of a gallery: where it is (its path in its source) and its JPEG, None when it
    is left out or could not be read."""

    where: str
    jpeg: bytes = None


@dataclass
class Card:
    """Images shown together: panels side by side (each a label over its thumbnails; one
    identity's images, or the two images of a pair), and a caption under them."""

    panels: list  # (label, [Thumbnail, ...])
    caption: str


@dataclass
class Gallery:
    """Cards under a heading (the faces behind a number)."""

    title: str
    cards: list
    note: str = ""


@dataclass
class Section:
    title: str
    items: list = field(default_factory=list)  # Table, Figure, Statements or Gallery, in order


@dataclass
class Report:
    title: str
    sources: list  # (model, protocol, path) of each result file
    sections: list = field(default_factory=list)
    notes: list = field(default_factory=list)  # what was left out (figures, intervals, tests), why
    summary: str = ""  # one paragraph: hardest groups and gaps between groups
    warnings: list = field(default_factory=list)  # shown above everything: data not comparable

    def contents(self):
        """The headings under the title, in order: the sections, then the notes if any."""
        return [section.title for section in self.sections] + ([NOTES_TITLE] if self.notes else [])


def anchor(title):
    """The id of a heading, as GitHub makes it for Markdown headings: lower case, punctuation
    dropped, spaces as hyphens. The HTML page uses the same ids, so links work in both."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
