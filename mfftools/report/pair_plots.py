"""Figures of the pair protocol's results: per-group ROC curves and per-group accuracy.

Both take the results dict of `mfftools.evaluation.pair.evaluate_pairs` (or its JSON) and draw
with matplotlib's object API (no pyplot state, no display needed).
"""
import logging
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

logger = logging.getLogger(__name__)


def plot_roc(results, path):
    """TAR against FAR (log scale) for each group, from the results' sampled `roc` curves."""
    figure = Figure(figsize=(6, 4.5), layout="constrained")
    axes = figure.add_subplot()
    for name in results["group_names"]:
        curve = results["roc"][name]
        far, tar = np.asarray(curve["far"]), np.asarray(curve["tar"])
        shown = far > 0
        tar_at_far = results["groups"][name]["tar_at_far_1e-3"]
        axes.plot(far[shown], tar[shown], label=f"{name} (TAR@FAR=1e-3: {tar_at_far:.4f})")
    axes.axvline(results.get("far_target", 1e-3), color="grey", linestyle=":", linewidth=1)
    axes.set_xscale("log")
    axes.set_xlabel("FAR (false accept rate)")
    axes.set_ylabel("TAR (true accept rate)")
    axes.set_title("Pair protocol ROC per group")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="lower right", fontsize="small")
    figure.savefig(path, dpi=120)
    return Path(path)


def plot_accuracy(results, path):
    """Each group's accuracy (%) as a bar, its fold accuracies as dots, the mean as a line."""
    names = results["group_names"]
    figure = Figure(figsize=(6, 4.5), layout="constrained")
    axes = figure.add_subplot()
    positions = np.arange(len(names))
    accuracies = [results["groups"][name]["accuracy"] * 100 for name in names]
    axes.bar(positions, accuracies, color="tab:blue", alpha=0.6)
    for position, name in zip(positions, names):
        folds = np.asarray(results["groups"][name]["fold_accuracies"]) * 100
        axes.plot(np.full(len(folds), position), folds, "k.", markersize=4)
    axes.axhline(results["mean_accuracy"], color="tab:red", linestyle="--", linewidth=1,
                 label=f"mean {results['mean_accuracy']:.2f}")
    lowest = min(min(results["groups"][name]["fold_accuracies"]) for name in names) * 100
    axes.set_ylim(max(0.0, lowest - 2.0), 100.5)
    axes.set_xticks(positions, names)
    axes.set_ylabel("accuracy (%)")
    axes.set_title("Pair protocol accuracy per group (dots: folds)")
    axes.legend(loc="lower right", fontsize="small")
    figure.savefig(path, dpi=120)
    return Path(path)


def write_pair_plots(results, out_dir):
    """Write `pair_roc.png` (when the results carry ROC samples) and `pair_accuracy.png`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [plot_accuracy(results, out_dir / "pair_accuracy.png")]
    if "roc" in results:
        written.append(plot_roc(results, out_dir / "pair_roc.png"))
    else:
        logger.warning("the results carry no ROC samples; %s not drawn", out_dir / "pair_roc.png")
    return written
