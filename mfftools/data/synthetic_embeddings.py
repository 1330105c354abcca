"""Synthetic embeddings with a planted group bias, and their pair list (`mfftools synth --bias`).

No images and no model: face embeddings are drawn directly, so calibration and fairness
mitigation can be tried (and tested, and benchmarked at BFW's size) in seconds. Group g has a
direction u_g; an identity's centre is c = sqrt(r_g) u_g + sqrt(1 - r_g) z (z a random unit
vector), so two identities of group g have a cosine of about r_g; an image is c plus Gaussian
noise of norm about `noise`. All of it lives in the first `latent` (48) of the D dimensions, plus
a little isotropic noise (norm 0.05) in all of them, so that scores spread as a face model's do
whatever D (in D = 512 isotropic dimensions impostor scores would all lie within 0.1 of 0). r_g = `base` for every group but the first, whose r is `base + bias`:
its impostor scores sit about `bias` higher, as a model's do for a group it separates poorly.

Pairs stay within a group and a fold. Identities are dealt to `n_folds` folds in turn (fold =
identity position within its group mod n_folds), so folds share no identity, as BFW's folds.
Genuine pairs are drawn from the pairs of images of one identity, impostor pairs from pairs of
images of two identities of the same group and fold; a group gets `pairs_per_group` pairs, a
`genuine_fraction` of them genuine. Everything follows from the seed.
"""
from dataclasses import dataclass

import numpy as np

from mfftools.data.faces import GENDER_SHIFTS, GROUP_STYLES
from mfftools.embeddings import EmbeddingsWriter

# BFW-style subgroups, as the synthetic folder tree names them.
SUBGROUPS = [f"{ethnicity}-{gender}" for ethnicity in sorted(GROUP_STYLES)
             for gender in GENDER_SHIFTS]
BASE_SIMILARITY = 0.05
NOISE = 1.2
LATENT = 48
_AMBIENT_NOISE = 0.05


@dataclass
class BiasedPairs:
    """Embeddings [N, D] (float32, not normalised), each image's identity and group, and the
    pair list: pair_index [P, 2], pair_issame [P], pair_fold [P]."""

    embeddings: np.ndarray
    identity: np.ndarray
    group: np.ndarray
    group_names: list
    pair_index: np.ndarray
    pair_issame: np.ndarray
    pair_fold: np.ndarray


def _unit(rng, count, dim):
    vectors = rng.standard_normal((count, dim))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def biased_pairs(group_names=tuple(SUBGROUPS), identities_per_group=60, images_per_identity=6,
                 pairs_per_group=3000, dim=128, bias=0.1, base=BASE_SIMILARITY, noise=NOISE,
                 genuine_fraction=0.3, n_folds=5, seed=0, latent=LATENT):
    """Draw a BiasedPairs (see the module docstring)."""
    if identities_per_group < 2 * n_folds or images_per_identity < 2:
        raise ValueError("each fold needs two identities per group, each of two images or more")
    if not 0.0 <= base + bias < 1.0:
        raise ValueError("base + bias must be in [0, 1)")
    rng = np.random.default_rng([seed, 20])
    n_groups = len(group_names)
    latent = min(latent, dim)
    directions = _unit(rng, n_groups, latent)
    similarity = np.full(n_groups, base)
    similarity[0] += bias
    per_group = identities_per_group * images_per_identity
    embeddings = np.empty((n_groups * per_group, dim), dtype=np.float32)
    index, issame, fold = [], [], []
    for group in range(n_groups):
        centres = (np.sqrt(similarity[group]) * directions[group]
                   + np.sqrt(1.0 - similarity[group]) * _unit(rng, identities_per_group, latent))
        images = np.repeat(centres, images_per_identity, axis=0)
        images += noise / np.sqrt(latent) * rng.standard_normal(images.shape)
        first = group * per_group
        embeddings[first : first + per_group] = _AMBIENT_NOISE / np.sqrt(dim) * rng.standard_normal(
            (per_group, dim))
        embeddings[first : first + per_group, :latent] += images
        pairs = _group_pairs(rng, identities_per_group, images_per_identity, pairs_per_group,
                             genuine_fraction, n_folds)
        index.append(pairs[0] + first)
        issame.append(pairs[1])
        fold.append(pairs[2])
    identity = np.repeat(np.arange(n_groups * identities_per_group), images_per_identity)
    return BiasedPairs(
        embeddings=embeddings, identity=identity, group=identity // identities_per_group,
        group_names=list(group_names), pair_index=np.concatenate(index),
        pair_issame=np.concatenate(issame), pair_fold=np.concatenate(fold),
    )


def _group_pairs(rng, n_identities, n_images, n_pairs, genuine_fraction, n_folds):
    """(pair_index within the group [P, 2], issame [P], fold [P]), folds in turn."""
    n_genuine = int(round(n_pairs * genuine_fraction))
    identity_fold = np.arange(n_identities) % n_folds
    fold = np.arange(n_pairs) % n_folds
    same = np.arange(n_pairs) < n_genuine
    index = np.empty((n_pairs, 2), dtype=np.int64)
    for number in range(n_folds):
        members = np.flatnonzero(identity_fold == number)
        chosen = fold == number
        genuine, impostor = chosen & same, chosen & ~same
        people = rng.choice(members, int(genuine.sum()))
        shot = rng.integers(0, n_images, len(people))
        other_shot = (shot + rng.integers(1, n_images, len(people))) % n_images
        index[genuine] = people[:, None] * n_images + np.stack([shot, other_shot], axis=1)
        first = rng.choice(members, int(impostor.sum()))
        other = rng.integers(1, len(members), len(first))
        second = members[(np.searchsorted(members, first) + other) % len(members)]
        shots = rng.integers(0, n_images, (len(first), 2))
        index[impostor] = np.stack([first, second], axis=1) * n_images + shots
    return index, same, fold


def write_biased_pairs(path, pairs, **attrs):
    """Write a BiasedPairs as an images-layout embeddings file with its pair list."""
    pair_list = {"pair_index": pairs.pair_index, "pair_issame": pairs.pair_issame,
                 "pair_fold": pairs.pair_fold}
    with EmbeddingsWriter.create(path, layout="images", dim=pairs.embeddings.shape[1],
                                 group_names=pairs.group_names, attrs=attrs,
                                 pair_list=pair_list) as writer:
        names = [f"{pairs.group_names[g]}/{i:05d}/{k:05d}.jpg"
                 for k, (i, g) in enumerate(zip(pairs.identity, pairs.group))]
        writer.append(pairs.embeddings, identity=pairs.identity, group=pairs.group, path=names,
                      source_index=np.arange(len(pairs.identity)))
    return path
