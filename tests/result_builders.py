"""Result JSONs for the report tests, built from small random per-identity tables.

The summary numbers are computed from the per-identity rows the way the protocol defines them, so
the files are internally consistent; group "Indian" is made the hard group (of identification
results too, whose rates are made up per group). Instance results can be built for any list of
groups (8 or 12 subgroups for the report's readability tests).
"""
import hashlib
import json

import numpy as np

from mfftools.reporting.results import ResultFile

GROUPS = ["African", "Asian", "Caucasian", "Indian"]


def instance_result(rng, model=None, n_per_group=30, extras=True, targets=((1e-2, "bisection"),),
                    multi=True, groups=GROUPS, hard=None):
    """An instance-protocol result dict; with `extras`, per-identity rows, the identities' image
    and pair counts, each entry's FPR ladder, ROC, DET and EER points, the FMR matrix, score
    distributions and the images fingerprint; with `multi`, the intra statistics over identities
    with at least two images (every 17th identity has one image, and intra 1 by construction).

    Per-identity TPR and FPR are integer counts over the identity's ordered pairs at each ladder
    level (0.5x to 2x the target), the entry's rates are those of the middle level; the group
    `hard` (default: the last) has a TPR 0.2 lower and an FPR three times as high.
    """
    groups = list(groups)
    hard = len(groups) - 1 if hard is None else groups.index(hard)
    identity = np.arange(n_per_group * len(groups))
    group = np.repeat(np.arange(len(groups)), n_per_group)
    single = identity % 17 == 0
    n_images = np.where(single, 1, rng.integers(2, 7, len(identity)))
    genuine_pairs = n_images * (n_images - 1)
    impostor_pairs = n_images * (n_images.sum() - n_images)
    data = {
        "protocol": "instance",
        "n_images": int(n_images.sum()),
        "n_identities": int(len(identity)),
        "dim": 512,
        "group_names": groups,
        "results": [],
        "similarity": {},
    }
    if model:
        data["model"] = model
    intra = np.clip(rng.normal(0.7, 0.05, len(identity)) - 0.1 * (group == hard), -1, 1)
    intra[single] = 1.0
    inter = np.clip(rng.normal(0.3, 0.05, len(identity)) + 0.1 * (group == hard), -1, 1)
    for name_index, name in enumerate(groups):
        rows = group == name_index
        data["similarity"][name] = {
            "intra_mean": float(intra[rows].mean()),
            "intra_std": float(intra[rows].std()),
            "inter_mean": float(inter[rows].mean()),
            "inter_std": float(inter[rows].std()),
        }
        if multi:
            data["similarity"][name]["intra_mean_multi"] = float(intra[rows & ~single].mean())
            data["similarity"][name]["intra_std_multi"] = float(intra[rows & ~single].std())
    for target, method in targets:
        tp, fp, levels = _ladder_counts(rng, target, group == hard, genuine_pairs, impostor_pairs)
        with np.errstate(invalid="ignore", divide="ignore"):
            tpr = np.where(genuine_pairs > 0, tp[LADDER_MIDDLE] / genuine_pairs, np.nan)
        fpr = fp[LADDER_MIDDLE] / impostor_pairs
        entry = {
            "target_fpr": target,
            "method": method,
            "threshold": float(rng.uniform(0.2, 0.6)),
            "tpr": float(tp[LADDER_MIDDLE].sum() / genuine_pairs.sum()),
            "fpr": float(fp[LADDER_MIDDLE].sum() / impostor_pairs.sum()),
            "converged": True,
            "instance": _stats(tpr, fpr),
            "groups": {},
            "fairness": {
                key: float(rng.uniform(0, 1))
                for key in ("fdr", "fpd", "fnd", "garbe", "fmr_max_geomean", "fnmr_max_geomean")
            },
        }
        matrix = np.abs(rng.normal(target, target / 3, (len(groups), len(groups))))
        matrix[hard, hard] *= 5
        reference = int(np.argmin(np.diag(matrix)))
        for name_index, name in enumerate(groups):
            rows = group == name_index
            stats = _stats(tpr[rows], fpr[rows])
            stats["fmr"] = float(matrix[name_index, name_index])
            stats["fmr_probe_group"] = stats["fpr_mean"]
            stats["fmr_relative"] = float(matrix[name_index, name_index]
                                          / matrix[reference, reference])
            stats["fnmr"] = 1 - stats["tpr_mean"]
            entry["groups"][name] = stats
        entry["reference_group"] = groups[reference]
        if extras:
            entry["per_identity"] = {  # columns, group as an index, null TPR without genuine pairs
                "identity": identity.tolist(),
                "group": group.tolist(),
                "tpr": [None if np.isnan(t) else float(t) for t in tpr],
                "fpr": fpr.tolist(),
                "intra": intra.tolist(),
                "inter": inter.tolist(),
            }
            entry["group_fmr_matrix"] = matrix.tolist()
            entry["ladder"] = {"target_fpr": levels.tolist(),
                               "threshold": np.linspace(0.6, 0.5, len(levels)).tolist(),
                               "identity_tp": tp.tolist(), "identity_fp": fp.tolist()}
        data["results"].append(entry)
    if extras:
        data["roc"] = _roc(rng, 1e-6, groups, hard)
        data["det"], data["eer"] = _det(groups, hard)
        data["score_distributions"] = score_distributions(rng, n_images, groups, hard)
        data["identities"] = {
            "identity": identity.tolist(), "group": group.tolist(), "n_images": n_images.tolist(),
            "n_genuine_pairs": genuine_pairs.tolist(), "n_impostor_pairs": impostor_pairs.tolist(),
        }
        data["images"] = images_record(int(n_images.sum()), "paths", "names")
    return data


