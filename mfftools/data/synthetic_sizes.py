"""The sizes of the synthetic data sets, apart from their generator so that `mfftools synth --help`
can show them without importing numpy."""

DEFAULTS = {
    "identities_per_group": 25,
    "images_per_identity": 3.3,
    "max_images_per_identity": 8,
    "pairs_per_group": 200,
    "train_identities_per_group": 40,
    "train_images_per_identity": 10,
    "faces_identities_per_group": 5,
    "faces_images_per_identity": 3,
    "faces_pairs_per_group": 40,
    "rfw_identities_per_group": 6,
    "rfw_images_per_identity": 3,
    "rfw_pairs_per_group": 40,
    "ijbc_subjects": 24,
    "ijbc_templates_per_subject": 3,
}
# About RFW's size: 3,000 identities and 10,000 images per group, 6,000 pairs per group.
RFW_SCALE = {
    "identities_per_group": 3000,
    "images_per_identity": 3.35,
    "max_images_per_identity": 30,
    "pairs_per_group": 6000,
}
# `synth --bias`: embeddings (no images) of the eight subgroups, 2,880 images and 24,000 pairs.
BIASED = {
    "identities_per_group": 60,
    "images_per_identity": 6,
    "pairs_per_group": 3000,
    "dim": 128,
    "base": 0.05,
}
