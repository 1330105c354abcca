"""`mfftools pair-eval`: the 10-fold pair protocol, from an embeddings file or from images."""
import tempfile
from contextlib import contextmanager
from pathlib import Path

import click

from mfftools.cli.options import (
    model_options,
    name_list,
    preprocessing,
    source_options,
    source_settings,
)
from mfftools.cli.engine_options import allow_degenerate_option
from mfftools.errors import MfftoolsError
from mfftools.evaluation.text import pair_table

# A source with one of these suffixes is an embeddings file (and said to be damaged when it is
# not readable HDF5), whatever its content.
EMBEDDINGS_SUFFIXES = (".h5", ".hdf5")


@click.command("pair-eval")
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@model_options(required=False)
@source_options(group_by=True)
@click.option("--save", type=click.Path(dir_okay=False, path_type=Path),
              help="Keep the extracted embeddings file here (default: temporary).")
@click.option("--groups", callback=name_list, metavar="NAME,...",
              help="Evaluate only these groups or sets, e.g. African,Asian (default: all); an "
              "error names any the sources do not hold.")
@click.option("--grid", type=click.Choice(["insightface", "mixfairface"]),
              help="The accuracy thresholds: insightface's numpy.arange(0, 4, 0.01) or "
              "MixFairFace's numpy.arange(0, 10, 0.001) (default: insightface's for the sets "
              "it names, lfw, cfp_fp, agedb_30, ...; MixFairFace's for everything else).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the results (JSON) here.")
@click.option("--name", help="The model's name in the results file and reports "
              "(default: the embeddings' `model` attribute, else the checkpoint's file name).")
@click.option("--plots", "plots_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write per-group ROC and accuracy figures (PNG) into this folder.")
@click.option("--csv", "csv_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write the group tables and the ROC/DET points as CSV files into this folder.")
@click.option("--allow-dropped-pairs", is_flag=True,
              help="Evaluate a file that lost pairs at extraction (--skip-bad-images) on 10 "
              "contiguous folds of the remaining pairs, which are not the benchmark's folds.")
@allow_degenerate_option
@click.option("--calibration", "calibration_file",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Evaluate calibrated scores: a calibration file of `mfftools calibrate fit` "
              "for this model (a confidence p is read as the cosine score 2p - 1).")
def command(sources, model_path, arch, output_name, input_size, input_mean, input_std, bgr,
            batch_size, workers, device, no_flip, amp, image_root, columns, attributes,
            group_by, save, groups, grid, json_path, name, plots_dir, csv_dir,
            allow_dropped_pairs, allow_degenerate, calibration_file):
    """Pair-protocol accuracy per group, mean, STD, SER and TAR@FAR=1e-3.

    SOURCES is one embeddings file holding pairs (the pairs layout, or the images layout with
    its pair list), or images to extract with --model first: .bin pair files (each a set named
    by its file name: lfw.bin, cfp_fp.bin, ...), folders of them (RFW's <Group>_test.bin are its
    groups), or one pair list (.csv/.tsv). A pair list with a fold column is evaluated on its
    own folds.
    """
    import h5py

    from mfftools.files import write_results

    evaluation = dict(grid=grid, calibration=calibration_file, name=name,
                      allow_dropped_pairs=allow_dropped_pairs, allow_degenerate=allow_degenerate)
    embeddings_files = [path for path in sources if path.is_file() and (
        path.suffix.lower() in EMBEDDINGS_SUFFIXES or h5py.is_hdf5(path))]
    if embeddings_files:
        given = [option for option, value in (
            ("--model", model_path), ("--save", save), ("--image-root", image_root),
            ("--columns", columns), ("--attributes", attributes),
            ("--group-by", group_by)) if value is not None]
        results = _evaluate_file(sources, embeddings_files[0], given, groups, evaluation)
    else:
        extraction = dict(arch=arch, output=output_name, batch_size=batch_size, workers=workers,
                          device=device, flip=not no_flip, amp=amp,
                          preprocessing=preprocessing(input_size, input_mean, input_std, bgr))
        settings = source_settings(image_root, columns, group_by=group_by, groups=groups,
                                   attributes=attributes)
        results = _extract_and_evaluate(sources, model_path, settings, extraction, save,
                                        evaluation)
    click.echo(pair_table(results))
    if json_path is not None:
        click.echo(f"results written to {write_results(results, json_path)}")
    if csv_dir is not None:
        from mfftools.reporting.csv_tables import write_csv_tables

        for path in write_csv_tables(results, csv_dir):
            click.echo(f"table written to {path}")
    if plots_dir is not None:
        from mfftools.reporting.build import write_figures

        for path in write_figures(results, plots_dir, sources[0]):
            click.echo(f"figure written to {path}")


def _evaluate_file(sources, path, given, groups, evaluation):
    """The results of an embeddings file given alone, without the options that concern
    extraction (`given`); `evaluation`: pair_results' options."""
    from mfftools.api.evaluations import pair_results

    if len(sources) > 1:
        raise MfftoolsError(
            f"{path} is an embeddings file: evaluate it alone, not with other sources"
        )
    if given:
        raise MfftoolsError(
            f"{path} is an embeddings file: {', '.join(given)} "
            f"{'applies' if len(given) == 1 else 'apply'} only to images to extract "
            "(.bin files, folders of them, a pair list)"
        )
    return pair_results(path, only_groups=groups, **evaluation)


def _extract_and_evaluate(sources, model_path, settings, extraction, save, evaluation):
    """The results of images extracted with the model into `save` or a temporary file."""
    from mfftools.api.evaluations import pair_results
    from mfftools.extract import extract
    from mfftools.sources import open_pair_sources

    if model_path is None:
        raise MfftoolsError(
            f"{', '.join(map(str, sources))}: give --model to extract the embeddings of "
            "these images, or pass an embeddings file holding pairs instead"
        )
    source = open_pair_sources(sources, settings)
    if not source.has_pairs:
        raise MfftoolsError(
            f"{sources[0]} is a manifest of images (the instance protocol's input: use "
            "extract and inst-eval); pair-eval needs pairs: .bin files, folders of them, or "
            "a pair list"
        )
    with _extraction_target(save) as out_path:
        results = pair_results(extract(source, model_path, out_path, **extraction),
                               **evaluation)
    results["source"] = ", ".join(map(str, sources))
    return results


@contextmanager
def _extraction_target(save):
    """Where to write the extracted embeddings: --save, or a file in a temporary folder."""
    if save is not None:
        yield save
        return
    with tempfile.TemporaryDirectory(prefix="mfftools-pairs-") as folder:
        yield Path(folder) / "pairs.h5"
