"""The report folder: files, figures, notes and intervals, from hand-made results and from the
evaluations' own result files."""
import copy
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
from mfftools.reporting.build import write_figures, write_report
from mfftools.reporting.claims import KEYS
from mfftools.reporting.results import load_results
from mfftools.reporting.tables import fmt_rate
from result_builders import identification_result, instance_result, pair_result, write_json


def test_report_folder_contents(tmp_path, result_files):
    files = write_report(result_files, tmp_path / "out", bootstrap=100, seed=0, title="Compare",
                         permutations=199)
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == sorted(
        ["report.html", "report.md", "claims.json"] + [f.path.name for f in files.figures]
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
        "model-a, pair protocol: hardest group: Indian (pair accuracy ")
    assert "model-a, instance protocol at FPR 1e-02, bisection: lowest TPR mean: Indian (" \
        in files.report.summary
    assert html.index("<b>Summary.</b>") < html.index("<h2")
    markdown = files.markdown.read_text()
    for figure in files.figures:
        assert f"]({figure.path.name})" in markdown
    # model-b carries no extras: each missing figure is a note, not a crash
    notes = "\n".join(files.report.notes)
    assert "model-b: the result has no 'roc' points" in notes
    assert "instance DET curves not drawn for model-b: the result has no 'det' points" in notes
    assert ("Score distributions (table and figure) not shown for model-b: the result has no "
            "'score_distributions'.") in notes
    assert "no 'group_fmr_matrix'" in notes and "No confidence intervals or significance for model-b" in notes
    assert "Left out, and why" in html and "Left out, and why" in markdown
    # ... nor its images: the report says loudly that it cannot check the models are comparable
    assert files.report.warnings == [
        "WARNING: Cannot check that the instance results of model-a and model-b come from the "
        "same data: some files do not record the number of images, the image paths (sha256), the "
        "identity names (sha256) (compared: nothing); no model comparison is tested. Evaluate "
        "again with this version to record them.",
        "WARNING: Cannot check that the pair results of model-a and model-b come from the same "
        "data: some files do not record the number of pairs, the pairs' labels and groups "
        "(sha256) (compared: nothing); no model comparison is tested. Evaluate again with this "
        "version to record them."]
    assert html.index('<div class="warning">WARNING: Cannot check') < html.index("Summary.")
    assert markdown.index("> **WARNING: Cannot check") < markdown.index("**Summary.**")


def test_claims_json_holds_every_statement_printed(tmp_path, result_files):
    files = write_report(result_files[:1], tmp_path / "out", bootstrap=0, seed=0,
                         permutations=199)
    claims = json.loads(files.claims.read_text())
    assert claims and all(list(claim) == list(KEYS) for claim in claims)
    markdown = files.markdown.read_text()
    for claim in claims:
        assert f"- {claim['statement']}" in markdown
        assert claim["significant"] == (claim["p_value"] <= claim["alpha"])
        assert claim["model"] == "model-a" and claim["protocol"] == "instance"
        assert claim["measure"] in ("tpr_mean at FPR 1e-02, bisection",
                                    "fpr_mean at FPR 1e-02, bisection")
    # the strong synthetic effect: both rates differ, Indian named for each, nobody else
    named = sorted((claim["measure"].split()[0], claim["groups"]) for claim in claims
                   if len(claim["groups"]) == 1)
    assert named == [("fpr_mean", ["Indian"]), ("tpr_mean", ["Indian"])]
    differ = [claim for claim in claims if len(claim["groups"]) == 4]
    assert [claim["significant"] for claim in differ] == [True, True]
    # the summary's significance sentences are the claims' statements, word for word
    for claim in claims:
        assert claim["statement"] in files.report.summary
    assert "sampling noise" not in markdown


def test_bootstrap_seeded_and_optional(tmp_path, result_files):
    result_files = result_files[:1]  # model-a's instance result, with per-identity rows
    first = write_report(result_files, tmp_path / "one", bootstrap=50, seed=5,
                         permutations=99).markdown.read_text()
    again = write_report(result_files, tmp_path / "two", bootstrap=50, seed=5,
                         permutations=99).markdown.read_text()
    other = write_report(result_files, tmp_path / "three", bootstrap=50, seed=6,
                         permutations=99).markdown.read_text()
    assert first == again
    assert first != other
    none = write_report(result_files, tmp_path / "four", bootstrap=0, permutations=0)
    assert "95% CI" not in none.markdown.read_text()
    assert json.loads(none.claims.read_text()) == []
    assert "Significance at" not in none.markdown.read_text()
    assert "95% CI" in first
    # the file carries its FPR ladder: intervals choose the threshold again in each resample
    assert "chosen again in each resample" in first


