"""`mfftools report`: tables and figures of one or several result JSONs, as HTML and Markdown."""
import click


@click.command("report")
@click.argument("results", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for report.html, report.md and the figures.")
@click.option("--bootstrap", default=1000, show_default=True, type=int,
              help="Bootstrap resamples over identities for confidence intervals (0: none).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the bootstrap.")
@click.option("--title", default="mfftools report", show_default=True, help="Report title.")
def command(results, out_dir, bootstrap, seed, title):
    """Report RESULTS (inst-eval and pair-eval JSONs, one or several models) into --out.

    The model of each file is its "model" field, else the file name without extension.
    """
    from mfftools.report.build import write_report

    files = write_report(results, out_dir, bootstrap=bootstrap, seed=seed, title=title)
    click.echo(f"report: {files.html}")
    click.echo(f"markdown: {files.markdown} ({len(files.figures)} figures)")
    for note in files.report.notes:
        click.echo(f"note: {note}")
