"""`mfftools calibrate fit | apply | cross-val`: score calibration and fairness mitigation
(FairCal, FSN, GST, Oracle, per-group score normalisation) on the pairs of an embeddings file."""
from pathlib import Path

import click

from mfftools.cli.logs import verbosity_options
from mfftools.evaluation.text import calibration_table

# The names of mfftools.calibration.methods.METHODS and calibrators.KINDS, without numpy for
# --help.
METHODS = ("baseline", "beta", "isotonic", "binning", "faircal", "fsn", "gst", "oracle",
           "group-norm")
CALIBRATORS = ("beta", "isotonic", "binning")
DEFAULT_TARGETS = (1e-3, 1e-2)


def _pairs_arguments(command):
    """EMBEDDINGS and an optional pair list naming its images, with --columns."""
    for decorator in reversed((
        click.argument("embeddings_file", type=click.Path(exists=True, dir_okay=False,
                                                          path_type=Path)),
        click.argument("pair_table", required=False,
                       type=click.Path(exists=True, dir_okay=False, path_type=Path)),
        click.option("--columns", metavar="NAME=COLUMN,...",
                     help="Map the pair list's columns to path1, path2, issame, fold (e.g. "
                     "path1=p1,path2=p2,issame=label)."),
    )):
        command = decorator(command)
    return command


def _fit_options(command):
    """How methods are fitted."""
    for decorator in reversed((
        click.option("--calibrator", default="beta", show_default=True,
                     type=click.Choice(CALIBRATORS),
                     help="The calibration map of every method (beta: Kull et al.'s)."),
        click.option("--clusters", default=100, show_default=True, type=click.IntRange(min=1),
                     help="k-means clusters of faircal and fsn."),
        click.option("--bins", default=25, show_default=True, type=click.IntRange(min=1),
                     help="Equal-mass bins of the binning calibrator and of ECE (FairCal: 25 "
                     "on BFW, 10 on RFW)."),
        click.option("--fit-fpr", default=1e-3, show_default=True,
                     type=click.FloatRange(0, 1, min_open=True, max_open=True),
                     help="Target FPR of the thresholds fsn and gst fit."),
        click.option("--seed", default=0, show_default=True, type=int,
                     help="Seed of the k-means."),
    )):
        command = decorator(command)
    return command


def _check_columns(pair_table, columns):
    if columns is not None and pair_table is None:
        raise click.UsageError("--columns maps the columns of a pair list: give one")


_targets = click.option("--fpr", "targets", multiple=True, type=float, default=DEFAULT_TARGETS,
                        show_default=True,
                        help="Target FPR of the measures; repeat for several.")


@click.group("calibrate")
def command():
    """Calibrate comparison scores and mitigate group bias after the fact: fit a method on
    labelled pairs, apply it, or cross-validate methods over folds (docs/calibrate.md)."""


@command.command("fit", params=verbosity_options())
@_pairs_arguments
@click.option("--method", required=True, type=click.Choice(METHODS))
@_fit_options
@click.option("--out", "out_path", required=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="The calibration file to write (.npz).")
def fit(embeddings_file, pair_table, columns, method, calibrator, clusters, bins, fit_fpr, seed,
        out_path):
    """Fit METHOD on every pair of EMBEDDINGS_FILE (a pairs-layout file, an images-layout file
    with its pair list, or one with PAIR_TABLE naming its images) and write it to --out."""
    from mfftools.api.calibration import calibrate

    _check_columns(pair_table, columns)
    calibration = calibrate(embeddings_file, pair_list=pair_table, columns=columns,
                            method=method, calibrator=calibrator, clusters=clusters, bins=bins,
                            fit_fpr=fit_fpr, seed=seed)
    calibration.save(out_path)
    click.echo(repr(calibration))
    click.echo(f"calibration written to {out_path}")


@command.command("apply", params=verbosity_options())
@click.argument("calibration_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_pairs_arguments
@_targets
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write every pair's raw score, confidence and decision score here (.npz).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the measures of the calibrated pairs here (JSON).")
def apply(calibration_file, embeddings_file, pair_table, columns, targets, out_path, json_path):
    """Apply CALIBRATION_FILE to the pairs of EMBEDDINGS_FILE (of the model it was fitted for)
    and print the measures of the calibrated scores."""
    from mfftools.api.calibration import apply_results, read_pairs
    from mfftools.calibration.store import load
    from mfftools.files import write_results

    calibration = load(calibration_file)
    _check_columns(pair_table, columns)
    embeddings, pair_set = read_pairs(embeddings_file, pair_list=pair_table, columns=columns)
    result, scored, applied = apply_results(calibration, embeddings, pair_set, targets,
                                            calibration_file)
    click.echo(calibration_table(result))
    if out_path is not None:
        _write_scores(out_path, scored, applied)
        click.echo(f"scores written to {out_path}")
    if json_path is not None:
        click.echo(f"results written to {write_results(result, json_path)}")


def _write_scores(path, scored, applied):
    import numpy as np

    from mfftools.files import atomic_output

    with atomic_output(path) as temporary, open(temporary, "wb") as handle:
        np.savez(handle, pair_index=scored.pairs.pair_index, issame=scored.pairs.issame,
                 score=scored.scores, confidence=applied.confidence, decision=applied.decision,
                 fallback=applied.fallback)


@command.command("cross-val", params=verbosity_options())
@_pairs_arguments
@click.option("--method", "methods", required=True, multiple=True, type=click.Choice(METHODS),
              help="A method to compare; repeat for several (baseline: before mitigation).")
@_fit_options
@click.option("--folds", type=click.IntRange(min=2),
              help="Contiguous folds per group for a file without its own folds [10, as RFW].")
@_targets
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the results (JSON) here.")
def cross_val(embeddings_file, pair_table, columns, methods, calibrator, clusters, bins, fit_fpr,
              seed, folds, targets, json_path):
    """Test each fold with every method fitted on the other folds, as FairCal does, and print
    accuracy, false-positive-rate spread and calibration per method, averaged over folds."""
    from mfftools.api.calibration import cross_validation_results
    from mfftools.files import write_results

    _check_columns(pair_table, columns)

    def announce(number, total):
        click.echo(f"fold {number}/{total}", err=True)

    result = cross_validation_results(
        embeddings_file, pair_list=pair_table, columns=columns, methods=methods,
        n_folds=folds, fpr=targets, calibrator=calibrator, clusters=clusters, bins=bins,
        fit_fpr=fit_fpr, seed=seed, on_fold=announce)
    click.echo(calibration_table(result))
    if json_path is not None:
        click.echo(f"results written to {write_results(result, json_path)}")
