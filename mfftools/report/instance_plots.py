"""Figures of one instance-protocol result, as in the paper: per-identity TPR/FPR and intra/inter
similarity by group (identities laid out group after group), and ROC per group at low FPR."""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _values(column):
    return np.array([np.nan if value is None else value for value in column], dtype=np.float64)


def _by_group(axis, groups, values, names, ylabel):
    """Scatter of one value per identity, the identities of each group side by side."""
    offset = 0
    for g, name in enumerate(names):
        chosen = values[(groups == g) & ~np.isnan(values)]
        axis.scatter(offset + np.arange(len(chosen)), chosen, s=2, label=name)
        offset += len(chosen)
    axis.set_xlabel("identity")
    axis.set_ylabel(ylabel)
    axis.legend(markerscale=4, fontsize="small")


def _save(figure, path):
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def _slug(entry):
    return f"{entry['target_fpr']:g}_{entry['method']}"


def write_instance_plots(result, out_dir):
    """Write the figures as PNG into `out_dir`; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = result["group_names"]
    paths = []
    for entry in result["results"]:
        table = entry["per_identity"]
        groups = np.asarray(table["group"])
        figure, axes = plt.subplots(1, 2, figsize=(11, 4))
        _by_group(axes[0], groups, _values(table["tpr"]), names, "TPR")
        _by_group(axes[1], groups, _values(table["fpr"]), names, "FPR")
        figure.suptitle(f"per-identity rates at target FPR {entry['target_fpr']:g} "
                        f"({entry['method']}, threshold {entry['threshold']:.4f})")
        paths.append(_save(figure, out_dir / f"instance_rates_{_slug(entry)}.png"))
    table = result["results"][0]["per_identity"]
    groups = np.asarray(table["group"])
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    _by_group(axes[0], groups, _values(table["intra"]), names, "intra-identity similarity")
    _by_group(axes[1], groups, _values(table["inter"]), names, "inter-identity similarity")
    paths.append(_save(figure, out_dir / "instance_similarity.png"))
    if result.get("roc"):
        figure, axis = plt.subplots(figsize=(6, 4.5))
        for name, points in result["roc"].items():
            fpr, tpr = _values(points["fpr"]), _values(points["tpr"])
            shown = fpr > 0
            axis.plot(fpr[shown], tpr[shown], label=name)
        axis.set_xscale("log")
        axis.set_xlabel("FPR (impostor pairs of the group's probes)")
        axis.set_ylabel("TPR")
        axis.set_title("ROC per group, low-FPR region")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize="small")
        paths.append(_save(figure, out_dir / "instance_roc.png"))
    return paths
