"""`mfftools pair-eval`: the RFW 10-fold pair protocol, from an embeddings file or `.bin` files."""
import tempfile
from contextlib import contextmanager
from pathlib import Path

import click

from mfftools.cli.extract import ARCHS
from mfftools.errors import MfftoolsError


@click.command("pair-eval")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--model", "model_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Checkpoint to extract embeddings with (SOURCE a folder of <Group>_test.bin).")
@click.option("--arch", type=click.Choice(ARCHS),
              help="IResNet backbone, when the checkpoint does not record it.")
@click.option("--save", type=click.Path(dir_okay=False, path_type=Path),
              help="Keep the extracted pairs-layout embeddings file here (default: temporary).")
@click.option("--groups", help="Comma-separated groups SOURCE must hold as <Group>_test.bin, "
              "e.g. African,Asian,Caucasian,Indian (default: every such file).")
@click.option("--batch-size", default=128, show_default=True, type=click.IntRange(min=1))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=0),
              help="Image-decoding worker processes during extraction.")
@click.option("--device", default="auto", show_default=True,
              type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--no-flip", is_flag=True, help="Extract without flip test-time augmentation.")
@click.option("--amp", is_flag=True, help="Extract with mixed precision (CUDA).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the results (JSON) here.")
@click.option("--name", help="The model's name in the results file and reports "
              "(default: the embeddings' `model` attribute, else the checkpoint's file name).")
@click.option("--plots", "plots_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write per-group ROC and accuracy figures (PNG) into this folder.")
def command(source, model_path, arch, save, groups, batch_size, workers, device, no_flip, amp,
            json_path, name, plots_dir):
    """Pair-protocol accuracy per group, mean, STD, SER and TAR@FAR=1e-3.

    SOURCE is a pairs-layout embeddings file, or a folder of <Group>_test.bin files; a folder
    needs --model, whose embeddings (flip TTA by default) are extracted first.
    """
    from mfftools.embeddings import open_embeddings
    from mfftools.evaluation.pair import evaluate_pairs
    from mfftools.files import write_results

    if source.is_dir():
        if model_path is None:
            raise MfftoolsError(
                f"{source} is a folder of .bin files: give --model CHECKPOINT to extract its "
                "embeddings, or pass a pairs-layout embeddings file instead"
            )
        if groups is not None:
            _check_group_files(source, groups)
        extraction = dict(arch=arch, batch_size=batch_size, workers=workers, device=device,
                          flip=not no_flip, amp=amp)
        with _extraction_target(save) as out_path:
            embeddings_path = _extract(source, model_path, out_path, extraction)
            embeddings = open_embeddings(embeddings_path, layout="pairs")
            results = evaluate_pairs(embeddings)
        results["source"] = str(source)
    else:
        if model_path is not None or save is not None or groups is not None:
            raise MfftoolsError(
                f"{source} is an embeddings file: --model, --save and --groups apply only to "
                "a folder of .bin files"
            )
        embeddings = open_embeddings(source, layout="pairs")
        results = evaluate_pairs(embeddings)
    model = name or embeddings.model_name
    if model is not None:
        results["model"] = model
    click.echo(format_table(results))
    if json_path is not None:
        click.echo(f"results written to {write_results(results, json_path)}")
    if plots_dir is not None:
        from mfftools.report.build import write_figures

        for path in write_figures(results, plots_dir, source):
            click.echo(f"figure written to {path}")


def _check_group_files(folder, groups):
    from mfftools.data.pair_bin import BIN_SUFFIX

    expected = sorted(name.strip() for name in groups.split(",") if name.strip())
    found = sorted(path.name[: -len(BIN_SUFFIX)] for path in folder.glob(f"*{BIN_SUFFIX}"))
    missing = [name for name in expected if name not in found]
    if missing:
        files = ", ".join(f"{name}{BIN_SUFFIX}" for name in missing)
        raise MfftoolsError(f"{folder}: missing group files {files}")
    unexpected = [name for name in found if name not in expected]
    if unexpected:
        raise MfftoolsError(f"{folder}: holds groups {unexpected} beyond --groups {expected}")


@contextmanager
def _extraction_target(save):
    """Where to write the extracted embeddings: --save, or a file in a temporary folder."""
    if save is not None:
        yield save
        return
    with tempfile.TemporaryDirectory(prefix="mfftools-pairs-") as folder:
        yield Path(folder) / "pairs.h5"


def _extract(source, model_path, out_path, options):
    from mfftools.extract import extract

    return extract(source, model_path, out_path, **options)


def format_table(results):
    """The results as a readable table: per-group accuracy (mean +- std over folds) and TAR."""
    names = results["group_names"]
    width = max(len("group"), *(len(name) for name in names))
    lines = [
        f"Pair protocol: {len(names)} groups, {results['n_pairs']} pairs, 10 folds",
        f"{'group':<{width}}  {'accuracy (%)':>16}  {'TAR@FAR=1e-3':>12}",
    ]
    for name in names:
        group = results["groups"][name]
        accuracy = f"{group['accuracy'] * 100:.2f} +- {group['accuracy_std'] * 100:.2f}"
        lines.append(f"{name:<{width}}  {accuracy:>16}  {group['tar_at_far_1e-3']:>12.4f}")
    std, ser = results["std"], results["ser"]
    lines += [
        f"{'mean':<{width}}  {results['mean_accuracy']:>16.2f}",
        f"{'STD':<{width}}  {'n/a (one group)' if std is None else f'{std:.2f}':>16}",
        f"{'SER':<{width}}  {'n/a (a perfect group)' if ser is None else f'{ser:.3f}':>16}",
    ]
    return "\n".join(lines)
