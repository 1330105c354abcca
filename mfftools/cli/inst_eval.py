"""`mfftools inst-eval`: the instance protocol on an images-layout embeddings file.

Under torchrun (`torchrun --nproc_per_node N -m mfftools inst-eval ...`) every rank reads the file
and scores its share of the tiles; rank 0 prints and writes the files.
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
from mfftools.evaluation.text import instance_summary


@click.command("inst-eval")
@click.argument("embeddings_file", type=click.Path(dir_okay=False, path_type=Path))
@engine_options("Rows")
@click.option("--fpr", "targets", multiple=True, type=float, default=(1e-5,), show_default=True,
              help="Target FPR; repeat for several (one pass serves them all).")
@click.option("--method", default="bisection", show_default=True,
              type=click.Choice(["bisection", "exact", "both"]),
              help="Threshold search: the paper's bisection, the exact threshold, or both.")
@click.option("--det", is_flag=True,
              help="Add each group's DET curve (FNMR against matched FMR) and EER: one more "
              "pass per group over its own pairs.")
@click.option("--reference-group", metavar="NAME",
              help="The group relative FMR divides by (default: the group with the lowest "
              "matched FMR).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the results (JSON) here.")
@click.option("--per-identity", "csv_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the per-identity table (CSV) here.")
@click.option("--plots", "plots_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write per-identity, similarity and ROC figures (PNG) into this folder.")
@click.option("--csv", "csv_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write the group tables and the ROC/DET points as CSV files into this folder.")
@allow_degenerate_option
@calibration_option
def command(embeddings_file, tile, device, precision, name, targets, method, det,
            reference_group, json_path, csv_path, plots_dir, csv_dir, allow_degenerate,
            calibration_file):
    """Instance-level TPR/FPR at one global threshold, per identity and per group, with fairness
    measures and identity similarity, in one streaming pass."""
    from mfftools.api.evaluations import instance_results
    from mfftools.evaluation.instance_files import write_per_identity_csv
    from mfftools.files import write_results

    def evaluate(device, info):
        return instance_results(
            embeddings_file, fpr=targets, method=method, det=det,
            reference_group=reference_group, calibration=calibration_file,
            allow_degenerate=allow_degenerate, tile=tile, device=device, precision=precision,
            name=name, progress=sys.stderr.isatty(), dist_info=info)

    result, info = run_on_ranks(device, evaluate)
    if not info.is_main:
        return
    announce_calibration(result, calibration_file)
    click.echo(instance_summary(result))
    if json_path is not None:
        click.echo(f"results written to {write_results(result, json_path)}")
    if csv_path is not None:
        click.echo(f"per-identity table written to {write_per_identity_csv(result, csv_path)}")
    if csv_dir is not None:
        from mfftools.reporting.csv_tables import write_csv_tables

        for path in write_csv_tables(result, csv_dir):
            click.echo(f"table written to {path}")
    if plots_dir is not None:
        from mfftools.reporting.build import write_figures

        for path in write_figures(result, plots_dir, embeddings_file):
            click.echo(f"figure written to {path}")
