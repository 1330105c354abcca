"""The HTML page: every cell escaped, and the whole report rendered by a real browser (headless
Chromium): images load, tables hold the JSON."""
import base64
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from mfftools.reporting.build import write_report
from mfftools.reporting.document import Card, Gallery, Report, Section, Statements, Thumbnail
from mfftools.reporting.html import render_html
from mfftools.reporting.tables import Table, fmt_rate
from result_builders import instance_result, pair_result, write_json

CHROMIUM = next(
    (shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
     if shutil.which(name)),
    None,
)
# CI installs Chromium (.ci/run), so there a missing browser is a failure, not a skip.
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"), reason="needs Chromium (apt-get install chromium)"
)


def test_every_cell_escaped_under_its_block():
    table = Table("Accuracy", "Group", ["m<1>", "m|2"], ["Accuracy (%)", "TAR"])
    table.add_row("G1", ["95.43", "0.6123", "2.8437", "-"])
    report = Report(title="T", sources=[("m<1>", "pair", "p.json")],
                    sections=[Section("S", [table])], notes=["a note"])
    html = render_html(report)
    assert '<th class="block" colspan="2">m&lt;1&gt;</th>' in html
    assert ('<tr><td class="label">G1</td><td>95.43</td><td>0.6123</td><td>2.8437</td>'
            '<td>-</td>') in html
    assert "<li>a note</li>" in html


def test_gallery_embeds_jpegs_and_names_the_images_it_leaves_out():
    jpeg = b"\xff\xd8\xff\xe0 a JPEG's first bytes"
    card = Card([("a <b>", [Thumbnail("x/1.jpg", jpeg)]), ("c & d", [Thumbnail("x/<2>.jpg")])],
                "score 0.9")
    report = Report(title="T", sources=[], sections=[Section("S", [Gallery("G", [card], "n")])])
    html = render_html(report)
    data = base64.b64encode(jpeg).decode()
    assert (f'<img alt="x/1.jpg" title="x/1.jpg" src="data:image/jpeg;base64,{data}">'
            in html)
    assert '<span class="where">x/&lt;2&gt;.jpg</span>' in html
    assert "a &lt;b&gt;<br>" in html and "c &amp; d<br>" in html and "<div>score 0.9</div>" in html
    assert html.count("data:image/jpeg") == 1


def test_summary_then_contents_linking_to_every_heading():
    report = Report(title="T", sources=[], notes=["a note"], summary="m: hardest group G2.",
                    sections=[Section("Pair protocol (10-fold verification per group)"),
                              Section("Instance protocol: identity similarity and ROC")])
    html = render_html(report)
    links = re.findall(r'<li><a href="#([^"]+)">', html)
    assert links == re.findall(r'<h2 id="([^"]+)">', html) == [
        "pair-protocol-10-fold-verification-per-group",
        "instance-protocol-identity-similarity-and-roc",
        "left-out-and-why",
    ]
    summary = '<p class="summary"><b>Summary.</b> m: hardest group G2.</p>'
    assert html.index("<h1>") < html.index(summary) < html.index("<nav>") < html.index("<h2")


def test_warnings_above_the_summary_and_statements_escaped():
    statements = Statements("Significance", ["a <b> & c."], note="n")
    report = Report(title="T", sources=[], warnings=["WARNING: <not> the same"], summary="s",
                    sections=[Section("S", [statements])])
    html = render_html(report)
    warning = '<div class="warning">WARNING: &lt;not&gt; the same</div>'
    assert html.index("<h1>") < html.index(warning) < html.index('<p class="summary">')
    assert '<ul class="statements">\n<li>a &lt;b&gt; &amp; c.</li>\n</ul>' in html


# Marks each image with whether it decoded, once the page has loaded.
PROBE = """<script>
window.addEventListener("load", () => {
  for (const img of document.images)
    img.setAttribute("data-loaded", img.complete && img.naturalWidth > 0 ? "yes" : "no");
  document.body.setAttribute("data-probed", String(document.images.length));
});
</script>"""


def _chromium(tmp_path, *args):
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


class _Tables(HTMLParser):
    """Captions and cell texts of every table, and the attributes of every image."""

    def __init__(self):
        super().__init__()
        self.tables, self.images, self.body = {}, [], {}
        self._caption = self._row = self._cell = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "body":
            self.body = attrs
        elif tag == "img":
            self.images.append(attrs)
        elif tag == "caption":
            self._caption = ""
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data
        elif self._caption is not None:
            self._caption += data

    def handle_endtag(self, tag):
        if tag == "caption":
            self._current = self.tables.setdefault(self._caption, [])
            self._caption = None
        elif tag in ("td", "th"):
            self._row.append(self._cell.strip())
            self._cell = None
        elif tag == "tr":
            self._current.append(self._row)


def _rows(table):
    return {row[0]: row[1:] for row in table[2:]}


