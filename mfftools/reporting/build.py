"""Result JSONs in, report folder out: report.html, report.md, claims.json and the figures as
PNGs."""
import logging
from dataclasses import dataclass
from pathlib import Path

from mfftools.errors import MfftoolsError
from mfftools.evaluation.sanity import describe as describe_degenerate
from mfftools.evaluation.skipped import describe as describe_skipped
from mfftools.files import write_text
from mfftools.reporting.bootstrap import bootstrap_instance
from mfftools.reporting.calibration import calibration_sections
from mfftools.reporting.claims import (
    ALPHA,
    adjusted_p_values,
    group_claims,
    model_claims,
    write_claims,
)
from mfftools.reporting.document import Report, Section, Statements
from mfftools.reporting.figures import Figure, FigureWriter
from mfftools.reporting.gallery import gallery_sections
from mfftools.reporting.html import render_html
from mfftools.reporting.markdown import render_markdown
from mfftools.reporting.results import (
    ResultFile,
    entry_label,
    images_of,
    ladder_of,
    load_results,
    per_identity_rates,
    point_of,
    score_distributions,
)
from mfftools.reporting.same_images import SAME, check_same_images
from mfftools.reporting.significance import group_tests
from mfftools.reporting.summary import summarise
from mfftools.reporting.template import template_sections
from mfftools.reporting.tables import (
    Table,
    cmc_table,
    entries_at,
    error_rate_table,
    fairness_table,
    group_table,
    identification_table,
    instance_table,
    operating_points,
    pair_heading,
    pair_table,
    score_distribution_table,
    similarity_table,
)

logger = logging.getLogger(__name__)


@dataclass
class ReportFiles:
    """Where the report went, and what it contains."""

    html: Path
    markdown: Path
    claims: Path
    figures: list
    report: Report


# Shuffles of each permutation test: enough for Holm over 2 x 100 hypotheses to reach 0.05.
PERMUTATIONS = 4999


def write_report(result_paths, out_dir, bootstrap=1000, seed=0, title="mfftools report",
                 names=(), permutations=PERMUTATIONS, alpha=ALPHA, images=True):
    """Build the report of `result_paths` (instance, pair, identification, template and
    calibration JSONs, any mix) into `out_dir`: report.html, report.md, claims.json and the
    figures.

    `bootstrap` is the number of resamples for the confidence intervals (0: none),
    `permutations` the number of shuffles of each permutation test (0: no significance
    statements), `alpha` the error rate each statement keeps; `seed` makes both reproducible.
    `names` names models explicitly, as (model, [path, ...]). `images`: show thumbnails of the
    faces behind the numbers in the galleries (read from the embeddings' sources); without them
    the galleries name each image by its path.
    """
    if bootstrap < 0:
        raise MfftoolsError(f"--bootstrap must be 0 or more, not {bootstrap}")
    if permutations < 0:
        raise MfftoolsError(f"--permutations must be 0 or more, not {permutations}")
    if not 0 < alpha < 1:
        raise MfftoolsError(f"--alpha must be between 0 and 1, not {alpha}")
    results = load_results(result_paths, names)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise MfftoolsError(f"cannot create the report folder {out_dir}: {error}") from None
    figures = FigureWriter(out_dir)
    report = Report(
        title=title, sources=[(r.model, r.protocol, _source(r)) for r in results]
    )
    checks = check_same_images(results)
    for check in checks:
        if check.verdict != SAME:
            report.warnings.append(f"WARNING: {check.message}")
            logger.warning(check.message)
    if checks:
        report.sections.append(_images_section(results, checks))
    pair_results = [r for r in results if r.protocol == "pair"]
    instance_results = [r for r in results if r.protocol == "instance"]
    identification_results = [r for r in results if r.protocol == "identification"]
    calibration_results = [r for r in results if r.protocol == "calibration"]
    if pair_results:
        report.sections.append(_pair_section(pair_results, figures))
    analysis = _Analysis(bootstrap, permutations, seed, alpha)
    first_pairs = []
    if instance_results:
        report.sections += _instance_sections(instance_results, figures, analysis)
        first_pairs = entries_at(instance_results, operating_points(instance_results)[0])
    first_searches = []
    if identification_results:
        report.sections += _identification_sections(identification_results, figures)
        first_searches = entries_at(identification_results,
                                    operating_points(identification_results)[0])
    template_results = [r for r in results if r.protocol == "template"]
    if template_results:
        report.sections += template_sections(template_results)
    report.sections += calibration_sections(
        calibration_results, instance_results, bootstrap, seed,
        identification_results=identification_results, template_results=template_results)
    galleries, gallery_notes = gallery_sections(instance_results, identification_results, images)
    report.sections += galleries
    first_claims = [claim for claim in analysis.claims
                    if first_pairs and claim.point == point_of(first_pairs[0][1])]
    report.summary = summarise(pair_results, first_pairs, first_claims, first_searches, alpha)
    report.notes = list(dict.fromkeys(figures.notes + analysis.notes + gallery_notes))
    claims_path = write_claims(out_dir / "claims.json", analysis.claims)
    html_path = write_text(out_dir / "report.html", render_html(report))
    md_path = write_text(out_dir / "report.md", render_markdown(report))
    items = [item for section in report.sections for item in section.items]
    drawn = [item for item in items if isinstance(item, Figure)]
    logger.info("report with %d tables and %d figures, %d significance statements, in %s",
                sum(isinstance(item, Table) for item in items), len(drawn),
                len(analysis.claims), out_dir)
    return ReportFiles(html=html_path, markdown=md_path, claims=claims_path, figures=drawn,
                       report=report)


