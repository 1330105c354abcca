"""`mfftools template-eval`: IJB-B / IJB-C templates, 1:1 and 1:N, per demographic group."""
from pathlib import Path

import click

from mfftools.cli.engine_options import announce_calibration, calibration_option
from mfftools.cli.ident_eval import _ranks
from mfftools.cli.options import name_list
from mfftools.evaluation.text import template_summary

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.command("template-eval")
@click.argument("embeddings_file", type=_FILE)
@click.option("--pairs", type=_FILE,
              help="1:1: the template pair list (<set>_template_pair_label.txt: t1 t2 label).")
@click.option("--gallery", "galleries", multiple=True, type=_FILE,
              help="1:N: a gallery list (<set>_1N_gallery_G1.csv); repeat for G2, each searched "
              "on its own.")
@click.option("--probes", type=_FILE, help="1:N: the probe list (<set>_1N_probe_mixed.csv).")
@click.option("--metadata", type=_FILE,
              help="Subject metadata (protocols/ijbc_metadata.csv): per-group results.")
@click.option("--group-by", callback=name_list, default="skintone,gender", show_default=True,
              metavar="COLUMN,...", help="Metadata columns whose values make the groups.")
@click.option("--norm", type=click.Choice(["keep", "unit"]), default="keep", show_default=True,
              help="keep: image features keep their norm (insightface's N1); unit: normalised "
              "first (N0).")
@click.option("--detector-score", type=click.Choice(["weight", "ignore"]), default="weight",
              show_default=True,
              help="weight: image features times the detector score (D1); ignore: not (D0).")
@click.option("--far", "far_targets", multiple=True, type=float,
              default=(1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1), show_default=True,
              help="1:1 target FAR; repeat for several.")
@click.option("--fpir", "fpir_targets", multiple=True, type=float, default=(1e-2, 1e-1),
              show_default=True, help="1:N target FPIR; repeat for several.")
@click.option("--ranks", default="1,5,10,20", show_default=True,
              help="Ranks of the CMC, comma-separated.")
@click.option("--skip-missing", is_flag=True,
              help="Leave out pairs and 1:N templates whose template has no images in the file "
              "(they are counted in the results) instead of stopping.")
@click.option("--name", help="The model's name in the results file and reports.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the results (JSON) here.")
@calibration_option
def command(embeddings_file, pairs, galleries, probes, metadata, group_by, norm, detector_score,
            far_targets, fpir_targets, ranks, skip_missing, name, json_path, calibration_file):
    """IJB-B / IJB-C: 1:1 verification of template pairs (TAR@FAR read as insightface does and
    at the exact threshold, ROC, AUC) and 1:N identification per gallery (TPIR at FPIR, CMC),
    per demographic group with --metadata.

    EMBEDDINGS_FILE: the images of an IJB folder (`mfftools extract IJBC/ --ijb`), with their
    template, media and detector score.
    """
    from mfftools.api.evaluations import template_results
    from mfftools.files import write_results

    result = template_results(
        embeddings_file, pairs=pairs, galleries=galleries, probes=probes, metadata=metadata,
        group_by=group_by, norm=norm, detector_score=detector_score, far=far_targets,
        fpir=fpir_targets, ranks=_ranks(ranks), skip_missing=skip_missing, name=name,
        calibration=calibration_file)
    announce_calibration(result, calibration_file)
    click.echo(template_summary(result))
    if json_path is not None:
        click.echo(f"results written to {write_results(result, json_path)}")