def test_significance_of_a_strong_group_effect(tmp_path, result_files):
    # the synthetic model-a lowers Indian's TPR by 0.2 and triples its FPR
    files = write_report(result_files[:1], tmp_path / "out", bootstrap=200, seed=0,
                         permutations=199)
    instance, groups = files.report.sections[0].items[:2]
    rows = dict(instance.rows)
    # the smallest p of 199 shuffles, 1 / 200, times 2 rates (Holm)
    assert rows["Groups differ (TPR mean), p"][0] == f"{2 / 200:.3g}"
    assert rows["Groups differ (FPR mean), p"][0] == f"{2 / 200:.3g}"
    rows = dict(groups.rows)
    assert rows["Indian"][0].endswith("\u2020")
    assert not rows["Asian"][0].endswith("\u2020")
    assert "\u2020" in files.markdown.read_text() and "\u2020" in files.html.read_text()


def test_degenerate_embeddings_get_no_statement_and_no_interval(tmp_path, result_files):
    # the same strong group effect, from embeddings the evaluation found degenerate
    data = json.loads(result_files[0].read_text())
    data["degenerate"] = ["near-identical rows (median impostor score 0.9999996)"]
    path = tmp_path / "degenerate.json"
    path.write_text(json.dumps(data))
    files = write_report([path], tmp_path / "out", bootstrap=50, seed=0, permutations=99)
    assert json.loads(files.claims.read_text()) == []
    summary = files.report.summary
    assert "degenerate embeddings (near-identical rows" in summary
    assert "no group comparison is drawn" in summary and "Indian" not in summary
    assert any("No confidence intervals or significance" in note and "degenerate" in note
               for note in files.report.notes)


def test_pair_only_and_instance_only(tmp_path, result_files):
    pair = write_report(result_files[1:2], tmp_path / "pair", bootstrap=0)
    assert [s.title for s in pair.report.sections] == [
        "Pair protocol: verification per group, 10-fold (contiguous folds)"]
    instance = write_report(result_files[:1], tmp_path / "inst", bootstrap=10, permutations=19)
    assert all(s.title.startswith("Instance") for s in instance.report.sections)
    assert instance.report.warnings == []
    # a result that names no embeddings file has no gallery of faces, and the notes say so
    assert instance.report.notes == [
        "Gallery of model-a (instance): left out: the result does not record its embeddings "
        "file ('source')."]


NAMES = ["African", "Asian", "Caucasian", "Indian"]


def _instance_file(tmp_path, rng):
    identity = np.repeat(np.arange(80), 4)
    group = identity % 4
    centres = rng.normal(size=(80, 32))
    noise = rng.normal(size=(len(identity), 32)) * (0.6 + 0.6 * (group == 0))[:, None]
    path = write_images_file(tmp_path / "inst.h5", (centres[identity] + noise).astype(np.float32),
                             identity, group, NAMES, model="mixfair-r18")
    result = evaluate_instance(open_embeddings(path), targets=(1e-2,),
                               methods=("bisection", "exact"), device="cpu", progress=False,
                               det=True)
    result["model"] = "mixfair-r18"
    result["source"] = str(path)  # as inst-eval records it
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
    result["source"] = str(tmp_path / "inst.h5")
    return write_results(result, tmp_path / "ident.json")


