"""`mfftools report`: tables and figures of one or several result JSONs, as HTML and Markdown."""
import click


def _model_files(ctx, param, values):
    """Each --name MODEL=FILE[,FILE...] as (MODEL, [FILE, ...])."""
    parsed = []
    for value in values:
        model, sign, files = value.partition("=")
        files = [file.strip() for file in files.split(",") if file.strip()]
        if not sign or not model.strip() or not files:
            raise click.BadParameter(
                f"{value!r} is not MODEL=FILE[,FILE...], e.g. --name a=a_inst.json,a_pair.json",
                ctx=ctx, param=param,
            )
        parsed.append((model.strip(), files))
    return parsed


@click.command("report")
@click.argument("results", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for report.html, report.md and the figures.")
@click.option("--name", "names", multiple=True, metavar="MODEL=FILE[,FILE...]",
              callback=_model_files,
              help="Name the model of these result files (repeatable); a file not named takes "
              "its \"model\" field, else its file name without extension.")
@click.option("--bootstrap", default=1000, show_default=True, type=int,
              help="Bootstrap resamples over identities for confidence intervals (0: none).")
@click.option("--permutations", default=None, type=int,
              help="Shuffles of each permutation test behind the significance statements "
              "(0: none)  [default: 4999]")
@click.option("--alpha", default=0.05, show_default=True, type=float,
              help="The error rate each significance statement keeps under its null.")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Seed of the bootstrap and the permutation tests.")
@click.option("--title", default="mfftools report", show_default=True, help="Report title.")
@click.option("--no-images", is_flag=True,
              help="Leave the faces out of the galleries (privacy): each image is named by its "
              "path in its source instead of shown.")
def command(results, out_dir, names, bootstrap, permutations, alpha, seed, title, no_images):
    """Report RESULTS (inst-eval, pair-eval, ident-eval, template-eval and calibrate JSONs, one
    or several models) into --out.

    The model of each file is the one --name gives it, else its "model" field, else the file
    name without extension; files of one model share a column block.
    """
    from mfftools.reporting.build import PERMUTATIONS, write_report

    files = write_report(results, out_dir, bootstrap=bootstrap, seed=seed, title=title,
                         names=names, alpha=alpha, images=not no_images,
                         permutations=PERMUTATIONS if permutations is None else permutations)
    click.echo(f"report: {files.html}")
    click.echo(f"markdown: {files.markdown} ({len(files.figures)} figures)")
    click.echo(f"significance statements: {files.claims}")
    for note in files.report.notes:
        click.echo(f"note: {note}")
