"""Simulated instance results for checking significance statements: per-identity rates from
counts, as inst-eval writes them, with identities assigned to groups at random (the null) or one
group made worse by a chosen gap.

Each identity has 1 + Poisson(2.5) images (at most 8), so n (n - 1) ordered genuine pairs (none
for a single image: its TPR is undefined) and n (N - n) ordered impostor pairs. Its genuine pairs
are accepted with its own probability (Beta(8, 2): identities differ), its impostor pairs at the
target FPR times a heavy-tailed propensity (Gamma with shape 0.5: most identities have none
accepted, a few many). TPRs tie often and FPRs are mostly 0, as at real targets.
"""
import numpy as np

from mfftools.reporting.results import ResultFile

TARGET = 1e-3


def identities(rng, n_groups, per_group, tpr_gap=0.0, fpr_ratio=1.0):
    """(group, accept probability, impostor propensity, images) of per_group identities in
    each group, the groups assigned at random; group 0 has its accept probability lowered by
    `tpr_gap` and its propensity multiplied by `fpr_ratio`."""
    n = n_groups * per_group
    group = rng.permutation(np.repeat(np.arange(n_groups), per_group))
    accept = np.clip(rng.beta(8, 2, n) - tpr_gap * (group == 0), 0, 1)
    propensity = rng.gamma(0.5, 2.0, n) * np.where(group == 0, fpr_ratio, 1.0)
    images = np.minimum(1 + rng.poisson(2.5, n), 8)
    return group, accept, propensity, images


def rates(rng, accept, propensity, images):
    """Per-identity TPR (NaN without genuine pairs) and FPR drawn from the counts."""
    genuine = images * (images - 1)
    impostor = images * (images.sum() - images)
    accepted = rng.binomial(genuine, accept)
    false_matches = rng.poisson(TARGET * impostor * propensity)
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = np.where(genuine > 0, accepted / genuine, np.nan)
    return tpr, false_matches / impostor


def result(model, group, tpr, fpr, n_groups, images_digest="same"):
    """A ResultFile of the instance protocol with one entry at TARGET holding these rows, and
    what a same-images check compares."""
    names = [f"G{k}" for k in range(n_groups)]
    entry = {"target_fpr": TARGET, "method": "exact",
             "per_identity": {"group": group.tolist(),
                              "tpr": [None if np.isnan(t) else float(t) for t in tpr],
                              "fpr": fpr.tolist()}}
    data = {"protocol": "instance", "group_names": names, "results": [entry],
            "identities": {"identity": list(range(len(group))), "group": group.tolist()},
            "images": {"n": len(group), "paths_sha256": images_digest,
                       "identities_sha256": images_digest}}
    return ResultFile(path=None, protocol="instance", model=model, data=data)


def model_pair(rng, n_groups, per_group, spread=1.0, lift=0.0):
    """Two models' results on the same identities: the second's accept probabilities pulled
    towards their mean by `spread` and raised by `lift` (1 and 0: the same model, drawn
    again)."""
    group, accept, propensity, images = identities(rng, n_groups, per_group)
    narrower = np.clip(accept.mean() + spread * (accept - accept.mean()) + lift, 0, 1)
    first = result("A", group, *rates(rng, accept, propensity, images), n_groups)
    second = result("B", group, *rates(rng, narrower, propensity, images), n_groups)
    return first, second
