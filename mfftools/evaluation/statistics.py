"""The instance protocol's statistics and its results file, from counts at each threshold.

Inputs are integer counts per image (accepted genuine and impostor pairs of each sorted row), the
group x group counts of accepted impostor pairs, and the per-identity similarities; everything
here is float64 on the host, from those integers, so it depends on nothing but the counts.
"""
import numpy as np

from mfftools.evaluation import fairness, threshold as search


def mean_std(values):
    """(mean, population std) of `values`, or (None, None) when there are none."""
    if not len(values):
        return None, None
    return float(np.mean(values)), float(np.std(values))


def _floats(values):
    """A JSON list of numbers; NaN (undefined) becomes None."""
    return [None if np.isnan(value) else float(value) for value in values]


def identity_rates(tp, fp, layout):
    """Per identity: mean TPR (NaN without genuine pairs) and mean FPR over its images."""
    genuine = layout.genuine_per_row
    tpr_row = np.where(genuine > 0, tp / np.maximum(genuine, 1), 0.0)
    fpr_row = fp / layout.impostor_per_row
    n_ids = layout.n_identities
    tpr = np.bincount(layout.identity, weights=tpr_row, minlength=n_ids) / layout.sizes
    fpr = np.bincount(layout.identity, weights=fpr_row, minlength=n_ids) / layout.sizes
    tpr[layout.sizes < 2] = np.nan
    return tpr, fpr


def group_rates(tp, fp, layout):
    """Per group of the probe image: FMR over impostor pairs (`fmr_probe_group`), FNMR over
    genuine pairs (None for a group without such pairs)."""
    n_groups = layout.n_groups
    accepted_genuine = np.bincount(layout.group, weights=tp, minlength=n_groups)
    accepted_impostor = np.bincount(layout.group, weights=fp, minlength=n_groups)
    fmr = [a / n if n else None for a, n in zip(accepted_impostor, layout.impostor_per_group)]
    fnmr = [1.0 - a / n if n else None for a, n in zip(accepted_genuine, layout.genuine_per_group)]
    return fmr, fnmr


def matched_fmr(matrix, layout):
    """Per group d: FMR over impostor pairs with both images in d (NISTIR 8280's demographically
    matched impostors), the diagonal of the group x group FMR matrix; None without such pairs."""
    pairs = layout.impostor_per_group_pair
    return [float(matrix[d, d] / pairs[d, d]) if pairs[d, d] else None
            for d in range(len(pairs))]


def reference_of(fmr, group_names, requested=None):
    """The reference group of relative FMR: `requested` (a group name), else the group with the
    lowest matched FMR (the first on ties); None when no group has one."""
    if requested is not None:
        return requested
    defined = [(value, g) for g, value in enumerate(fmr) if value is not None]
    return group_names[min(defined)[1]] if defined else None


def relative_fmr(fmr, group_names, reference):
    """FMR_d / FMR_reference per group (NIST's FMR inflation); None where either is undefined or
    the reference's FMR is 0."""
    base = fmr[group_names.index(reference)] if reference is not None else None
    return [value / base if value is not None and base else None for value in fmr]


def entry(counts, layout, group_names, sims, reference_group=None):
    """One `results` entry of the results file from the counts at one threshold.

    counts: dict with target_fpr, method, threshold, converged, tp and fp (per sorted row) and
    matrix (group x group accepted impostor pairs); `reference_group`: the group relative FMR
    divides by (default: the lowest matched FMR).
    """
    tp, fp = counts["tp"], counts["fp"]
    tpr_id, fpr_id = identity_rates(tp, fp, layout)
    with_genuine = ~np.isnan(tpr_id)
    fmr_probe, fnmr = group_rates(tp, fp, layout)
    matrix = counts["matrix"]
    fmr = matched_fmr(matrix, layout)
    reference = reference_of(fmr, group_names, reference_group)
    relative = relative_fmr(fmr, group_names, reference)
    groups = {}
    for g, name in enumerate(group_names):
        members = layout.identity_group == g
        tpr_mean, tpr_std = mean_std(tpr_id[members & with_genuine])
        fpr_mean, fpr_std = mean_std(fpr_id[members])
        groups[name] = {
            "tpr_mean": tpr_mean, "tpr_std": tpr_std, "fpr_mean": fpr_mean, "fpr_std": fpr_std,
            "fmr": fmr[g], "fnmr": fnmr[g], "fmr_probe_group": fmr_probe[g],
            "fmr_relative": relative[g],
        }
    present = [g for g in range(len(group_names)) if fmr[g] is not None and fnmr[g] is not None]
    tpr_mean, tpr_std = mean_std(tpr_id[with_genuine])
    fpr_mean, fpr_std = mean_std(fpr_id)
    pairs = layout.impostor_per_group_pair
    return {
        "target_fpr": counts["target_fpr"],
        "method": counts["method"],
        "threshold": counts["threshold"],
        "tpr": float(tp.sum() / layout.n_genuine_ordered) if layout.n_genuine_ordered else None,
        "fpr": float(fp.sum() / layout.n_impostor_ordered),
        "converged": counts["converged"],
        "instance": {
            "tpr_mean": tpr_mean, "tpr_std": tpr_std, "fpr_mean": fpr_mean, "fpr_std": fpr_std,
        },
        "groups": groups,
        "reference_group": reference,
        "fairness": fairness.group_fairness([fmr[g] for g in present], [fnmr[g] for g in present]),
        "n_accepted_genuine": int(tp.sum()),
        "n_accepted_impostor": int(fp.sum()),
        "group_fmr_matrix": [
            [float(matrix[a, b] / pairs[a, b]) if pairs[a, b] else None for b in range(len(pairs))]
            for a in range(len(pairs))
        ],
        "per_identity": {
            "group": [int(g) for g in layout.identity_group],
            "tpr": _floats(tpr_id),
            "fpr": _floats(fpr_id),
            "intra": _floats(sims["intra"]),
            "inter": _floats(sims["inter"]),
        },
    }