def write_figures(result, out_dir, source):
    """The report's figures of one results dict, as PNG files in `out_dir`; returns their paths.

    For the `--plots` of `inst-eval`, `pair-eval` and `ident-eval`: `result` is the evaluation's
    dict, `source` the file it was computed from (its stem names the model when the dict has no
    "model"). A figure whose data the result lacks is left out with a warning.
    """
    source = Path(source)
    model = result.get("model") or source.stem
    results = [ResultFile(path=source, protocol=result["protocol"], model=model, data=result)]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = FigureWriter(out_dir)
    if result["protocol"] == "pair":
        sections = [_pair_section(results, figures)]
    elif result["protocol"] == "identification":
        sections = _identification_sections(results, figures)
    else:
        sections = _instance_sections(results, figures, _Analysis(0, 0, 0, ALPHA))
    for note in figures.notes:
        logger.warning(note)
    return [item.path for section in sections for item in section.items
            if isinstance(item, Figure)]


def _images_section(results, checks):
    """What each result file was computed on, and the verdict of each protocol's comparison."""
    section = Section("Data each model was evaluated on")
    table = Table(
        title="Images (pairs) each result was computed on",
        row_header="Model",
        blocks=["Recorded in the results file"],
        columns=["Protocol", "Images / pairs", "Image paths", "Identity names", "Pair labels"],
        note=" ".join(check.message for check in checks)
        + " Digests: sha256 of the sorted image paths, of the sorted identity names, and of the "
        "pairs' labels and groups in file order (first 12 hex digits); - where the file does not "
        "record it.",
    )
    for result in results:
        images = images_of(result) or {}
        table.add_row(result.model, [result.protocol] + [
            "-" if images.get(key) is None else str(images[key])[:12]
            for key in ("n", "paths_sha256", "identities_sha256", "labels_sha256")])
    section.items.append(table)
    return section


def _pair_section(results, figures):
    section = Section(pair_heading(results))
    section.items.append(pair_table(results))
    section.items.append(figures.pair_accuracy(results))
    for figure in (figures.roc(results, "pair"), figures.det(results, "pair")):
        if figure is not None:
            section.items.append(figure)
    return section


def _instance_sections(results, figures, analysis):
    """The instance sections: one per operating point, then similarity, ROC and DET, then score
    distributions."""
    sections = []
    for point in operating_points(results):
        pairs = entries_at(results, point)
        intervals, significance, claims = analysis.run(pairs)
        slug = f"fpr{point[0]:.0e}_{point[1]}"
        section = Section(f"Instance protocol at target FPR {point[0]:.0e} ({point[1]})")
        section.items.append(instance_table(pairs, intervals, significance))
        section.items.append(group_table(pairs, intervals, significance))
        if claims:
            section.items.append(Statements(
                title=f"Significance at {entry_label(pairs[0][1])}",
                sentences=[claim.statement for claim in claims],
                note=STATEMENTS_NOTE.format(alpha=analysis.alpha)))
        section.items.append(figures.group_means(pairs, intervals, slug))
        section.items.append(fairness_table(pairs))
        section.items.append(error_rate_table(pairs))
        for figure in (figures.fmr_heatmaps(pairs, slug), figures.per_identity_rates(pairs, slug)):
            if figure is not None:
                section.items.append(figure)
        sections.append(section)
    similarity = Section("Instance protocol: identity similarity")
    similarity.items.append(similarity_table(results))
    similarity.items.append(figures.similarity(results))
    curves = [(what, figure) for what, figure in (("ROC", figures.roc(results, "instance")),
                                                  ("DET", figures.det(results, "instance")))
              if figure is not None]
    similarity.items += [figure for _, figure in curves]
    # the heading names the curves the section holds, and no others
    similarity.title += "".join(f"{', ' if k < len(curves) - 1 else ' and '}{what}"
                                for k, (what, _) in enumerate(curves))
    sections.append(similarity)
    scores = _score_section(results, figures)
    if scores is not None:
        sections.append(scores)
    return sections