# The ladder's FPR levels as multiples of the target, as inst-eval writes them; the middle one is
# the target itself.
LADDER = 2.0 ** (np.arange(-4, 5) / 4)
LADDER_MIDDLE = 4


def _ladder_counts(rng, target, hard, genuine_pairs, impostor_pairs):
    """Per level (rows) and identity (columns): accepted genuine and impostor ordered pairs, as
    a lowering threshold accepts more of them; and the levels' FPR."""
    levels = target * LADDER
    propensity = np.abs(rng.normal(1.0, 0.5, len(hard))) * (1 + 2 * hard)
    propensity /= np.average(propensity, weights=impostor_pairs)
    fp = np.floor(np.outer(levels, impostor_pairs * propensity)).astype(np.int64)
    accept = np.clip(rng.normal(0.9, 0.05, len(hard)) - 0.2 * hard, 0, 1)
    tp = np.floor(np.clip(accept + 0.01 * np.arange(-4, 5)[:, None], 0, 1)
                  * genuine_pairs).astype(np.int64)
    return tp, fp, fp.sum(axis=1) / impostor_pairs.sum()


def images_record(n, paths, names):
    """A results file's `images` entry: digests of the given texts (stand-ins for the sorted
    paths and identity names), None where a text is None."""
    def digest(text):
        return None if text is None else hashlib.sha256(text.encode("utf-8")).hexdigest()

    return {"n": n, "paths_sha256": digest(paths), "identities_sha256": digest(names)}


def _det(groups, hard):
    """DET points (FNMR against matched FMR, the hard group's FNMR doubled) and each group's EER,
    where the two rates meet."""
    det, eer = {}, {}
    fmr = np.logspace(-5, 0, 30)
    for k, name in enumerate(groups):
        fnmr = np.clip((0.05 + 0.01 * k) * (1 + (k == hard)) * fmr ** -0.25 * (1 - fmr), 0, 1)
        det[name] = {"threshold": np.linspace(0.9, -0.2, 30).tolist(), "fmr": fmr.tolist(),
                     "fnmr": fnmr.tolist()}
        crossing = int(np.argmax(fnmr <= fmr))
        eer[name] = float((fmr[crossing] + fnmr[crossing]) / 2)
    return det, eer