def identity_sums(per_row, layout):
    """Per identity: the sum of a per-row count over its images (ints)."""
    return np.bincount(layout.identity, weights=per_row, minlength=layout.n_identities).astype(
        np.int64).tolist()


def similarity_by_group(sims, layout, group_names):
    """Per group: intra (all identities, as the paper; and over identities with at least two
    images, `_multi`) and inter similarity, mean and population std over its identities."""
    out = {}
    multi = layout.sizes >= 2
    for g, name in enumerate(group_names):
        members = layout.identity_group == g
        intra_mean, intra_std = mean_std(sims["intra"][members])
        multi_mean, multi_std = mean_std(sims["intra"][members & multi])
        inter_mean, inter_std = mean_std(sims["inter"][members])
        out[name] = {
            "intra_mean": intra_mean, "intra_std": intra_std,
            "inter_mean": inter_mean, "inter_std": inter_std,
            "intra_mean_multi": multi_mean, "intra_std_multi": multi_std,
        }
    return out


def roc(topset, genuine, layout, group_names):
    """Per group (of the probe image): TPR and FPR at thresholds spread over the ranks of the
    kept impostor scores (the low-FPR region the top set covers). Every group is listed; a rate
    without pairs to count is null."""
    values, rows_i, rows_j = (part.numpy() for part in topset.pairs())
    if not len(values):
        return {}
    thresholds = search.thresholds_at_ranks(values)
    group = layout.group
    impostor_sides = (group[rows_i], group[rows_j])
    genuine_sides = (group[layout.genuine_i], group[layout.genuine_j])
    out = {}
    for g, name in enumerate(group_names):
        impostor = np.concatenate([values[side == g] for side in impostor_sides])
        accepted = np.concatenate([genuine[side == g] for side in genuine_sides])
        out[name] = {
            "threshold": _floats(thresholds.astype(np.float64)),
            "fpr": search.rates_above(impostor, thresholds, layout.impostor_per_group[g]),
            "tpr": search.rates_above(accepted, thresholds, layout.genuine_per_group[g]),
        }
    return out


def results_file(layout, embeddings, group_names, entries, sims, roc_points, engine):
    """The results dict: the specification's keys, then the extras (see docs/inst-eval.md)."""
    return {
        "protocol": "instance",
        "n_images": layout.n_rows,
        "n_identities": layout.n_identities,
        "dim": embeddings.dim,
        "group_names": list(group_names),
        "results": entries,
        "similarity": similarity_by_group(sims, layout, group_names),
        "n_genuine_pairs": layout.n_genuine_ordered,
        "n_impostor_pairs": layout.n_impostor_ordered,
        "n_single_image_identities": int(np.count_nonzero(layout.sizes == 1)),
        "n_mixed_group_identities": layout.n_mixed_group_identities,
        "identities": {
            "identity": [int(label) for label in layout.labels],
            "group": [int(g) for g in layout.identity_group],
            "n_images": [int(size) for size in layout.sizes],
            "n_genuine_pairs": (layout.sizes * (layout.sizes - 1)).tolist(),
            "n_impostor_pairs": (layout.sizes * (layout.n_rows - layout.sizes)).tolist(),
        },
        "roc": roc_points,
        "engine": engine,
    }