STATEMENTS_NOTE = (
    "Every statement is a permutation test over identities whose error rate under its null is at "
    "most α = {alpha:g} whatever the number of groups: 'the groups differ' (range of the group "
    "means; Holm over TPR and FPR), a group against the other groups' identities pooled (Holm "
    "over every group and rate, made only where the groups differ; printed only when "
    "significant), and models on the same images against each other (paired swaps of each "
    "identity's two TPRs; Holm over the comparisons). Each is in claims.json.")


class _Analysis:
    """Intervals and significance statements of instance operating points, gathered over the
    report (`claims`, `notes`)."""

    def __init__(self, n_bootstrap, n_permutations, seed, alpha):
        self.n_bootstrap, self.n_permutations = n_bootstrap, n_permutations
        self.seed, self.alpha = seed, alpha
        self.claims, self.notes = [], []

    def run(self, pairs):
        """({model: bootstrap intervals}, {model: adjusted p-values}, [Claim]) at one operating
        point; a note for each model without per-identity rows. Results of degenerate
        embeddings get neither intervals nor statements (a note names them)."""
        intervals, significance, claims = {}, {}, []
        if not (self.n_bootstrap or self.n_permutations):
            return intervals, significance, claims
        degenerate = [result.model for result, _ in pairs if describe_degenerate(result.data)]
        if degenerate:
            self.notes.append(f"No confidence intervals or significance for "
                              f"{', '.join(dict.fromkeys(degenerate))}: degenerate embeddings.")
        pairs = [(result, entry) for result, entry in pairs
                 if not describe_degenerate(result.data)]
        for result, entry in pairs:
            columns = per_identity_rates(result, entry)
            if columns is None:
                self.notes.append(
                    f"No confidence intervals or significance for {result.model}: the result has "
                    "no 'per_identity' rows.")
                continue
            if self.n_bootstrap:
                intervals[result.model] = bootstrap_instance(
                    columns, result.group_names, n_resamples=self.n_bootstrap, seed=self.seed,
                    ladder=ladder_of(result, entry))
            if self.n_permutations:
                tests = group_tests(columns, n_resamples=self.n_permutations, seed=self.seed)
                differ, versus_rest = adjusted_p_values(tests)
                significance[result.model] = {"differ": differ, "versus_rest": versus_rest,
                                              "alpha": self.alpha}
                claims += group_claims(result, entry, tests, self.alpha)
        if self.n_permutations:
            compared, notes = model_claims(pairs, self.n_permutations, self.seed, self.alpha)
            claims += compared
            self.notes += notes
        self.claims += claims
        return intervals, significance, claims


def _score_section(results, figures):
    """The score distributions of the results that carry them; a note names the others."""
    missing = [result.model for result in results if score_distributions(result) is None]
    if missing:
        figures.notes.append(f"Score distributions (table and figure) not shown for "
                             f"{', '.join(missing)}: the result has no 'score_distributions'.")
    found = [result for result in results if score_distributions(result) is not None]
    if not found:
        return None
    section = Section("Instance protocol: score distributions per group")
    section.items.append(score_distribution_table(found))
    section.items.append(figures.score_distributions(found))
    return section


def _identification_sections(results, figures):
    """A section per target FPIR (the threshold table, the false-positive matrix), then the CMC
    and the FNIR vs FPIR curves."""
    sections = []
    for target in operating_points(results):
        pairs = entries_at(results, target)
        section = Section(f"Open-set identification (1:N) at target FPIR {target:.0e}")
        section.items.append(identification_table(pairs))
        section.items.append(figures.false_positive_heatmaps(pairs, f"fpir{target:.0e}"))
        sections.append(section)
    curves = Section("Open-set identification (1:N): CMC")
    curves.items.append(cmc_table(results))
    curves.items.append(figures.cmc(results))
    det = figures.det(results, "identification")
    if det is not None:
        curves.items.append(det)
        curves.title += " and FNIR vs FPIR"
    sections.append(curves)
    return sections


def _source(result_file):
    """A result file as the report lists it: its path, what extraction left out, and whether
    its embeddings were degenerate."""
    notes = [note for note in (describe_skipped(result_file.data),
                               describe_degenerate(result_file.data)) if note]
    return f"{result_file.path} ({'; '.join(notes)})" if notes else result_file.path
