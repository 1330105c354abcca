"""What the evaluations on the shared engine (inst-eval, ident-eval) have in common on the
command line: the engine's options, the torchrun job around them, the model's name."""
from pathlib import Path

import click

from mfftools.errors import MfftoolsError


def engine_options(what):
    """--tile, --device and --precision; `what` names the rows of a tile."""
    def decorate(command):
        for option in reversed((
            click.option("--tile", default=8192, show_default=True, type=int,
                         help=f"{what} per tile side: one tile of screened scores is held at a "
                              "time."),
            click.option("--device", default="auto", show_default=True,
                         type=click.Choice(["auto", "cpu", "cuda"])),
            click.option("--precision", default="auto", show_default=True,
                         type=click.Choice(["auto", "fp32", "tf32", "bf16", "fp16"]),
                         help="Precision of the products that screen scores; every precision "
                              "gives the same results (auto: the fastest this hardware runs "
                              "natively)."),
            click.option("--name", help="The model's name in the results file and reports "
                         "(default: the file's `model` attribute, else its checkpoint's file "
                         "name)."),
        )):
            command = option(command)
        return command

    return decorate


def allow_degenerate_option(command):
    """--allow-degenerate, shared by every evaluation."""
    return click.option(
        "--allow-degenerate", is_flag=True,
        help="Evaluate embeddings found degenerate (near-identical rows, no spread of impostor "
        "scores, NaN) instead of refusing them; their fairness measures are not printed."
    )(command)


def run_on_ranks(requested_device, evaluate):
    """`evaluate(device, dist_info)` in this torchrun job (or as the only process).

    Returns (result, dist_info). Bad input, which every rank reads alike, is reported by rank 0
    alone (the others exit 1 quietly); a rank that fails otherwise fails the job with a message.
    """
    from mfftools import dist

    device = dist.resolve_device(requested_device, dist.info_from_env().local_rank)
    info = dist.init(device.type)
    try:
        return evaluate(device, info), info
    except MfftoolsError:
        if info.is_main:
            raise
        raise SystemExit(1) from None
    except RuntimeError as error:
        if not info.distributed:
            raise
        raise MfftoolsError(
            f"distributed evaluation failed on rank {info.rank} of {info.world_size} ({error}); "
            "no results were written"
        ) from error
    finally:
        if info.distributed:
            dist.shutdown()


def calibration_option(command):
    """--calibration CAL.npz: evaluate calibrated scores."""
    return click.option(
        "--calibration", "calibration_file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Evaluate calibrated scores: a calibration file of `mfftools calibrate fit` for "
        "this model (beta or isotonic calibrator); every threshold, count and rate is then of "
        "the calibrated confidence, exactly, tile by tile.")(command)


def announce_calibration(result, calibration_file):
    """Say that the scores were calibrated, and by what, before the results' table."""
    if calibration_file is not None:
        entry = result["calibration"]
        click.echo(f"calibrated scores ({calibration_file}: {entry['method']}, "
                   f"{entry['calibrator']}): every threshold is a confidence in [0, 1]")
