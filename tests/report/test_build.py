"""The report folder: files, figures, notes and intervals, from hand-made results and from the
evaluations' own result files."""
import json
import re

import numpy as np
from PIL import Image

from embedding_files import write_images_file, write_pairs_file
from mfftools.embeddings import open_embeddings
from mfftools.evaluation.identification import evaluate_identification
from mfftools.evaluation.instance import evaluate_instance
from mfftools.evaluation.pair import evaluate_pairs
from mfftools.files import write_results
from mfftools.report.build import write_figures, write_report
from mfftools.report.results import load_results
from mfftools.report.tables import fmt_rate
from result_builders import identification_result, instance_result, pair_result, write_json


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
    assert not re.search(r'(src|href)="(?!data:|#)', html)
    assert "<title>Compare</title>" in html
    # the summary opens the page: the synthetic results make Indian the hard group
    assert files.report.summary.startswith(
        "model-a, pair protocol: hardest group by accuracy: Indian (")
    assert "model-a, instance protocol at FPR 1e-04, bisection: hardest group by TPR mean: " \
        "Indian (" in files.report.summary
    assert html.index("<b>Summary.</b>") < html.index("<h2")
    markdown = files.markdown.read_text()
    for figure in files.figures:
        assert f"]({figure.path.name})" in markdown
    # model-b carries no extras: each missing figure is a note, not a crash
    notes = "\n".join(files.report.notes)
    assert "model-b: the result has no 'roc' points" in notes
    assert ("Score distributions (table and figure) not shown for model-b: the result has no "
            "'score_distributions'.") in notes
    assert "no 'group_fmr_matrix'" in notes and "No confidence intervals or significance for model-b" in notes
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


def test_significance_of_a_strong_group_effect(tmp_path, result_files):
    # the synthetic model-a lowers Indian's TPR by 0.2 (identities' sd 0.05) and triples its FPR
    files = write_report(result_files[:1], tmp_path / "out", bootstrap=200, seed=0)
    rows = dict(files.report.sections[0].items[0].rows)
    assert rows["Permutation p, group TPR means differ"][0] == f"{1 / 201:.3g}"
    assert rows["Permutation p, group FPR means differ"][0] == f"{1 / 201:.3g}"
    assert rows["Indian TPR mean"][0].endswith("\u2020")
    assert "\u2020" in files.markdown.read_text() and "\u2020" in files.html.read_text()


def test_pair_only_and_instance_only(tmp_path, result_files):
    pair = write_report(result_files[1:2], tmp_path / "pair", bootstrap=0)
    assert [s.title for s in pair.report.sections] == ["Pair protocol (10-fold verification per group)"]
    instance = write_report(result_files[:1], tmp_path / "inst", bootstrap=10)
    assert all(s.title.startswith("Instance") for s in instance.report.sections)
    assert instance.report.notes == []


NAMES = ["African", "Asian", "Caucasian", "Indian"]


def _instance_file(tmp_path, rng):
    identity = np.repeat(np.arange(80), 4)
    group = identity % 4
    centres = rng.normal(size=(80, 32))
    noise = rng.normal(size=(len(identity), 32)) * (0.6 + 0.6 * (group == 0))[:, None]
    path = write_images_file(tmp_path / "inst.h5", (centres[identity] + noise).astype(np.float32),
                             identity, group, NAMES, model="mixfair-r18")
    result = evaluate_instance(open_embeddings(path), targets=(1e-2,),
                               methods=("bisection", "exact"), device="cpu", progress=False)
    result["model"] = "mixfair-r18"
    return write_results(result, tmp_path / "inst.json")


