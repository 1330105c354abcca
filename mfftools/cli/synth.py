"""`mfftools synth OUT_DIR`: write synthetic RFW/BUPT look-alikes in the real formats."""

import click

from mfftools.data.synthetic_sizes import DEFAULTS, RFW_SCALE


@click.command("synth")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Everything written follows from it."
)
@click.option(
    "--rfw-scale",
    is_flag=True,
    help="About RFW's size: 3,000 identities, ~10,000 images and 6,000 pairs per group.",
)
@click.option(
    "--identities-per-group",
    type=int,
    help=f"Instance zip identities per group [{DEFAULTS['identities_per_group']}].",
)
@click.option(
    "--images-per-identity",
    type=float,
    help="Mean images per instance identity, geometric spread"
    f" [{DEFAULTS['images_per_identity']}].",
)
@click.option(
    "--max-images-per-identity",
    type=int,
    help=f"Cap on images per instance identity [{DEFAULTS['max_images_per_identity']}].",
)
@click.option(
    "--pairs-per-group",
    type=int,
    help=f"Pairs per .bin file, a multiple of 20 [{DEFAULTS['pairs_per_group']}].",
)
@click.option(
    "--train-identities-per-group",
    type=int,
    help=f"Training zip identities per group [{DEFAULTS['train_identities_per_group']}].",
)
@click.option(
    "--train-images-per-identity",
    type=int,
    help=f"Training zip images per identity [{DEFAULTS['train_images_per_identity']}].",
)
@click.option(
    "--faces-identities-per-group",
    type=int,
    help="Folder tree identities per subgroup (8 subgroups)"
    f" [{DEFAULTS['faces_identities_per_group']}].",
)
@click.option(
    "--faces-images-per-identity",
    type=int,
    help=f"Folder tree images per identity [{DEFAULTS['faces_images_per_identity']}].",
)
@click.option(
    "--faces-pairs-per-group",
    type=int,
    help="BFW-style pairs per subgroup, a multiple of 10"
    f" [{DEFAULTS['faces_pairs_per_group']}].",
)
@click.option(
    "--rfw-identities-per-group",
    type=int,
    help=f"RFW as shipped: identities per race [{DEFAULTS['rfw_identities_per_group']}].",
)
@click.option(
    "--rfw-images-per-identity",
    type=int,
    help=f"RFW as shipped: images per identity [{DEFAULTS['rfw_images_per_identity']}].",
)
@click.option(
    "--rfw-pairs-per-group",
    type=int,
    help="RFW as shipped: pairs per race, a multiple of 20"
    f" [{DEFAULTS['rfw_pairs_per_group']}].",
)
@click.option(
    "--ijbc-subjects", type=int, help=f"IJB-C look-alike: subjects [{DEFAULTS['ijbc_subjects']}]."
)
@click.option(
    "--ijbc-templates-per-subject",
    type=int,
    help="IJB-C look-alike: templates per subject (the first enrols it in G1 or G2)"
    f" [{DEFAULTS['ijbc_templates_per_subject']}].",
)
@click.option("--jpeg-quality", type=click.IntRange(1, 100), default=95, show_default=True)
@click.option("--bias", type=float,
              help="Also write biased_pairs.h5: embeddings (no images, no model) of the eight "
              "subgroups with their pairs in 5 folds, the first subgroup's identities BIAS "
              "closer (cosine), so its impostor scores sit higher (for calibrate; e.g. 0.2).")
def command(out_dir, seed, rfw_scale, jpeg_quality, bias, **sizes):
    """Write a synthetic RFW instance zip, RFW .bin pair files and a training zip to OUT_DIR,
    a folder tree of eight subgroups (ethnicity x gender) with its manifest (faces.csv) and
    a BFW-style pair table (bfw_pairs.csv), and look-alikes of RFW as shipped (RFW/test) and of
    IJB-C (IJBC), with loose crops to align by their landmarks; with --bias, biased embeddings
    and their pairs.

    Explicit size options override the defaults and --rfw-scale.
    """
    from mfftools.data.synthetic import synthesize

    chosen = dict(DEFAULTS, **(RFW_SCALE if rfw_scale else {}))
    chosen.update({name: value for name, value in sizes.items() if value is not None})
    summary = synthesize(out_dir, seed=seed, jpeg_quality=jpeg_quality, progress=True,
                         bias=bias, **chosen)
    groups = summary.group_names
    click.echo(
        f"{summary.instance_zip}: {sum(summary.instance_images.values())} images of "
        f"{sum(summary.instance_identities.values())} identities in {len(groups)} groups"
    )
    for group in groups:
        click.echo(
            f"  {group}: {summary.instance_identities[group]} identities,"
            f" {summary.instance_images[group]} images"
        )
    click.echo(
        f"  quirks: {summary.people_in_two_groups} person listed in two groups, "
        f"{len(summary.people_without_images)} listed person without images"
    )
    click.echo(
        f"{summary.bin_folder}: "
        + ", ".join(f"{group}_test.bin ({summary.pairs[group]} pairs)" for group in groups)
    )
    click.echo(
        f"{summary.training_zip}: {summary.training_images} images"
        f" of {summary.training_identities} identities"
    )
    click.echo(
        f"{summary.faces_folder}: {sum(summary.faces_images.values())} images of "
        f"{sum(summary.faces_identities.values())} identities in "
        f"{len(summary.faces_group_names)} subgroups ({summary.faces_group_names[0]}, ...); "
        f"manifest {summary.faces_manifest.name}, "
        f"{sum(summary.faces_pairs.values())} pairs in {summary.bfw_pairs.name}"
    )
    shipped = summary.shipped
    click.echo(
        f"{shipped.rfw_folder}: RFW as shipped, "
        + ", ".join(f"{race} {count} loose crops" for race, count in shipped.rfw_images.items())
        + f"; {next(iter(shipped.rfw_pairs.values()))} pairs per race in 10 folds"
    )
    click.echo(
        f"{shipped.ijbc_folder}: IJB-C look-alike, {shipped.ijbc_images} loose crops in "
        f"{shipped.ijbc_media} media of {shipped.ijbc_templates} templates of "
        f"{shipped.ijbc_subjects} subjects; {shipped.ijbc_pairs} template pairs "
        f"({shipped.ijbc_genuine} genuine), galleries G1 and G2, probes, metadata"
    )
    if summary.biased_pairs is not None:
        click.echo(f"{summary.biased_pairs}: biased embeddings of the 8 subgroups, "
                   f"{summary.faces_group_names[0]} {bias:g} closer, with their pairs in 5 folds")
    click.echo(f"done in {summary.seconds:.1f} s (seed {seed})")