def test_report_of_evaluation_outputs(tmp_path, rng):
    paths = [_instance_file(tmp_path, rng), _pair_file(tmp_path, rng)]
    paths.append(_identification_file(tmp_path))
    files = write_report(paths, tmp_path / "report", bootstrap=100, seed=0, permutations=99)
    # every extra the evaluations write is used: no figure, interval or EER left out; the faces
    # are named by their paths, as the embeddings file records no source to read them from
    no_source = (f"no thumbnails: {tmp_path / 'inst.h5'}: the file records no source (attribute "
                 "'source'), so its images cannot be found.")
    assert files.report.notes == [f"Gallery of mixfair-r18 ({protocol}): {no_source}"
                                  for protocol in ("instance", "identification")]
    assert '<span class="where">img_' in files.html.read_text()
    # pair: accuracy, ROC, DET; per operating point: 3; similarity, ROC, DET, score
    # distributions; per target FPIR: the false-positive matrix; CMC, DET
    assert len(files.figures) == 3 + 3 * 2 + 4 + 2 + 2
    # the intervals choose the threshold again from the evaluation's FPR ladder
    assert "chosen again in each resample" in files.markdown.read_text()
    assert [section.title for section in files.report.sections][-5:] == [
        "Open-set identification (1:N) at target FPIR 5e-02",
        "Open-set identification (1:N) at target FPIR 1e-01",
        "Open-set identification (1:N): CMC and FNIR vs FPIR",
        "Faces behind the numbers: mixfair-r18, instance protocol",
        "Faces behind the numbers: mixfair-r18, 1:N",
    ]

    instance, pair, identification = (f.data for f in load_results(paths))
    markdown = files.markdown.read_text()
    first = identification["results"][0]
    assert f"| FNIR | {fmt_rate(first['fnir'])} |" in markdown
    african = first["groups"]["African"]
    assert (f"| African mated / non-mated searches | {african['n_mated']} / "
            f"{african['n_nonmated']} |") in markdown
    assert f"| African | {fmt_rate(identification['cmc']['African'][0])} | " in markdown
    highest = max(first["groups"][name]["fnir"] for name in NAMES)
    assert ("mixfair-r18, 1:N identification at FPIR 5e-02: highest FNIR (rank 1): "
            in files.report.summary)
    assert f"(FNIR {fmt_rate(highest)}, " in files.report.summary
    for name in NAMES:
        assert f"| {name} | {100 * pair['groups'][name]['accuracy']:.2f} |" in markdown
    bisection = instance["results"][0]
    assert f"| Threshold | {bisection['threshold']:.6f} |" in markdown
    african = bisection["groups"]["African"]
    assert (f"| African | {fmt_rate(african['fmr'])} | {african['fmr_relative']:.4f} | "
            f"{fmt_rate(african['fmr_probe_group'])} | {fmt_rate(african['fnmr'])} | "
            f"{fmt_rate(instance['eer']['African'])} |") in markdown
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


def test_models_on_the_same_images_are_compared(tmp_path, rng):
    first = instance_result(rng, "a", n_per_group=40)
    second = copy.deepcopy(first)
    second["model"] = "b"
    per_identity = second["results"][0]["per_identity"]
    # b: every identity's TPR pulled halfway to 0.95, so its spread over identities halves
    per_identity["tpr"] = [None if t is None else 0.95 + (t - 0.95) / 2
                           for t in per_identity["tpr"]]
    paths = [write_json(tmp_path / "a.json", first), write_json(tmp_path / "b.json", second)]
    files = write_report(paths, tmp_path / "out", bootstrap=0, permutations=199)
    assert files.report.warnings == []
    data = files.report.sections[0]
    assert data.title == "Data each model was evaluated on"
    assert "The instance results of a and b were computed on the same data (compared: the " \
        "number of images, the image paths (sha256), the identity names (sha256))." \
        in data.items[0].note
    claims = json.loads(files.claims.read_text())
    compared = [claim for claim in claims if claim["model"] == "a vs b"]
    assert [claim["measure"] for claim in compared] == [
        "tpr_std at FPR 1e-02, bisection", "tpr_range at FPR 1e-02, bisection"]
    std = compared[0]
    assert std["significant"] and std["statement"].startswith(
        "Instance protocol at FPR 1e-02, bisection: b's TPR std over identities (")
    assert std["statistic"] > 0  # a's minus b's
    assert std["statement"] in files.report.summary


def test_headings_name_only_the_curves_their_sections_hold(tmp_path, rng, result_files):
    full = write_report(result_files[:1], tmp_path / "full", bootstrap=0, permutations=0)
    assert "Instance protocol: identity similarity, ROC and DET" in full.report.contents()
    bare = write_report(result_files[2:3], tmp_path / "bare", bootstrap=0, permutations=0)
    assert "Instance protocol: identity similarity" in bare.report.contents()
    assert not any("ROC" in title or "DET" in title for title in bare.report.contents())
    searches = write_json(tmp_path / "ident.json", identification_result(rng, extras=False))
    plain = write_report([searches], tmp_path / "ident", bootstrap=0)
    assert plain.report.contents()[-2] == "Open-set identification (1:N): CMC"
