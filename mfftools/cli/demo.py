"""`mfftools demo`: synthetic data -> trained model -> embeddings -> evaluations -> report."""
import click

from mfftools.evaluation.text import calibration_table


@click.command("demo")
@click.option("--out", "out_dir", default="demo_out", show_default=True,
              type=click.Path(file_okay=False),
              help="Folder for everything the demo writes (empty, new, or a previous demo's).")
@click.option("--quick", is_flag=True, help="Less data, 5 short epochs, 200 bootstrap resamples.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True)
def command(out_dir, quick, device):
    """Run the whole pipeline on synthetic data and print the headline numbers."""
    from mfftools.demo import run_demo

    def announce(number, total, text):
        click.echo(f"[{number}/{total}] {text}", err=True)

    result = run_demo(out_dir, quick=quick, device=device, on_stage=announce)
    click.echo(f"\nreport: {result.report_html}")
    click.echo(f"        {result.report_markdown}")
    entry = result.instance["results"][0]
    click.echo(f"\n{'group':<12}{'pair acc (%)':>14}{'inst TPR mean':>15}{'inst FPR mean':>15}"
               f"{'1:N FNIR':>10}")
    for name, accuracy, tpr_mean, fpr_mean, fnir in result.headline():
        click.echo(f"{name:<12}{accuracy:>14.2f}{_rate(tpr_mean):>15}{_rate(fpr_mean):>15}"
                   f"{_rate(fnir):>10}")
    pair = result.pair
    std = "-" if pair["std"] is None else f"{pair['std']:.2f}"
    click.echo(f"\npair: mean {pair['mean_accuracy']:.2f}  STD {std}")
    click.echo(
        f"instance at FPR {entry['target_fpr']:g}: TPR {entry['tpr']:.4f}, "
        f"instance TPR mean {_rate(entry['instance']['tpr_mean'])} "
        f"+- {_rate(entry['instance']['tpr_std'])}"
    )
    searches = result.identification["results"][0]
    click.echo(
        f"1:N at FPIR {searches['target_fpir']:g}: FNIR {_rate(searches['fnir'])} (rank "
        f"{result.identification['rank']}), FPIR {_rate(searches['fpir'])}, rank-1 rate "
        f"{_rate(result.identification['cmc']['all'][0])}"
    )
    click.echo(f"hardest group: {result.hardest_group()}")
    click.echo(f"\ncalibration, before (baseline) and after, on synthetic embeddings whose "
               f"{result.calibration['group_names'][0]} impostors sit higher:")
    click.echo(calibration_table(result.calibration))
    total = sum(result.seconds.values())
    click.echo(f"done in {total:.0f} s")


def _rate(value):
    return "-" if value is None else f"{value:.4f}"
