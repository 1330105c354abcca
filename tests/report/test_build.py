import re

from PIL import Image

from mfftools.report.build import write_report


def test_report_folder_contents(tmp_path, result_files):
    files = write_report(result_files, tmp_path / "out", bootstrap=100, seed=0, title="Compare")
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == sorted(
        ["report.html", "report.md"] + [figure.path.name for figure in files.figures]
    )
    for figure in files.figures:
        with Image.open(figure.path) as image:
            assert image.format == "PNG" and image.width > 300 and image.height > 200
    html = files.html.read_text()
    # self-contained: every image inline, nothing fetched from anywhere
    assert html.count('src="data:image/png;base64,') == len(files.figures)
    assert not re.search(r'(src|href)="(?!data:)', html)
    assert "<title>Compare</title>" in html
    markdown = files.markdown.read_text()
    for figure in files.figures:
        assert f"]({figure.path.name})" in markdown
    # model-b carries no extras: each missing figure is a note, not a crash
    notes = "\n".join(files.report.notes)
    assert "model-b: the result has no 'roc' points" in notes
    assert "no 'group_fmr_matrix'" in notes and "No confidence intervals for model-b" in notes
    assert "model-a" not in notes
    assert "Figures not drawn" in html and "Figures not drawn" in markdown


def test_bootstrap_seeded_and_optional(tmp_path, result_files):
    result_files = result_files[:1]  # model-a's instance result, with per-identity rows
    first = write_report(result_files, tmp_path / "one", bootstrap=50, seed=5).markdown.read_text()
    again = write_report(result_files, tmp_path / "two", bootstrap=50, seed=5).markdown.read_text()
    other = write_report(result_files, tmp_path / "three", bootstrap=50, seed=6).markdown.read_text()
    assert first == again
    assert first != other
    none = write_report(result_files, tmp_path / "four", bootstrap=0)
    assert "95% CI" not in none.markdown.read_text()
    assert "95% CI" in first


def test_pair_only_and_instance_only(tmp_path, result_files):
    pair = write_report(result_files[1:2], tmp_path / "pair", bootstrap=0)
    assert [s.title for s in pair.report.sections] == ["Pair protocol (10-fold verification per group)"]
    instance = write_report(result_files[:1], tmp_path / "inst", bootstrap=10)
    assert all(s.title.startswith("Instance") for s in instance.report.sections)
    assert instance.report.notes == []
