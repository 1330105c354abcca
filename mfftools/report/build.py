"""Result JSONs in, report folder out: report.html, report.md and the figures as PNGs."""
import logging
from dataclasses import dataclass
from pathlib import Path

from mfftools.errors import MfftoolsError
from mfftools.files import write_text
from mfftools.report.bootstrap import bootstrap_instance
from mfftools.report.calibration import calibration_sections
from mfftools.report.document import Report, Section
from mfftools.report.figures import Figure, FigureWriter
from mfftools.report.html import render_html
from mfftools.report.markdown import render_markdown
from mfftools.report.results import (
    ResultFile,
    load_results,
    per_identity_rates,
    score_distributions,
)
from mfftools.report.significance import excludes_others, permutation_test
from mfftools.report.summary import summarise
from mfftools.report.tables import (
    cmc_table,
    entries_at,
    fairness_table,
    identification_table,
    instance_table,
    operating_points,
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
    figures: list
    report: Report


def write_report(result_paths, out_dir, bootstrap=1000, seed=0, title="mfftools report",
                 names=()):
    """Build the report of `result_paths` (instance, pair, identification and calibration JSONs,
    any mix) into `out_dir`.

    `bootstrap` is the number of resamples for the confidence intervals (0 disables them);
    `seed` makes them reproducible. `names` names models explicitly, as (model, [path, ...]).
    """
    if bootstrap < 0:
        raise MfftoolsError(f"--bootstrap must be 0 or more, not {bootstrap}")
    results = load_results(result_paths, names)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise MfftoolsError(f"cannot create the report folder {out_dir}: {error}") from None
    figures = FigureWriter(out_dir)
    report = Report(
        title=title, sources=[(r.model, r.protocol, r.path) for r in results]
    )
    pair_results = [r for r in results if r.protocol == "pair"]
    instance_results = [r for r in results if r.protocol == "instance"]
    identification_results = [r for r in results if r.protocol == "identification"]
    calibration_results = [r for r in results if r.protocol == "calibration"]
    if pair_results:
        report.sections.append(_pair_section(pair_results, figures))
    first_pairs, first_intervals = [], {}
    if instance_results:
        sections, (first_pairs, first_intervals) = _instance_sections(
            instance_results, figures, bootstrap, seed
        )
        report.sections += sections
    first_searches = []
    if identification_results:
        report.sections += _identification_sections(identification_results, figures)
        first_searches = entries_at(identification_results,
                                    operating_points(identification_results)[0])
    report.sections += calibration_sections(calibration_results, instance_results, bootstrap,
                                            seed)
    report.summary = summarise(pair_results, first_pairs, first_intervals, first_searches)
    report.notes = list(dict.fromkeys(figures.notes))
    html_path = write_text(out_dir / "report.html", render_html(report))
    md_path = write_text(out_dir / "report.md", render_markdown(report))
    items = [item for section in report.sections for item in section.items]
    drawn = [item for item in items if isinstance(item, Figure)]
    logger.info("report with %d tables and %d figures in %s",
                len(items) - len(drawn), len(drawn), out_dir)
    return ReportFiles(html=html_path, markdown=md_path, figures=drawn, report=report)


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
        sections, _ = _instance_sections(results, figures, n_resamples=0, seed=0)
    for note in figures.notes:
        logger.warning(note)
    return [item.path for section in sections for item in section.items
            if isinstance(item, Figure)]


def _pair_section(results, figures):
    section = Section("Pair protocol (10-fold verification per group)")
    section.items.append(pair_table(results))
    section.items.append(figures.pair_accuracy(results))
    roc = figures.roc(results, "pair")
    if roc is not None:
        section.items.append(roc)
    return section


def _instance_sections(results, figures, n_resamples, seed):
    """The instance sections, and (pairs, intervals) of the first operating point."""
    sections, first = [], None
    for point in operating_points(results):
        pairs = entries_at(results, point)
        intervals, significance = _intervals(pairs, n_resamples, seed, figures.notes)
        first = first or (pairs, intervals)
        slug = f"fpr{point[0]:.0e}_{point[1]}"
        section = Section(f"Instance protocol at target FPR {point[0]:.0e} ({point[1]})")
        section.items.append(instance_table(pairs, intervals, significance))
        section.items.append(figures.group_means(pairs, intervals, slug))
        section.items.append(fairness_table(pairs))
        for figure in (figures.fmr_heatmaps(pairs, slug), figures.per_identity_rates(pairs, slug)):
            if figure is not None:
                section.items.append(figure)
        sections.append(section)
    similarity = Section("Instance protocol: identity similarity and ROC")
    similarity.items.append(similarity_table(results))
    similarity.items.append(figures.similarity(results))
    roc = figures.roc(results, "instance")
    if roc is not None:
        similarity.items.append(roc)
    sections.append(similarity)
    scores = _score_section(results, figures)
    if scores is not None:
        sections.append(scores)
    return sections, first


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
    curves = Section("Open-set identification (1:N): CMC and FNIR vs FPIR")
    curves.items.append(cmc_table(results))
    curves.items.append(figures.cmc(results))
    det = figures.det(results)
    if det is not None:
        curves.items.append(det)
    sections.append(curves)
    return sections


def _intervals(pairs, n_resamples, seed, notes):
    """({model: bootstrap intervals}, {model: significance}) at one operating point; a note for
    each model without per-identity rows. Empty when `n_resamples` is 0."""
    intervals, significance = {}, {}
    if not n_resamples:
        return intervals, significance
    for result, entry in pairs:
        columns = per_identity_rates(result, entry)
        if columns is not None:
            found = bootstrap_instance(columns, result.group_names, n_resamples=n_resamples,
                                       seed=seed)
            intervals[result.model] = found
            significance[result.model] = {
                "permutation": permutation_test(columns, n_resamples=n_resamples, seed=seed),
                "excludes_others": excludes_others(columns, result.group_names, found),
            }
        else:
            notes.append(
                f"No confidence intervals or significance for {result.model}: the result has no "
                "'per_identity' rows."
            )
    return intervals, significance
