"""`mfftools ident-eval`: open-set identification (1:N) per group, from embeddings files.

Under torchrun every rank reads the files and scores its share of the searches; rank 0 prints and
writes the files.
"""
import sys
from pathlib import Path

import click

from mfftools.cli.engine_options import (
    allow_degenerate_option,
    announce_calibration,
    calibration_option,
    engine_options,
    run_on_ranks,
)
from mfftools.errors import MfftoolsError
from mfftools.evaluation.text import identification_summary


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
    from mfftools.api.evaluations import identification_results
    from mfftools.files import write_results

    if (embeddings_file is None) == (gallery is None):
        raise MfftoolsError("give one embeddings file to split, or --gallery G.h5 --probes P.h5")
    if (gallery is None) != (probes is None):
        raise MfftoolsError("--gallery and --probes go together")
    ranks = _ranks(ranks)

    def evaluate(device, info):
        return identification_results(
            gallery or embeddings_file, probes, gallery_images=gallery_images, fpir=targets,
            rank=rank, ranks=ranks, rank_ties=rank_ties, match_by=match_by,
            calibration=calibration_file, allow_degenerate=allow_degenerate, tile=tile,
            device=device, precision=precision, name=name, progress=sys.stderr.isatty(),
            dist_info=info)

    result, info = run_on_ranks(device, evaluate)
    if not info.is_main:
        return
    announce_calibration(result, calibration_file)
    click.echo(identification_summary(result))
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
