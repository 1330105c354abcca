"""A report as one self-contained HTML page: inline CSS, figures embedded as base64 PNGs and
gallery thumbnails as base64 JPEGs."""
import base64
from html import escape

from mfftools.reporting.document import NOTES_TITLE, Gallery, Statements, anchor
from mfftools.reporting.figures import Figure
from mfftools.reporting.tables import Table

STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.3em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 3px 8px; text-align: right; }
th { background: #eef; } td.label, th.label { text-align: left; }
th.block { text-align: center; }
caption { caption-side: top; text-align: left; font-weight: bold; padding-bottom: 4px; }
p.note, figcaption { font-size: 0.85em; color: #555; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
ul.notes { color: #844; }
p.summary { background: #f4f4fa; padding: 0.6em 0.8em; border-left: 3px solid #99c; }
div.warning { background: #fdecea; color: #8a1c1c; padding: 0.6em 0.8em;
  border-left: 4px solid #c62828; font-weight: bold; margin: 0.5em 0; }
div.wide { overflow-x: auto; } ul.statements li { margin: 0.3em 0; }
div.gallery { display: flex; flex-wrap: wrap; gap: 8px; margin: 0.5em 0 1.5em 0; }
div.card { border: 1px solid #ddd; padding: 4px; font-size: 0.8em; }
div.panel { display: inline-block; vertical-align: top; margin-right: 6px; max-width: 400px; }
div.panel img { width: 96px; margin-right: 2px; }
span.where { display: inline-block; width: 96px; margin-right: 2px; font-size: 0.8em; color: #777;
  word-break: break-all; border: 1px dashed #bbb; vertical-align: top; }
"""


def render_html(report):
    """The page as a string; it loads nothing from the network or the disk."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(report.title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(report.title)}</h1>",
    ]
    parts += [f"<div class=\"warning\">{escape(warning)}</div>" for warning in report.warnings]
    if report.summary:
        parts.append(f"<p class=\"summary\"><b>Summary.</b> {escape(report.summary)}</p>")
    parts.append("<nav><b>Contents</b><ol>")
    parts += [f"<li><a href=\"#{anchor(title)}\">{escape(title)}</a></li>"
              for title in report.contents()]
    parts += [
        "</ol></nav>",
        "<table class=\"sources\"><caption>Result files</caption>"
        "<tr><th class=\"label\">Model</th><th class=\"label\">Protocol</th>"
        "<th class=\"label\">File</th></tr>",
    ]
    for model, protocol, path in report.sources:
        parts.append(
            f"<tr><td class=\"label\">{escape(model)}</td><td class=\"label\">{escape(protocol)}"
            f"</td><td class=\"label\">{escape(str(path))}</td></tr>"
        )
    parts.append("</table>")
    for section in report.sections:
        parts.append(_heading(section.title))
        for item in section.items:
            if isinstance(item, Table):
                parts.append(_table(item))
            elif isinstance(item, Figure):
                parts.append(_figure(item))
            elif isinstance(item, Statements):
                parts.append(_statements(item))
            elif isinstance(item, Gallery):
                parts.append(_gallery(item))
            else:
                raise TypeError(f"cannot render {type(item).__name__}")
    if report.notes:
        parts.append(_heading(NOTES_TITLE) + "<ul class=\"notes\">")
        parts += [f"<li>{escape(note)}</li>" for note in report.notes]
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _heading(title):
    return f"<h2 id=\"{anchor(title)}\">{escape(title)}</h2>"


def _table(table):
    span = len(table.columns)
    rows = [
        f"<div class=\"wide\"><table><caption>{escape(table.title)}</caption>",
        f"<tr><th class=\"label\" rowspan=\"2\">{escape(table.row_header)}</th>"
        + "".join(f"<th class=\"block\" colspan=\"{span}\">{escape(b)}</th>" for b in table.blocks)
        + "</tr>",
        "<tr>" + "".join(f"<th>{escape(c)}</th>" for _ in table.blocks for c in table.columns)
        + "</tr>",
    ]
    for label, cells in table.rows:
        rows.append(
            f"<tr><td class=\"label\">{escape(label)}</td>"
            + "".join(f"<td>{escape(cell)}</td>" for cell in cells)
            + "</tr>"
        )
    rows.append("</table></div>")
    if table.note:
        rows.append(f"<p class=\"note\">{escape(table.note)}</p>")
    return "\n".join(rows)


def _statements(statements):
    parts = [f"<p><b>{escape(statements.title)}</b></p>", "<ul class=\"statements\">"]
    parts += [f"<li>{escape(sentence)}</li>" for sentence in statements.sentences]
    parts.append("</ul>")
    if statements.note:
        parts.append(f"<p class=\"note\">{escape(statements.note)}</p>")
    return "\n".join(parts)


def _figure(figure):
    data = base64.b64encode(figure.path.read_bytes()).decode("ascii")
    return (
        f"<figure><img alt=\"{escape(figure.title)}\" src=\"data:image/png;base64,{data}\">"
        f"<figcaption><b>{escape(figure.title)}.</b> {escape(figure.caption)}</figcaption></figure>"
    )


def _gallery(gallery):
    parts = [f"<p><b>{escape(gallery.title)}</b></p>", "<div class=\"gallery\">"]
    for card in gallery.cards:
        parts.append("<div class=\"card\">")
        for label, thumbnails in card.panels:
            parts.append(f"<div class=\"panel\">{escape(label)}<br>"
                         + "".join(map(_thumbnail, thumbnails)) + "</div>")
        parts.append(f"<div>{escape(card.caption)}</div></div>")
    parts.append("</div>")
    if gallery.note:
        parts.append(f"<p class=\"note\">{escape(gallery.note)}</p>")
    return "\n".join(parts)


def _thumbnail(thumbnail):
    """The image, or where it is when it is left out."""
    if thumbnail.jpeg is None:
        return f"<span class=\"where\">{escape(thumbnail.where)}</span>"
    data = base64.b64encode(thumbnail.jpeg).decode("ascii")
    where = escape(thumbnail.where)
    return f"<img alt=\"{where}\" title=\"{where}\" src=\"data:image/jpeg;base64,{data}\">"
