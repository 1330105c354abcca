"""`mfftools ident-eval`: open-set identification (1:N) per group, from embeddings files.

Under torchrun every rank reads the files and scores its share of the searches; rank 0 prints and
writes the files.
"""
from pathlib import Path

import click

from mfftools.cli.engine_options import (
    allow_degenerate_option,
    calibration_option,
    degenerate_note,
    engine_options,
    load_calibration,
    name_model,
    record_calibration,
    run_on_ranks,
)
from mfftools.errors import MfftoolsError


def _ranks(value):
    try:
        ranks = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of integers") from None
    if not ranks or min(ranks) < 1:
        raise click.BadParameter("ranks must be integers of at least 1, e.g. 1,5,10,20")
    return ranks


@click.command("ident-eval")
@click.argument("embeddings_file", required=False,
                type=click.Path(dir_okay=False, path_type=Path))
@click.option("--gallery", type=click.Path(dir_okay=False, path_type=Path),
              help="Gallery embeddings file (every identity a template), with --probes.")
@click.option("--probes", type=click.Path(dir_okay=False, path_type=Path),
              help="Probe embeddings file (every image a search), with --gallery.")
@click.option("--match-by", type=click.Choice(["name", "label"]),
              help="How a search finds its template with --gallery/--probes: by identity name "
              "(default; both files need names) or by integer label (only when both files were "
              "labelled together).")
@click.option("--gallery-images", type=click.IntRange(min=1),
              help="Images per template when one file is split (default 1).")
@click.option("--fpir", "targets", multiple=True, type=float, default=(1e-2,), show_default=True,
              help="Target FPIR; repeat for several.")
@click.option("--rank", default=1, show_default=True, type=click.IntRange(min=1),
              help="Rank R of FNIR(t, R).")
@click.option("--ranks", default="1,5,10,20", show_default=True,
              help="Ranks of the CMC, comma-separated.")
@click.option("--rank-ties", type=click.Choice(["optimistic", "pessimistic"]),
              default="optimistic", show_default=True,
              help="Templates tying with the mate: behind it (optimistic) or ahead of it.")
@engine_options("Searches and templates")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the results (JSON) here.")
@click.option("--plots", "plots_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write the false-positive matrix, CMC and FNIR vs FPIR figures (PNG) into "
              "this folder.")
@click.option("--csv", "csv_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write the group tables and the ROC/DET points as CSV files into this folder.")
@allow_degenerate_option
@calibration_option
def command(embeddings_file, gallery, probes, match_by, gallery_images, targets, rank, ranks,
            rank_ties, tile, device, precision, name, json_path, plots_dir, csv_dir,
            allow_degenerate, calibration_file):
    """Open-set identification (1:N), NIST FRVT style: FNIR and FPIR per group at one global
    threshold for each target FPIR, the CMC per group and the false-positive matrix.

    EMBEDDINGS_FILE is split into a gallery and searches (see docs/ident-eval.md); or give
    --gallery G.h5 --probes P.h5.
    """
    from mfftools.embeddings import open_embeddings
    from mfftools.evaluation.identification import evaluate_identification
    from mfftools.files import write_results

    if (embeddings_file is None) == (gallery is None):
        raise MfftoolsError("give one embeddings file to split, or --gallery G.h5 --probes P.h5")
    if (gallery is None) != (probes is None):
        raise MfftoolsError("--gallery and --probes go together")
    if gallery is None and match_by is not None:
        raise MfftoolsError("--match-by applies to --gallery G.h5 --probes P.h5; one file split "
                            "into a gallery has one set of labels")
    if gallery is not None and gallery_images is not None:
        raise MfftoolsError("--gallery-images applies to one file split into a gallery; with "
                            "--gallery every image of an identity joins its template")
    ranks = _ranks(ranks)

    def evaluate(device, info):
        first = open_embeddings(gallery or embeddings_file, layout="images")
        second = open_embeddings(probes, layout="images") if probes is not None else None
        calibration = load_calibration(calibration_file, first, second)
        return first, evaluate_identification(
            first, second, gallery_images=gallery_images or 1, targets=targets, rank=rank,
            ranks=ranks, tile=tile, device=device, precision=precision, progress=True,
            dist_info=info, match_by=match_by, rank_ties=rank_ties,
            allow_degenerate=allow_degenerate, calibration=calibration)

    (first, result), info = run_on_ranks(device, evaluate)
    if not info.is_main:
        return
    result["source"] = str(embeddings_file) if embeddings_file else {
        "gallery": str(gallery), "probes": str(probes)}
    record_calibration(result, calibration_file)
    if calibration_file is not None:
        entry = result["calibration"]
        click.echo(f"calibrated scores ({calibration_file}: {entry['method']}, "
                   f"{entry['calibrator']}): every threshold is a confidence in [0, 1]")
    name_model(result, name, first)
    click.echo(format_summary(result))
    if json_path is not None:
        click.echo(f"results written to {write_results(result, json_path)}")
    if csv_dir is not None:
        from mfftools.reporting.csv_tables import write_csv_tables

        for path in write_csv_tables(result, csv_dir):
            click.echo(f"table written to {path}")
    if plots_dir is not None:
        from mfftools.reporting.build import write_figures

        for path in write_figures(result, plots_dir, embeddings_file or probes):
            click.echo(f"figure written to {path}")


_TIES = {"optimistic": "behind it", "pessimistic": "ahead of it"}


def _rate(value, width):
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.4f}"


def format_summary(result):
    """The results as readable text: per target, FNIR and FPIR per group; then the CMC."""
    names = result["group_names"]
    width = max(8, *(len(name) for name in names))
    matched = "" if result.get("match_by") is None else f" (matched by {result['match_by']})"
    lines = [
        f"{result['n_templates']} templates, {result['n_mated']} mated{matched} and "
        f"{result['n_nonmated']} non-mated searches; FNIR at rank {result['rank']} "
        f"(ties with the mate {_TIES[result.get('rank_ties', 'optimistic')]})",
    ]
    for entry in result["results"]:
        lines += [
            "",
            f"target FPIR {entry['target_fpir']:g}: threshold {entry['threshold']:.6f}, "
            f"FNIR {_rate(entry['fnir'], 0)}, FPIR {_rate(entry['fpir'], 0)}",
            f"{'group':<{width}} {'mated':>7} {'non-mated':>10} {'FNIR':>8} {'FPIR':>8}",
        ]
        for name in names:
            stats = entry["groups"][name]
            lines.append(f"{name:<{width}} {stats['n_mated']:>7} {stats['n_nonmated']:>10} "
                         f"{_rate(stats['fnir'], 8)} {_rate(stats['fpir'], 8)}")
        fair = entry["fairness"]
        if degenerate_note(result):
            lines.append(f"max/geomean: {degenerate_note(result)}")
            continue
        lines.append(
            "max/geomean: FNIR " + ("-" if fair["fnir_max_geomean"] is None
                                    else f"{fair['fnir_max_geomean']:.3f}")
            + ", FPIR " + ("-" if fair["fpir_max_geomean"] is None
                           else f"{fair['fpir_max_geomean']:.3f}")
        )
    lines += ["", f"{'CMC':<{width}} " + " ".join(f"{'rank ' + str(k):>8}" for k in result["ranks"])]
    for name in ["all"] + names:
        lines.append(f"{name:<{width}} " + " ".join(_rate(v, 8) for v in result["cmc"][name]))
    return "\n".join(lines)