def _pair_file(tmp_path, rng):
    pairs = 4 * 40
    pair_group = np.repeat(np.arange(4), 40)
    issame = np.tile([True, False], pairs // 2)
    first = rng.normal(size=(pairs, 32))
    noise = rng.normal(size=(pairs, 32)) * (0.8 + 0.8 * (pair_group == 0))[:, None]
    second = np.where(issame[:, None], first + noise, rng.normal(size=(pairs, 32)))
    rows = np.empty((2 * pairs, 32), np.float32)
    rows[0::2], rows[1::2] = first, second
    path = write_pairs_file(tmp_path / "pairs.h5", rows, issame, pair_group, NAMES)
    result = evaluate_pairs(open_embeddings(path, layout="pairs"))
    result["model"] = "mixfair-r18"
    out = tmp_path / "pair.json"
    out.write_text(json.dumps(result))
    return out


def _identification_file(tmp_path):
    """ident-eval on the instance embeddings (their African group is the noisy one)."""
    result = evaluate_identification(open_embeddings(tmp_path / "inst.h5"), targets=(0.05, 0.1),
                                     ranks=(1, 5), device="cpu", progress=False)
    result["model"] = "mixfair-r18"
    return write_results(result, tmp_path / "ident.json")


def test_report_of_evaluation_outputs(tmp_path, rng):
    paths = [_instance_file(tmp_path, rng), _pair_file(tmp_path, rng)]
    paths.append(_identification_file(tmp_path))
    files = write_report(paths, tmp_path / "report", bootstrap=100, seed=0)
    # every extra the evaluations write is used: no figure or interval left out
    assert files.report.notes == []
    # pair: 2; per operating point: 3; similarity, ROC, score distributions; per target FPIR:
    # the false-positive matrix; CMC, DET
    assert len(files.figures) == 2 + 3 * 2 + 3 + 2 + 2
    assert [section.title for section in files.report.sections][-3:] == [
        "Open-set identification (1:N) at target FPIR 5e-02",
        "Open-set identification (1:N) at target FPIR 1e-01",
        "Open-set identification (1:N): CMC and FNIR vs FPIR",
    ]

    instance, pair, identification = (f.data for f in load_results(paths))
    markdown = files.markdown.read_text()
    first = identification["results"][0]
    assert f"| FNIR | {fmt_rate(first['fnir'])} |" in markdown
    african = first["groups"]["African"]
    assert (f"| African mated / non-mated searches | {african['n_mated']} / "
            f"{african['n_nonmated']} |") in markdown
    assert f"| African | {fmt_rate(identification['cmc']['African'][0])} | " in markdown
    highest = max(NAMES, key=lambda name: first["groups"][name]["fnir"])
    assert (f"mixfair-r18, 1:N identification at FPIR 5e-02: highest FNIR (rank 1): {highest} "
            f"({fmt_rate(first['groups'][highest]['fnir'])}, ") in files.report.summary
    for name in NAMES:
        assert f"| {name} | {100 * pair['groups'][name]['accuracy']:.2f} |" in markdown
    bisection = instance["results"][0]
    assert f"| Threshold | {bisection['threshold']:.6f} |" in markdown
    assert f"| Instance TPR mean | {bisection['instance']['tpr_mean']:.4f} | [" in markdown
    assert f"| FDR | {bisection['fairness']['fdr']:.4f} |" in markdown
    scores = instance["score_distributions"]
    for name in NAMES:
        genuine, impostor = scores["genuine"][name], scores["impostor"][name]
        assert (f"| {name} | {genuine['mean']:.4f} | {genuine['std']:.4f} | {genuine['n']} | "
                f"{fmt_rate(impostor['mean'])} | {impostor['std']:.4f} | {impostor['n']} | "
                f"{fmt_rate(scores['shift']['genuine'][name])} | "
                f"{fmt_rate(scores['shift']['impostor'][name])} |") in markdown


def test_figures_of_one_result_are_the_reports_figures(tmp_path, rng):
    for protocol, data in (("instance", instance_result(rng, "m")), ("pair", pair_result(rng)),
                           ("identification", identification_result(rng))):
        path = write_json(tmp_path / f"{protocol}.json", data)
        report = write_report([path], tmp_path / f"{protocol}_report", bootstrap=0)
        paths = write_figures(data, tmp_path / f"{protocol}_figures", path)
        assert [p.name for p in paths] == [figure.path.name for figure in report.figures]
        for path, figure in zip(paths, report.figures):
            assert path.read_bytes() == figure.path.read_bytes()
