"""`mfftools extract`: a model's embeddings of a face data set, to an HDF5 file."""
import sys
from pathlib import Path

import click

from mfftools.cli.options import model_options, preprocessing, source_options, source_settings

# A shell's exit status for a command stopped by Ctrl-C (128 + SIGINT).
INTERRUPTED_EXIT_CODE = 130


@click.command("extract")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@model_options(required=True)
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Embeddings file to write (HDF5).")
@source_options(group_by=True)
@click.option("--landmarks", "landmarks_path", type=click.Path(exists=True, dir_okay=False,
              path_type=Path), help="Align every image by its 5 landmarks from this file: one "
              "image a line, its path, x1 y1 ... x5 y5, optionally more numbers, the last a "
              "detector score (IJB's *_name_5pts_score.txt, RFW's *_lmk.txt).")
@click.option("--rfw", "kind", flag_value="rfw",
              help="SOURCE is RFW as shipped: data/<Race>/<person>/<image> with txts/<Race>/ "
              "(found by itself when it has both folders).")
@click.option("--ijb", "kind", flag_value="ijb",
              help="SOURCE is an IJB-B/IJB-C folder: loose_crop/ with meta/<set>_face_tid_mid.txt "
              "and <set>_name_5pts_score.txt (found by itself).")
@click.option("--pairs", "rfw_pairs", is_flag=True,
              help="RFW as shipped: extract its pair lists (pairs layout, RFW's 10 folds), for "
              "pair-eval, instead of every image.")
@click.option("--aligned", is_flag=True,
              help="The images are already aligned: use no landmarks (RFW, IJB, manifests).")
@click.option("--skip-bad-images", is_flag=True,
              help="Leave out undecodable images and images without landmarks (a pair with one "
              "loses both) and list them.")
@click.option("--resume", is_flag=True,
              help="Continue an interrupted extraction into the same --out file.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def command(source, model_path, arch, output_name, input_size, input_mean, input_std, bgr,
            batch_size, workers, device, no_flip, amp, out_path, image_root, columns,
            attributes, group_by, landmarks_path, kind, rfw_pairs, aligned, skip_bad_images,
            resume, no_progress):
    """Embed every image of SOURCE with the model and write an embeddings file.

    SOURCE, for inst-eval (rows are images, `images` layout): an RFW instance zip, a manifest
    (.csv/.tsv with path, identity, group), a folder tree ROOT/<group>/<identity>/<image>, RFW
    as shipped (every image), or an IJB-B/IJB-C folder (for template-eval). For pair-eval (rows
    are pairs of images, `pairs` layout): a .bin pair file, a folder of them (<Group>_test.bin,
    lfw.bin, ...), or RFW as shipped with --pairs. For pair-eval and calibrate, a pair list
    (.csv/.tsv with path1, path2, issame, and optionally group, fold, identity1, identity2)
    gives the `images` layout with the list's pairs: each image is embedded once. RFW and IJB
    images are aligned by their landmark lists, a manifest's by its x1..y5 columns. Embeddings
    are f(x) + f(mirrored x) unless --no-flip.
    """
    from dataclasses import replace

    from mfftools.embeddings import open_embeddings
    from mfftools.extract import run_extraction
    from mfftools.sources import open_pair_sources, open_source

    settings = replace(source_settings(image_root, columns, group_by=group_by,
                                       attributes=attributes),
                       kind=kind, aligned=aligned, allow_missing_landmarks=skip_bad_images)
    if rfw_pairs:
        if kind == "ijb":
            raise click.UsageError("--pairs reads RFW's pair lists; IJB's template pairs are "
                                   "for template-eval")
        opened = open_pair_sources([source], replace(settings, kind="rfw"))
    else:
        opened = open_source(source, settings)
    if landmarks_path is not None:
        from mfftools.data.landmarks import align_by_file

        if aligned:
            raise click.UsageError("--landmarks aligns the images; --aligned says they are "
                                   "aligned already: give one")
        opened = align_by_file(opened, landmarks_path, allow_missing=skip_bad_images)
    try:
        report = run_extraction(
            opened, model_path, out_path, arch=arch, output=output_name,
            preprocessing=preprocessing(input_size, input_mean, input_std, bgr),
            batch_size=batch_size, workers=workers, device=device, flip=not no_flip, amp=amp,
            skip_bad_images=skip_bad_images, resume=resume, progress=not no_progress,
        )
    except KeyboardInterrupt:
        click.echo(_interrupted(out_path), err=True)
        sys.exit(INTERRUPTED_EXIT_CODE)
    written = open_embeddings(report.path)
    attrs = written.attrs
    pairs = "" if written.pair_index is None else f", {len(written.pair_index)} pairs"
    content = (
        f"{written.n_rows} embeddings of dim {written.dim} ({written.layout} layout{pairs}, "
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
    size, mean, std = attrs["input_size"], attrs["input_mean"], attrs["input_std"]
    if attrs.get("alignment_template") is not None:
        click.echo(f"faces aligned to the {attrs['alignment_template']} template by their "
                   "5 landmarks")
    click.echo(
        f"model {attrs['model']} ({attrs['model_format']}, sha256 "
        f"{attrs['checkpoint_sha256'][:12]}), input {size[0]}x{size[1]} {attrs['channel_order']} "
        f"mean {_values(mean)} std {_values(std)}{_scale_note(attrs)}, "
        f"flip {'on' if attrs['flip'] else 'off'}, "
        f"amp {'on' if attrs['amp'] else 'off'}"
    )
    skipped = int(attrs.get("n_skipped_images", 0))
    if skipped:
        names = list(attrs.get("skipped_images", []))
        pairs = ""
        if "n_dropped_pairs" in attrs:
            pairs = f" ({int(attrs['n_dropped_pairs'])} pairs dropped)"
        click.echo(f"skipped {skipped} bad image{'s' if skipped > 1 else ''}{pairs}:")
        for name in names:
            click.echo(f"  {name}")
        if len(names) < skipped:
            click.echo(f"  ... and {skipped - len(names)} more (see the log)")


def _interrupted(out_path):
    from mfftools.extract import interrupted_progress

    progress = interrupted_progress(out_path)
    if progress is None:
        return f"interrupted before any embedding was written for {out_path}; nothing to resume"
    partial, written, expected = progress
    return (
        f"interrupted: {partial} holds {written} of {expected} embeddings; run the same "
        f"command with --resume to continue where it stopped ({out_path} is written when "
        "they are all in)"
    )


def _values(values):
    """Per-channel values as short text: `0.5` when all three agree, else `0.485,0.456,0.406`."""
    values = [f"{float(value):g}" for value in values]
    return values[0] if len(set(values)) == 1 else ",".join(values)


def _scale_note(attrs):
    """How mean and std were given, when on the 0-255 scale (they are shown on [0, 1])."""
    if str(attrs.get("input_given_scale", "0-1")) != "0-255":
        return ""
    mean, std = (",".join(f"{float(value) * 255:g}" for value in dict.fromkeys(attrs[key]))
                 for key in ("input_mean", "input_std"))
    return f" on [0, 1] pixels (given as {mean} and {std} on 0-255)"
