"""What a report holds, independent of how it is rendered: sections of tables and figures."""
from dataclasses import dataclass, field


@dataclass
class Section:
    title: str
    items: list = field(default_factory=list)  # Table or Figure, in reading order


@dataclass
class Report:
    title: str
    sources: list  # (model, protocol, path) of each result file
    sections: list = field(default_factory=list)
    notes: list = field(default_factory=list)  # figures left out and why
