"""Result JSONs for the report tests, built from small random per-identity tables.

The summary numbers are computed from the per-identity rows the way the protocol defines them, so
the files are internally consistent; group "Indian" is made the hard group (of identification
results too, whose rates are made up per group).
"""
import json

import numpy as np

GROUPS = ["African", "Asian", "Caucasian", "Indian"]


def instance_result(rng, model=None, n_per_group=30, extras=True, targets=((1e-4, "bisection"),),
                    multi=True):
    """An instance-protocol result dict; with `extras`, per-identity rows, the identities' image
    counts, ROC, FMR matrix and score distributions; with `multi`, the intra statistics over
    identities with at least two images (every 17th identity has one image, and intra 1 by
    construction)."""
    identity = np.arange(n_per_group * len(GROUPS))
    group = np.repeat(np.arange(len(GROUPS)), n_per_group)
    single = identity % 17 == 0
    n_images = np.where(single, 1, rng.integers(2, 7, len(identity)))
    data = {
        "protocol": "instance",
        "n_images": int(n_images.sum()),
        "n_identities": int(len(identity)),
        "dim": 512,
        "group_names": GROUPS,
        "results": [],
        "similarity": {},
    }
    if model:
        data["model"] = model
    intra = np.clip(rng.normal(0.7, 0.05, len(identity)) - 0.1 * (group == 3), -1, 1)
    intra[single] = 1.0
    inter = np.clip(rng.normal(0.3, 0.05, len(identity)) + 0.1 * (group == 3), -1, 1)
    for name_index, name in enumerate(GROUPS):
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
        tpr = np.clip(rng.normal(0.9, 0.05, len(identity)) - 0.2 * (group == 3), 0, 1)
        tpr[single] = np.nan  # no genuine pair
        fpr = np.abs(rng.normal(target, target / 2, len(identity))) * (1 + 2 * (group == 3))
        entry = {
            "target_fpr": target,
            "method": method,
            "threshold": float(rng.uniform(0.2, 0.6)),
            "tpr": float(np.nanmean(tpr)),
            "fpr": float(fpr.mean()),
            "converged": True,
            "instance": _stats(tpr, fpr),
            "groups": {},
            "fairness": {
                key: float(rng.uniform(0, 1))
                for key in ("fdr", "fpd", "fnd", "garbe", "fmr_max_geomean", "fnmr_max_geomean")
            },
        }
        for name_index, name in enumerate(GROUPS):
            rows = group == name_index
            stats = _stats(tpr[rows], fpr[rows])
            stats["fmr"] = stats["fpr_mean"]
            stats["fnmr"] = 1 - stats["tpr_mean"]
            entry["groups"][name] = stats
        if extras:
            entry["per_identity"] = {  # columns, group as an index, null TPR without genuine pairs
                "identity": identity.tolist(),
                "group": group.tolist(),
                "tpr": [None if np.isnan(t) else float(t) for t in tpr],
                "fpr": fpr.tolist(),
                "intra": intra.tolist(),
                "inter": inter.tolist(),
            }
            matrix = np.abs(rng.normal(target, target / 3, (4, 4)))
            matrix[3, 3] *= 5
            entry["group_fmr_matrix"] = matrix.tolist()
        data["results"].append(entry)
    if extras:
        data["roc"] = _roc(rng, 1e-6)
        data["score_distributions"] = score_distributions(rng, n_images)
        data["identities"] = {
            "identity": identity.tolist(), "group": group.tolist(), "n_images": n_images.tolist()
        }
    return data


def score_distributions(rng, n_images):
    """A `score_distributions` dict: Indian's genuine scores lower, impostor scores near 0."""
    groups = np.repeat(np.arange(len(GROUPS)), len(n_images) // len(GROUPS))
    genuine_n = [int((n_images[groups == g] * (n_images[groups == g] - 1)).sum())
                 for g in range(len(GROUPS))]
    impostor_n = [int(n_images[groups == g].sum() * (n_images.sum() - n_images[groups == g].sum()))
                  for g in range(len(GROUPS))]
    genuine_mean = 0.6 - 0.15 * (np.arange(len(GROUPS)) == 3) + rng.normal(0, 0.01, len(GROUPS))
    impostor_matrix = rng.normal(0.0, 0.01, (len(GROUPS), len(GROUPS)))
    impostor_matrix = (impostor_matrix + impostor_matrix.T) / 2
    impostor_mean = impostor_matrix.mean(axis=1)
    stats = {"genuine": {}, "impostor": {}}
    for kind, means, counts, spread in (("genuine", genuine_mean, genuine_n, 0.1),
                                        ("impostor", impostor_mean, impostor_n, 0.15)):
        stats[kind]["all"] = {"mean": float(np.average(means, weights=counts)),
                              "std": spread, "n": int(sum(counts))}
        for g, name in enumerate(GROUPS):
            stats[kind][name] = {"mean": float(means[g]), "std": spread, "n": counts[g]}
    stats["impostor_matrix"] = {"mean": impostor_matrix.tolist(),
                                "std": np.full((len(GROUPS), len(GROUPS)), 0.15).tolist()}
    stats["shift"] = {
        kind: {name: (stats[kind][name]["mean"] - stats[kind]["all"]["mean"])
               / stats[kind]["all"]["std"] for name in GROUPS}
        for kind in ("genuine", "impostor")
    }
    return stats


def pair_result(rng, model=None, extras=True):
    """A pair-protocol result dict; with `extras`, ROC points per group."""
    data = {"protocol": "pair", "group_names": GROUPS, "groups": {}}
    if model:
        data["model"] = model
    accuracies = []
    for k, name in enumerate(GROUPS):
        folds = np.clip(rng.normal(0.95 - 0.08 * (k == 3), 0.01, 10), 0, 1)
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
            for name, curve in _roc(rng, 1 / 3000).items()
        }
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


def _roc(rng, smallest):
    curves = {}
    for k, name in enumerate(GROUPS):
        fpr = np.concatenate([[0.0], np.logspace(np.log10(smallest), 0, 40)])
        tpr = np.clip(1 - (0.3 + 0.3 * (k == 3)) * (1 - fpr) ** 8 - 0.05 * rng.random(), 0, 1)
        curves[name] = {"fpr": fpr.tolist(), "tpr": np.maximum.accumulate(tpr).tolist()}
    return curves


def write_json(path, data):
    path.write_text(json.dumps(data))
    return path
