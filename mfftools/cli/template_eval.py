"""`mfftools template-eval`: IJB-B / IJB-C templates, 1:1 and 1:N, per demographic group."""
from pathlib import Path

import click

from mfftools.cli.engine_options import (
    calibration_option,
    load_calibration,
    name_model,
    record_calibration,
)
from mfftools.cli.ident_eval import _ranks
from mfftools.cli.options import name_list

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
    from mfftools.embeddings import open_embeddings
    from mfftools.evaluation.template_eval import evaluate_templates
    from mfftools.evaluation.templates import TemplateSettings
    from mfftools.files import write_results

    embeddings = open_embeddings(embeddings_file, layout="images")
    result = evaluate_templates(
        embeddings, pairs=pairs, galleries=galleries, probes=probes, metadata=metadata,
        group_by=tuple(group_by), settings=TemplateSettings(norm, detector_score),
        far_targets=far_targets, fpir_targets=fpir_targets, ranks=_ranks(ranks),
        skip_missing=skip_missing, calibration=load_calibration(calibration_file, embeddings))
    record_calibration(result, calibration_file)
    if calibration_file is not None:
        entry = result["calibration"]
        click.echo(f"calibrated scores ({calibration_file}: {entry['method']}, "
                   f"{entry['calibrator']}): every threshold is a confidence in [0, 1]")
    name_model(result, name, embeddings)
    click.echo(format_summary(result))
    if json_path is not None:
        click.echo(f"results written to {write_results(result, json_path)}")


def _value(value, digits=4):
    return "-" if value is None else f"{value:.{digits}f}"


def format_summary(result):
    """The results as readable text."""
    settings = result["settings"]
    lines = [f"{result['n_templates']} templates of {result['n_images']} images "
             f"({result['n_media']} media); norm {settings['norm']}, detector score "
             f"{settings['detector_score']}, flip {'on' if settings['flip'] else 'off'}"]
    if "tar_at_far" in result:
        lines += ["", f"1:1: {result['n_pairs']} pairs ({result['n_genuine']} genuine), "
                  f"AUC {result['auc']:.6f}",
                  f"{'FAR':>8} {'TAR nearest':>12} {'TAR exact':>10} {'threshold':>10}"]
        for key, reading in result["tar_at_far"].items():
            lines.append(f"{key:>8} {_value(reading['nearest_roc_point']):>12} "
                         f"{_value(reading['exact']):>10} {_value(reading['threshold'], 6):>10}")
    if "groups" in result:
        names = list(result["groups"])
        width = max(8, *(len(name) for name in names))
        key = next((k for k, v in result["tar_at_far"].items() if v["threshold"] is not None),
                   None)
        lines += ["", f"per group at the global threshold of FAR {key}:",
                  f"{'group':<{width}} {'genuine':>8} {'impostor':>9} {'FNMR':>8} {'FMR':>8} "
                  f"{'EER':>8}"]
        for name in names:
            group = result["groups"][name]
            at = group["at_far"].get(key, {}) if key else {}
            lines.append(f"{name:<{width}} {group['n_genuine']:>8} {group['n_impostor']:>9} "
                         f"{_value(at.get('fnmr')):>8} {_value(at.get('fmr')):>8} "
                         f"{_value(group['eer']):>8}")
    if "identification" in result:
        identification = result["identification"]
        for gallery_name, gallery in identification["galleries"].items():
            lines += ["", f"1:N {gallery_name}: {gallery['n_templates']} templates, "
                      f"{gallery['n_mated']} mated and {gallery['n_nonmated']} non-mated "
                      "probe templates"]
            for entry in gallery["results"]:
                lines.append(f"  FPIR {entry['target_fpir']:g}: TPIR {_value(entry['tpir'])} "
                             f"(threshold {entry['threshold']:.6f})")
            lines.append("  CMC " + ", ".join(
                f"rank {k} {_value(v)}" for k, v in zip(gallery["ranks"], gallery["cmc"]["all"])))
        mean = identification["mean"]
        lines += ["", "1:N mean of the galleries: " + ", ".join(
            f"TPIR@FPIR {entry['target_fpir']:g} {_value(entry['tpir'])}"
            for entry in mean["results"])]
        lines.append("  CMC " + ", ".join(
            f"rank {k} {_value(v)}" for k, v in zip(identification["ranks"], mean["cmc"])))
    skipped = result["skipped"]
    if skipped["pairs"] or skipped["n_templates"]:
        lines += ["", f"skipped: {skipped['pairs']} pairs and {skipped['n_templates']} templates "
                  "without images in the file"]
    return "\n".join(lines)