@needs_chromium
def test_report_renders_in_chromium(tmp_path, result_files):
    out = tmp_path / "report"
    files = write_report(result_files, out, bootstrap=200, seed=0)
    probe = out / "probe.html"
    probe.write_text(files.html.read_text().replace("</body>", PROBE + "</body>"))

    dom = _chromium(tmp_path, "--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
    page = _Tables()
    page.feed(dom)
    assert page.body.get("data-probed") == str(len(files.figures))
    # pair: accuracy, ROC, DET; instance: means, FMR, rates, similarity, ROC, DET, score
    # distributions
    assert len(files.figures) == 10
    assert [img.get("data-loaded") for img in page.images] == ["yes"] * len(files.figures)
    assert all(img["src"].startswith("data:image/png;base64,") for img in page.images)

    a_inst, a_pair, b_inst, b_pair = (json.loads(p.read_text()) for p in result_files)
    pair = _rows(page.tables["Pair protocol: accuracy per group (%)"])
    for name in a_pair["group_names"]:
        assert pair[name][0] == f"{100 * a_pair['groups'][name]['accuracy']:.2f}"
        assert pair[name][4] == f"{a_pair['eer'][name]:.4f}"  # model-a's EER; model-b has none
        assert pair[name][5] == f"{100 * b_pair['groups'][name]['accuracy']:.2f}"
    assert pair["Mean"][0] == f"{a_pair['mean_accuracy']:.2f}"
    assert pair['STD'][5] == f"{b_pair['std']:.2f}"
    assert pair["SER"][0] == f"{a_pair['ser']:.4f}"

    caption = "Instance protocol at FPR 1e-02, bisection"
    assert page.tables[caption][0][1:] == ["model-a", "model-b"]
    instance = _rows(page.tables[caption])
    for k, data in enumerate((a_inst, b_inst)):
        entry = data["results"][0]
        assert instance["Threshold"][2 * k] == f"{entry['threshold']:.6f}"
        assert instance["TPR"][2 * k] == f"{entry['tpr']:.4f}"
        assert instance["Instance TPR mean"][2 * k] == f"{entry['instance']['tpr_mean']:.4f}"
        assert instance["Instance TPR std"][2 * k] == f"{entry['instance']['tpr_std']:.4f}"
        assert instance["Instance FPR mean"][2 * k] == f"{fmt_rate(entry['instance']['fpr_mean'])}"
    # Indian's low TPR is marked where per-identity rows allow the tests (model-a)
    groups = _rows(page.tables["Groups at FPR 1e-02, bisection"])
    indian = a_inst["results"][0]["groups"]["Indian"]["tpr_mean"]
    assert groups["Indian"][0] == f"{indian:.4f}\u2020"
    assert groups["Indian"][8] == f"{b_inst['results'][0]['groups']['Indian']['tpr_mean']:.4f}"
    # intervals only where per-identity rows exist (model-a), and they hold the estimate
    low, high = (float(x) for x in instance["Instance TPR mean"][1].strip("[]").split(", "))
    assert low < a_inst["results"][0]["instance"]["tpr_mean"] < high
    assert instance["Instance TPR mean"][3] == "-"
    fairness = _rows(page.tables["Fairness at FPR 1e-02, bisection"])
    assert fairness["GARBE"] == [f"{a_inst['results'][0]['fairness']['garbe']:.4f}",
                                 f"{b_inst['results'][0]['fairness']['garbe']:.4f}"]

    scores = _rows(page.tables["Score distributions per group"])  # model-a's alone
    genuine = a_inst["score_distributions"]["genuine"]
    assert scores["All"][:3] == [f"{genuine['all']['mean']:.4f}", f"{genuine['all']['std']:.4f}",
                                 str(genuine["all"]["n"])]
    assert scores["Indian"][6] == f"{a_inst['score_distributions']['shift']['genuine']['Indian']:.4f}"

    shot = tmp_path / "report.png"
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,4000",
              "--virtual-time-budget=10000", files.html.as_uri())
    with Image.open(shot) as image:
        assert image.size == (1280, 4000)
        pixels = np.asarray(image.convert("L"), dtype=np.float64)
    # the top of the page holds text and tables, the page below figures: neither blank
    assert pixels[:800].std() > 10 and pixels[800:].std() > 10


# Records how wide the page and each table are, once the page has loaded.
WIDTHS = """<script>
window.addEventListener("load", () => {
  const body = document.body;
  body.setAttribute("data-page", document.documentElement.scrollWidth + "/" + window.innerWidth);
  body.setAttribute("data-tables", Array.from(document.querySelectorAll("div.wide")).map(
    (box) => box.scrollWidth <= box.clientWidth ? "fits" : "scrolls").join(","));
});
</script>"""


@needs_chromium
@pytest.mark.parametrize("n_groups", [4, 8, 12])
def test_many_groups_read_in_chromium(tmp_path, rng, n_groups):
    """Subgroups such as Caucasian-Female: no table scrolls sideways, none runs to a column of
    4 x groups rows, and the page is drawn (screenshot)."""
    names = [f"{e}-{g}" for e in ("African", "Asian", "Caucasian", "Indian", "Hispanic",
                                  "MiddleEastern") for g in ("Female", "Male")][:n_groups]
    paths = [write_json(tmp_path / "inst.json",
                        instance_result(rng, "m", groups=names, n_per_group=8)),
             write_json(tmp_path / "pair.json", pair_result(rng, "m", groups=names))]
    out = tmp_path / "report"
    files = write_report(paths, out, bootstrap=50, permutations=99, seed=0)
    probe = out / "probe.html"
    probe.write_text(files.html.read_text().replace("</body>", WIDTHS + "</body>"))
    page = _Tables()
    page.feed(_chromium(tmp_path, "--window-size=1280,2000", "--virtual-time-budget=10000",
                        "--dump-dom", probe.as_uri()))
    scrolled, width = (int(value) for value in page.body["data-page"].split("/"))
    assert scrolled <= width
    assert set(page.body["data-tables"].split(",")) == {"fits"}
    assert len(_rows(page.tables["Groups at FPR 1e-02, bisection"])) == n_groups
    assert max(len(table) for table in page.tables.values()) <= n_groups + 20
    shot = tmp_path / "report.png"
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,3000",
              "--virtual-time-budget=10000", files.html.as_uri())
    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("L"), dtype=np.float64)
    # text, tables and figures all the way down, and the right edge as empty as the margin
    assert all(pixels[top:top + 500].std() > 10 for top in range(0, 3000, 500))
    assert pixels[:, -45:-20].std() < 5  # (the scroll bar is the last 12 pixels)
