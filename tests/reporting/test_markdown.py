"""The Markdown document: one header cell per model and column, pipes escaped."""
from mfftools.reporting.document import Card, Gallery, Report, Section, Statements, Thumbnail
from mfftools.reporting.markdown import render_markdown
from mfftools.reporting.tables import Table


def test_header_names_model_and_column_and_pipes_are_escaped():
    table = Table("Accuracy", "Group", ["m<1>", "m|2"], ["Accuracy (%)", "TAR"])
    table.add_row("G1", ["95.43", "0.6123", "2.8437", "-"])
    report = Report(title="T", sources=[("m<1>", "pair", "p.json")],
                    sections=[Section("S", [table])], notes=["a note"])
    markdown = render_markdown(report)
    header = "| Group | m<1>: Accuracy (%) | m<1>: TAR | m\\|2: Accuracy (%) | m\\|2: TAR |"
    assert header in markdown
    assert "| G1 | 95.43 | 0.6123 | 2.8437 | - |" in markdown
    assert "- a note" in markdown



def test_summary_then_contents_linking_to_githubs_heading_anchors():
    report = Report(title="T", sources=[], notes=["a note"], summary="m: hardest group G2.",
                    sections=[Section("Instance protocol at target FPR 1e-04 (bisection)")])
    lines = render_markdown(report).splitlines()
    assert lines[:7] == [
        "# T", "", "**Summary.** m: hardest group G2.", "", "**Contents**", "",
        "1. [Instance protocol at target FPR 1e-04 (bisection)]"
        "(#instance-protocol-at-target-fpr-1e-04-bisection)",
    ]
    assert lines[7] == "2. [Left out, and why](#left-out-and-why)"
    assert "## Instance protocol at target FPR 1e-04 (bisection)" in lines


def test_warnings_first_and_statements_as_a_list():
    statements = Statements("Significance at FPR 1e-03, exact",
                            ["m: the groups differ (p = 0.01)."], note="How they are made.")
    report = Report(title="T", sources=[], warnings=["WARNING: not the same | data"],
                    summary="s.", sections=[Section("S", [statements])])
    lines = render_markdown(report).splitlines()
    assert lines[2] == "> **WARNING: not the same | data**"
    assert lines.index("**Summary.** s.") > 2
    start = lines.index("**Significance at FPR 1e-03, exact**")
    assert lines[start + 1:start + 5] == ["", "- m: the groups differ (p = 0.01).", "",
                                          "How they are made."]


def test_gallery_as_a_list_of_paths_without_image_data():
    card = Card([("a", [Thumbnail("x/1.jpg", b"\xff\xd8 JPEG")]), ("b", [Thumbnail("x/2.jpg")])],
                "score 0.9")
    report = Report(title="T", sources=[], sections=[Section("S", [Gallery("G", [card], "n")])])
    lines = render_markdown(report).splitlines()
    start = lines.index("**G** (thumbnails in report.html)")
    assert lines[start:start + 5] == ["**G** (thumbnails in report.html)", "",
                                      "- score 0.9. a: `x/1.jpg`; b: `x/2.jpg`", "", "n"]
