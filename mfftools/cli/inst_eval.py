"""`mfftools inst-eval`: the instance protocol on an images-layout embeddings file.

Under torchrun (`torchrun --nproc_per_node N -m mfftools inst-eval ...`) every rank reads the file
and scores its share of the tiles; rank 0 prints and writes the files.
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
    from mfftools.embeddings import open_embeddings
    from mfftools.evaluation.instance import evaluate_instance
    from mfftools.evaluation.instance_files import write_per_identity_csv
    from mfftools.files import write_results

    methods = ("bisection", "exact") if method == "both" else (method,)

    def evaluate(device, info):
        embeddings = open_embeddings(embeddings_file, layout="images")
        calibration = load_calibration(calibration_file, embeddings)
        return embeddings, evaluate_instance(
            embeddings, targets=targets, methods=methods, tile=tile, device=device,
            precision=precision, progress=True, dist_info=info,
            reference_group=reference_group, det=det, allow_degenerate=allow_degenerate,
            calibration=calibration)

    (embeddings, result), info = run_on_ranks(device, evaluate)
    if not info.is_main:
        return
    result["source"] = str(embeddings_file)
    record_calibration(result, calibration_file)
    if calibration_file is not None:
        entry = result["calibration"]
        click.echo(f"calibrated scores ({calibration_file}: {entry['method']}, "
                   f"{entry['calibrator']}): every threshold is a confidence in [0, 1]")
    name_model(result, name, embeddings)
    click.echo(format_summary(result))
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


def _number(value, spec):
    """`value` formatted by `spec`; None as a dash in the same width, so columns stay aligned."""
    if value is None:
        width = "".join(ch for ch in spec.split(".")[0] if ch.isdigit())
        return f"{'-':>{width or 1}}"
    return format(value, spec)


def format_summary(result):
    """The results as readable text: one table per target and method, then similarity."""
    lines = [
        f"{result['n_images']} images, {result['n_identities']} identities "
        f"({result['n_single_image_identities']} with one image), dim {result['dim']}",
    ]
    header = f"{'':<14}{'TPR mean':>10}{'TPR std':>10}{'FPR mean':>11}{'FPR std':>11}" \
             f"{'FMR':>11}{'FMR rel':>9}{'FNMR':>10}"
    for entry in result["results"]:
        state = "converged" if entry["converged"] else "not converged"
        lines += [
            "",
            f"target FPR {entry['target_fpr']:g} ({entry['method']}, {state}): "
            f"threshold {entry['threshold']:.6f}, TPR {_number(entry['tpr'], '.6f')}, "
            f"FPR {entry['fpr']:.3e}",
            header,
        ]
        rows = [("instance", entry["instance"])] + list(entry["groups"].items())
        for name, stats in rows:
            lines.append(
                f"{name:<14}{_number(stats['tpr_mean'], '10.6f')}{_number(stats['tpr_std'], '10.6f')}"
                f"{_number(stats['fpr_mean'], '11.3e')}{_number(stats['fpr_std'], '11.3e')}"
                f"{_number(stats.get('fmr'), '11.3e') if 'fmr' in stats else '':>11}"
                f"{_number(stats.get('fmr_relative'), '9.3f') if 'fmr' in stats else '':>9}"
                f"{_number(stats.get('fnmr'), '10.6f') if 'fnmr' in stats else '':>10}"
            )
        lines.append("FMR: impostor pairs with both images in the group (NIST's demographically "
                     "matched FMR); FMR rel: relative to "
                     f"{entry['reference_group'] or '-'}")
        fair = entry["fairness"]
        if degenerate_note(result):
            lines.append(f"fairness: {degenerate_note(result)}")
        elif all(value is None for value in fair.values()):
            lines.append("fairness: n/a (fewer than two groups with genuine and impostor pairs)")
        else:
            lines.append("fairness: " + ", ".join(
                f"{key} {_number(value, '.4f')}" for key, value in fair.items()))
    lines += ["", f"{'similarity':<14}{'intra mean*':>12}{'intra std*':>11}{'inter mean':>11}"
                  f"{'inter std':>10}"]
    for name, stats in result["similarity"].items():
        lines.append(
            f"{name:<14}{_number(stats['intra_mean_multi'], '12.6f')}"
            f"{_number(stats['intra_std_multi'], '11.6f')}"
            f"{_number(stats['inter_mean'], '11.6f')}{_number(stats['inter_std'], '10.6f')}"
        )
    lines.append("* over identities with at least two images (one image scores 1 by construction)")
    if "eer" in result:
        lines.append("EER (matched impostors): " + ", ".join(
            f"{name} {_number(value, '.4f')}" for name, value in result["eer"].items()))
    engine = result["engine"]
    lines.append(
        f"screened in {engine['precision']} (bound {engine['screening_bound']:.3g}), "
        f"{engine['n_rescored_pairs']} pairs rescored canonically"
    )
    return "\n".join(lines)
