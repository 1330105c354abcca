"""`mfftools train`: train the MixFair adapter (or a plain IResNet) from a YAML config."""
import json
from pathlib import Path

import click

from mfftools.errors import MfftoolsError


@click.command("train")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="YAML config (configs/*.yaml); when resuming, optional and applied over "
                   "RUN_DIR/config.yaml.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override one config value, e.g. --set optim.lr=0.01 (repeatable).")
@click.option("--resume", metavar="auto|PATH",
              help="Continue a run: 'auto' takes the newest checkpoint in RUN_DIR, or give a checkpoint.")
@click.option("--allow-world-size-change", is_flag=True,
              help="Resume on another number of processes than the checkpoint's (the global "
                   "batch changes at the same learning rate, and so does the data order).")
@click.option("--out", "run_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run folder: config.yaml, checkpoints/, best.pt, metrics.jsonl, train.log, eval/.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def command(config_path, overrides, resume, allow_world_size_change, run_dir, no_progress):
    """Train a face model; works alone or under torchrun (DDP).

    \b
    mfftools synth synth/
    mfftools train --config configs/demo_tiny.yaml --set data.train=synth/TrainingData.zip \\
        --set eval.pair_bin=synth/rfw_bin --out runs/demo
    torchrun --nproc_per_node 4 -m mfftools train --config configs/mixfair_r34_balancedface.yaml \\
        --set data.train=/data/TrainingData.zip --out runs/r34
    """
    from mfftools.dist import info_from_env
    from mfftools.train.config import run_config
    from mfftools.train.trainer import train

    is_main = info_from_env().is_main
    try:
        config = run_config(run_dir, config_path, overrides, resume)
        summary = train(config, run_dir, resume=resume, progress=not no_progress,
                        allow_world_size_change=allow_world_size_change)
    except MfftoolsError:
        if not is_main:  # under torchrun every process meets the same error: rank 0 prints it
            raise click.exceptions.Exit(1) from None
        raise
    if is_main:
        click.echo(json.dumps(summary, indent=2, default=float))
