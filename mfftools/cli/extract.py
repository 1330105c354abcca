"""`mfftools extract`: a model's embeddings of an RFW zip or a folder of .bin files, to HDF5."""
import sys
from pathlib import Path

import click

# The names of mfftools.models.iresnet.ARCHS, without importing torch for --help.
ARCHS = ("r10-mini", "r18", "r34", "r50", "r100", "r200")
# A shell's exit status for a command stopped by Ctrl-C (128 + SIGINT).
INTERRUPTED_EXIT_CODE = 130


@click.command("extract")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--model", "model_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Checkpoint: ours, an insightface backbone.pth, or a MixFairFace state_dict.")
@click.option("--arch", type=click.Choice(ARCHS),
              help="IResNet depth; inferred from the checkpoint when not given.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Embeddings file to write (HDF5).")
@click.option("--batch-size", default=128, show_default=True, type=click.IntRange(min=1))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=0),
              help="Image-decoding worker processes.")
@click.option("--device", default="auto", show_default=True,
              type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--no-flip", is_flag=True,
              help="Embed the images only, without adding the embedding of their mirror image.")
@click.option("--fp16", "--amp", "amp", is_flag=True,
              help="Float16 autocast (CUDA only); embeddings are stored as float32.")
@click.option("--skip-bad-images", is_flag=True,
              help="Leave out undecodable images (a pair with one loses both) and list them.")
@click.option("--resume", is_flag=True,
              help="Continue an interrupted extraction into the same --out file.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def command(source, model_path, arch, out_path, batch_size, workers, device, no_flip, amp,
            skip_bad_images, resume, no_progress):
    """Embed every image of SOURCE with the model and write an embeddings file.

    SOURCE is an RFW instance zip (rows are images, `images` layout, for inst-eval) or a folder
    of <Group>_test.bin files (rows are pairs of images, `pairs` layout, for pair-eval).
    Embeddings are f(x) + f(mirrored x) unless --no-flip.
    """
    from mfftools.embeddings import open_embeddings
    from mfftools.extract import run_extraction

    try:
        report = run_extraction(
            source, model_path, out_path, arch=arch, batch_size=batch_size, workers=workers,
            device=device, flip=not no_flip, amp=amp, skip_bad_images=skip_bad_images,
            resume=resume, progress=not no_progress,
        )
    except KeyboardInterrupt:
        click.echo(_interrupted(out_path), err=True)
        sys.exit(INTERRUPTED_EXIT_CODE)
    written = open_embeddings(report.path)
    attrs = written.attrs
    content = (
        f"{written.n_rows} embeddings of dim {written.dim} ({written.layout} layout, "
        f"groups {', '.join(written.group_names)})"
    )
    if report.already_complete:
        click.echo(f"{report.path} is already complete: {content}; nothing to resume")
    elif report.rows_before:
        click.echo(
            f"resumed after {report.rows_before} rows: wrote "
            f"{report.rows - report.rows_before} more, {content} in {report.path}"
        )
    else:
        click.echo(f"wrote {content} to {report.path}")
    click.echo(
        f"model {attrs['model']} (sha256 {attrs['checkpoint_sha256'][:12]}), "
        f"flip {'on' if attrs['flip'] else 'off'}, amp {'on' if attrs['amp'] else 'off'}"
    )
    skipped = int(attrs.get("n_skipped_images", 0))
    if skipped:
        names = list(attrs.get("skipped_images", []))
        pairs = ""
        if "n_skipped_pairs" in attrs:
            pairs = f" ({int(attrs['n_skipped_pairs'])} pairs dropped)"
        click.echo(f"skipped {skipped} bad images{pairs}:")
        for name in names:
            click.echo(f"  {name}")
        if len(names) < skipped:
            click.echo(f"  ... and {skipped - len(names)} more (see the log)")


def _interrupted(out_path):
    from mfftools.extract import interrupted_progress

    progress = interrupted_progress(out_path)
    if progress is None:
        return f"interrupted before any embedding was written to {out_path}; nothing to resume"
    written, expected = progress
    return (
        f"interrupted: {out_path} holds {written} of {expected} embeddings; run the same "
        "command with --resume to continue where it stopped"
    )