def score_distributions(rng, n_images, names=GROUPS, hard=3, impostor_centre=0.0):
    """A `score_distributions` dict: the hard group's genuine scores lower, impostor scores near
    `impostor_centre`."""
    groups = np.repeat(np.arange(len(names)), len(n_images) // len(names))
    genuine_n = [int((n_images[groups == g] * (n_images[groups == g] - 1)).sum())
                 for g in range(len(names))]
    impostor_n = [int(n_images[groups == g].sum() * (n_images.sum() - n_images[groups == g].sum()))
                  for g in range(len(names))]
    genuine_mean = 0.6 - 0.15 * (np.arange(len(names)) == hard) + rng.normal(0, 0.01, len(names))
    impostor_matrix = impostor_centre + rng.normal(0.0, 0.01, (len(names), len(names)))
    impostor_matrix = (impostor_matrix + impostor_matrix.T) / 2
    impostor_mean = impostor_matrix.mean(axis=1)
    stats = {"genuine": {}, "impostor": {}}
    for kind, means, counts, spread in (("genuine", genuine_mean, genuine_n, 0.1),
                                        ("impostor", impostor_mean, impostor_n, 0.15)):
        stats[kind]["all"] = {"mean": float(np.average(means, weights=counts)),
                              "std": spread, "n": int(sum(counts))}
        for g, name in enumerate(names):
            stats[kind][name] = {"mean": float(means[g]), "std": spread, "n": counts[g]}
    stats["impostor_matrix"] = {"mean": impostor_matrix.tolist(),
                                "std": np.full((len(names), len(names)), 0.15).tolist()}
    stats["shift"] = {
        kind: {name: (stats[kind][name]["mean"] - stats[kind]["all"]["mean"])
               / stats[kind]["all"]["std"] for name in names}
        for kind in ("genuine", "impostor")
    }
    return stats


def pair_result(rng, model=None, extras=True, groups=GROUPS):
    """A pair-protocol result dict, the last group the hard one; with `extras`, ROC and DET
    points per group, EERs and the pairs' fingerprint."""
    groups = list(groups)
    hard = len(groups) - 1
    data = {"protocol": "pair", "group_names": groups, "groups": {},
            "fold_assignment": "contiguous"}
    if model:
        data["model"] = model
    accuracies = []
    for k, name in enumerate(groups):
        folds = np.clip(rng.normal(0.95 - 0.08 * (k == hard), 0.01, 10), 0, 1)
        accuracy = float(folds.mean())
        accuracies.append(accuracy)
        data["groups"][name] = {
            "accuracy": accuracy,
            "fold_accuracies": folds.tolist(),
            "tar_at_far_1e-3": float(rng.uniform(0.3, 0.8)),
        }
    accuracies = 100 * np.array(accuracies)
    data["mean_accuracy"] = float(accuracies.mean())
    data["std"] = float(accuracies.std(ddof=1))
    data["ser"] = float((100 - accuracies).max() / (100 - accuracies).min())
    if extras:
        data["roc"] = {  # the pair protocol names the axes FAR and TAR
            name: {"far": curve["fpr"], "tar": curve["tpr"]}
            for name, curve in _roc(rng, 1 / 3000, groups, hard).items()
        }
        data["det"], data["eer"] = _det(groups, hard)
        data["images"] = {"n": len(groups) * 6000,
                          "labels_sha256": hashlib.sha256(b"pairs").hexdigest()}
    return data


def identification_result(rng, model=None, extras=True, targets=(1e-2, 1e-1), ranks=(1, 5, 10)):
    """An identification result dict (40 mated and 50 non-mated searches per group), Indian with
    the highest FNIR; with `extras`, DET points (a point with FNIR 0 and an undefined one)."""
    n_mated, n_nonmated = 40, 50
    data = {
        "protocol": "identification", "group_names": GROUPS, "n_templates": 80,
        "n_mated": n_mated * len(GROUPS), "n_nonmated": n_nonmated * len(GROUPS), "rank": 1,
        "ranks": list(ranks), "results": [], "cmc": {},
    }
    if model:
        data["model"] = model
    hard = np.arange(len(GROUPS)) == 3
    for target in targets:
        fnir = np.round(np.clip(0.1 + 0.3 * hard - 0.2 * target + rng.normal(0, 0.02, 4), 0, 1)
                        * n_mated) / n_mated
        fpir = np.round(target * (1 + hard) * n_nonmated) / n_nonmated
        matrix = rng.integers(0, 3, (len(GROUPS), len(GROUPS)))
        data["results"].append({
            "target_fpir": target, "threshold": float(rng.uniform(0.3, 0.6)),
            "fnir": float(fnir.mean()), "fpir": float(fpir.mean()),
            "groups": {name: {"fnir": float(fnir[g]), "fpir": float(fpir[g]),
                              "n_mated": n_mated, "n_nonmated": n_nonmated}
                       for g, name in enumerate(GROUPS)},
            "fairness": {"fnir_max_geomean": float(fnir.max() / np.exp(np.log(fnir).mean())),
                         "fpir_max_geomean": None if fpir.min() == 0 else
                         float(fpir.max() / np.exp(np.log(fpir).mean()))},
            "false_positive_matrix": matrix.tolist(),
        })
    rank_1 = 0.9 - 0.3 * hard + rng.normal(0, 0.02, 4)
    rates = [np.minimum(1.0, rank_1[g] + 0.02 * np.log(np.asarray(ranks))) for g in range(4)]
    data["cmc"] = {name: rates[g].tolist() for g, name in enumerate(GROUPS)}
    data["cmc"]["all"] = np.mean(rates, axis=0).tolist()
    if extras:
        data["gallery_images"] = 1
        data["det"] = {}
        for name in ["all"] + GROUPS:
            fpir = np.logspace(-2, 0, 20)
            fnir = np.clip(0.4 * (1 + (name == "Indian")) * (1 - fpir) ** 2, 0, 1)
            data["det"][name] = {"threshold": np.linspace(0.9, 0.1, 20).tolist(),
                                 "fpir": fpir.tolist(), "fnir": fnir.tolist()}
        data["det"]["Asian"]["fnir"][0] = None  # undefined points are dropped
    return data


def _stats(tpr, fpr):
    valid = tpr[~np.isnan(tpr)]
    return {
        "tpr_mean": float(valid.mean()),
        "tpr_std": float(valid.std()),
        "fpr_mean": float(fpr.mean()),
        "fpr_std": float(fpr.std()),
    }


def _roc(rng, smallest, groups=GROUPS, hard=3):
    curves = {}
    for k, name in enumerate(groups):
        fpr = np.concatenate([[0.0], np.logspace(np.log10(smallest), 0, 40)])
        tpr = np.clip(1 - (0.3 + 0.3 * (k == hard)) * (1 - fpr) ** 8 - 0.05 * rng.random(), 0, 1)
        curves[name] = {"fpr": fpr.tolist(), "tpr": np.maximum.accumulate(tpr).tolist()}
    return curves


def as_file(data, model):
    """A results dict as the report holds it once loaded, under the model name `model`."""
    return ResultFile(path=None, protocol=data["protocol"], model=model, data=data)


def write_json(path, data):
    path.write_text(json.dumps(data))
    return path
