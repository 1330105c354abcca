"""A report as Markdown: pipe tables, figures linked as PNG files next to the document; galleries
as lists of their images' paths (the thumbnails are in the HTML page)."""
from mfftools.reporting.document import NOTES_TITLE, Gallery, Statements, anchor
from mfftools.reporting.figures import Figure
from mfftools.reporting.tables import Table


def render_markdown(report):
    """The document as a string; figure links are relative to the report folder."""
    lines = [f"# {report.title}", ""]
    for warning in report.warnings:
        lines += [f"> **{warning}**", ""]
    if report.summary:
        lines += [f"**Summary.** {report.summary}", ""]
    lines += ["**Contents**", ""]
    lines += [f"{k}. [{title}](#{anchor(title)})" for k, title in enumerate(report.contents(), 1)]
    lines += ["", "| Model | Protocol | File |", "|---|---|---|"]
    lines += [f"| {_escape(m)} | {p} | {_escape(str(path))} |" for m, p, path in report.sources]
    for section in report.sections:
        lines += ["", f"## {section.title}"]
        for item in section.items:
            lines.append("")
            if isinstance(item, Table):
                lines += _table(item)
            elif isinstance(item, Figure):
                lines += [f"![{item.title}]({item.path.name})", "", f"*{item.title}.* {item.caption}"]
            elif isinstance(item, Statements):
                lines += [f"**{item.title}**", ""]
                lines += [f"- {sentence}" for sentence in item.sentences]
                if item.note:
                    lines += ["", item.note]
            elif isinstance(item, Gallery):
                lines += _gallery(item)
            else:
                raise TypeError(f"cannot render {type(item).__name__}")
    if report.notes:
        lines += ["", f"## {NOTES_TITLE}", ""] + [f"- {note}" for note in report.notes]
    return "\n".join(lines) + "\n"


def _table(table):
    # Markdown has no column spans: each header cell names its model and column.
    header = [table.row_header] + [
        f"{block}: {column}" if len(table.columns) > 1 else block
        for block in table.blocks
        for column in table.columns
    ]
    lines = [f"**{table.title}**", "", _row(header), "|" + "---|" * len(header)]
    lines += [_row([label] + cells) for label, cells in table.rows]
    if table.note:
        lines += ["", table.note]
    return lines


def _gallery(gallery):
    lines = [f"**{gallery.title}** (thumbnails in report.html)", ""]
    for card in gallery.cards:
        panels = "; ".join(
            f"{label}: " + ", ".join(f"`{thumbnail.where}`" for thumbnail in thumbnails)
            if thumbnails else label for label, thumbnails in card.panels)
        lines.append(f"- {card.caption}. {panels}")
    if gallery.note:
        lines += ["", gallery.note]
    return lines


def _row(cells):
    return "| " + " | ".join(_escape(cell) for cell in cells) + " |"


def _escape(text):
    return text.replace("|", "\\|")
