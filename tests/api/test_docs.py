"""docs/python-api.md runs as written: its Python blocks in order, in one namespace, each
printing exactly the text block that follows it (when one does)."""
import contextlib
import io
import re
from pathlib import Path

PAGE = Path(__file__).resolve().parents[2] / "docs" / "python-api.md"
BLOCK = re.compile(r"```(python|text)\n(.*?)```", re.S)


def examples():
    """(code, the output it shows or None) of each example after the page's first (a sketch
    of names only)."""
    blocks = BLOCK.findall(PAGE.read_text())
    found = []
    for k, (kind, text) in enumerate(blocks):
        if kind == "python":
            shown = blocks[k + 1][1] if k + 1 < len(blocks) and blocks[k + 1][0] == "text" \
                else None
            found.append((text, shown))
    return found[1:]


def test_the_examples_run_and_print_what_the_page_shows(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {}
    found = examples()
    assert len(found) >= 8
    for number, (code, shown) in enumerate(found, start=1):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(code, f"{PAGE.name}, example {number}", "exec"), namespace)
        if shown is not None:
            assert printed.getvalue() == shown, f"example {number}"
