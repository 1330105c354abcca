"""The report's figures as PNG files: one panel per model, one colour per group.

Figures are drawn with matplotlib's object API (no pyplot, no global backend state), rendered by
Agg. A figure whose data a result lacks (ROC points, the FMR matrix, per-identity rows) is not
drawn; the caller gets a note saying which extra was missing instead.
"""
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure as MplFigure

from mfftools.report.results import (
    as_floats,
    entry_label,
    fmr_matrix,
    per_identity,
    per_identity_rates,
    roc_curves,
)

logger = logging.getLogger(__name__)

DPI = 100
PANEL_WIDTH = 4.6
PANEL_HEIGHT = 3.6


@dataclass
class Figure:
    """A PNG written into the report folder, with what it shows."""

    path: Path
    title: str
    caption: str


class FigureWriter:
    """Draws the report's figures into `out_dir`, collecting notes about figures left out."""

    def __init__(self, out_dir):
        self.out_dir = Path(out_dir)
        self.notes = []

    def _save(self, figure, name, title, caption):
        path = self.out_dir / f"{name}.png"
        figure.savefig(path, dpi=DPI, bbox_inches="tight")
        logger.debug("wrote %s", path)
        return Figure(path=path, title=title, caption=caption)

    def _panels(self, count, rows=1):
        figure = MplFigure(figsize=(PANEL_WIDTH * count, PANEL_HEIGHT * rows), layout="constrained")
        axes = figure.subplots(rows, count, squeeze=False)
        return figure, axes

    def pair_accuracy(self, results):
        """Grouped bars: accuracy per group and model, error bars = std over folds."""
        names = _group_names(results)
        figure, axes = self._panels(1)
        ax = axes[0, 0]
        width = 0.8 / len(results)
        for k, result in enumerate(results):
            acc, err = [], []
            for name in names:
                group = result.data["groups"].get(name)
                folds = np.asarray(group["fold_accuracies"]) if group else np.array([np.nan])
                acc.append(100 * group["accuracy"] if group else np.nan)
                err.append(100 * folds.std())
            ax.bar(np.arange(len(names)) + (k - (len(results) - 1) / 2) * width, acc, width,
                   yerr=err, capsize=3, label=result.model)
        ax.set_xticks(np.arange(len(names)), names)
        ax.set_ylabel("accuracy (%)")
        _zoom_to_bars(ax, results, names)
        ax.legend(fontsize="small")
        ax.set_title("Pair protocol: accuracy per group")
        return self._save(figure, "pair_accuracy", "Pair accuracy per group",
                          "Mean accuracy over the 10 folds; error bars: std over folds.")

    def group_means(self, pairs, intervals, slug):
        """Instance TPR and FPR means per group and model, error bars = bootstrap 95% CI."""
        results = [result for result, _ in pairs]
        names = _group_names(results)
        figure, axes = self._panels(2)
        width = 0.8 / len(pairs)
        for panel, stat in enumerate(("tpr_mean", "fpr_mean")):
            ax = axes[0, panel]
            for k, (result, entry) in enumerate(pairs):
                values = as_floats([entry["groups"].get(name, {}).get(stat) for name in names])
                ci = intervals.get(result.model, {}).get("groups", {})
                lows = np.array([ci[n][stat].low if stat in ci.get(n, {}) else v
                                 for n, v in zip(names, values)])
                highs = np.array([ci[n][stat].high if stat in ci.get(n, {}) else v
                                  for n, v in zip(names, values)])
                yerr = np.clip(np.vstack([values - lows, highs - values]), 0, None) if ci else None
                ax.bar(np.arange(len(names)) + (k - (len(pairs) - 1) / 2) * width, values, width,
                       yerr=yerr, capsize=3, label=result.model)
            ax.set_xticks(np.arange(len(names)), names)
            ax.set_title(f"instance {stat.split('_')[0].upper()} mean")
            ax.legend(fontsize="small")
        figure.suptitle(entry_label(pairs[0][1]))
        caption = "Mean over the group's identities"
        caption += "; error bars: bootstrap 95% CI over identities." if intervals else "."
        return self._save(figure, f"instance_group_means_{slug}",
                          f"Instance TPR/FPR means per group ({entry_label(pairs[0][1])})", caption)

    def roc(self, results, protocol):
        """Per-group ROC curves in the low-FPR region (log FPR axis), one panel per model."""
        curves = {result.model: roc_curves(result) for result in results}
        missing = [model for model, c in curves.items() if c is None]
        if missing:
            self.notes.append(f"{protocol} ROC curves not drawn for {', '.join(missing)}: "
                              "the result has no 'roc' points.")
        drawn = [(model, c) for model, c in curves.items() if c is not None]
        if not drawn:
            return None
        figure, axes = self._panels(len(drawn))
        for ax, (model, model_curves) in zip(axes[0], drawn):
            smallest, largest = 1.0, 0.0
            for k, (name, (fpr, tpr)) in enumerate(model_curves.items()):
                order = np.argsort(fpr, kind="stable")
                fpr, tpr = fpr[order], tpr[order]
                positive = fpr > 0
                if positive.any():
                    smallest = min(smallest, fpr[positive].min())
                    largest = max(largest, fpr[positive].max())
                ax.plot(fpr[positive], tpr[positive], color=_colour(k), label=name)
            ax.set_xscale("log")
            # the curves' own FPR range: the instance protocol only samples the low-FPR end
            ax.set_xlim(smallest, max(min(1.0, largest), smallest * 10))
            ax.set_xlabel("FPR")
            ax.set_ylabel("TPR")
            ax.set_title(model)
            ax.grid(True, which="major", alpha=0.3)
            ax.legend(fontsize="small", loc="lower right")
        return self._save(figure, f"{protocol}_roc", f"{protocol.capitalize()} ROC per group",
                          "ROC curve of each group, FPR on a log axis (low-FPR region).")

    def _available(self, pairs, extract, what, needed):
        """(result, data) for the models whose entry has the data; a note names the others."""
        found = [(result, extract(result, entry)) for result, entry in pairs]
        missing = [result.model for result, data in found if data is None]
        if missing:
            self.notes.append(f"{what} at {entry_label(pairs[0][1])} not drawn for "
                              f"{', '.join(missing)}: the result has no {needed}.")
        return [(result, data) for result, data in found if data is not None]

    def fmr_heatmaps(self, pairs, slug):
        """The group x group FMR matrix of each model at one operating point."""
        drawn = self._available(pairs, fmr_matrix, "FMR heat map", "'group_fmr_matrix'")
        if not drawn:
            return None
        figure, axes = self._panels(len(drawn))
        for ax, (result, matrix) in zip(axes[0], drawn):
            names = result.group_names
            image = ax.imshow(matrix, cmap="viridis")
            ax.set_xticks(range(len(names)), names, rotation=30)
            ax.set_yticks(range(len(names)), names)
            ax.set_xlabel("group of the compared image")
            ax.set_ylabel("group of the probe")
            for i in range(len(names)):
                for j in range(len(names)):
                    value = matrix[i, j]
                    ax.text(j, i, "-" if np.isnan(value) else f"{value:.1e}", ha="center",
                            va="center", fontsize="x-small",
                            color="white" if value < np.nanmax(matrix) / 2 else "black")
            ax.set_title(result.model)
            figure.colorbar(image, ax=ax, shrink=0.8)
        return self._save(figure, f"instance_fmr_matrix_{slug}",
                          f"Group x group FMR ({entry_label(pairs[0][1])})",
                          "False match rate of impostor pairs by the groups of their two images.")

    def per_identity_rates(self, pairs, slug):
        """Distributions of per-identity TPR and FPR by group (box plots), one row per model."""
        drawn = self._available(pairs, per_identity_rates, "Per-identity TPR/FPR",
                                "'per_identity' rows")
        if not drawn:
            return None
        figure, axes = self._panels(2, rows=len(drawn))
        for row, (result, columns) in enumerate(drawn):
            for panel, rate in enumerate(("tpr", "fpr")):
                _boxes(axes[row, panel], result.group_names, columns, rate)
                axes[row, panel].set_title(f"{result.model}: per-identity {rate.upper()}")
        return self._save(figure, f"instance_per_identity_{slug}",
                          f"Per-identity TPR and FPR by group ({entry_label(pairs[0][1])})",
                          "Each box: the group's identities (identities without a genuine pair "
                          "left out of TPR).")

    def similarity(self, results):
        """Intra/inter identity similarity by group: per-identity distributions when available,
        else the means with std as error bars."""
        figure, axes = self._panels(2, rows=len(results))
        for row, result in enumerate(results):
            columns = None
            for entry in result.data["results"]:
                columns = per_identity(result, entry)
                if columns is not None:
                    break
            for panel, kind in enumerate(("intra", "inter")):
                ax = axes[row, panel]
                if columns is not None and kind in columns:
                    _boxes(ax, result.group_names, columns, kind)
                else:
                    names = result.group_names
                    means = as_floats([result.data["similarity"][n][f"{kind}_mean"] for n in names])
                    stds = as_floats([result.data["similarity"][n][f"{kind}_std"] for n in names])
                    ax.bar(range(len(names)), means, yerr=stds, capsize=3,
                           color=[_colour(k) for k in range(len(names))])
                    ax.set_xticks(range(len(names)), names)
                ax.set_title(f"{result.model}: {kind} similarity")
        return self._save(figure, "instance_similarity", "Intra/inter identity similarity by group",
                          "Intra: cosine of each image to its identity centroid; inter: mean "
                          "cosine of a centroid to its 50 nearest other centroids.")


def _boxes(ax, names, columns, key):
    data = []
    for index in range(len(names)):
        values = columns[key][columns["group"] == index]
        data.append(values[~np.isnan(values)])
    boxes = ax.boxplot(data, patch_artist=True, showfliers=True, flierprops={"markersize": 2})
    for k, patch in enumerate(boxes["boxes"]):
        patch.set_facecolor(_colour(k))
        patch.set_alpha(0.6)
    ax.set_xticks(range(1, len(names) + 1), names)


def _zoom_to_bars(ax, results, names):
    values = [100 * r.data["groups"][n]["accuracy"] for r in results for n in names
              if n in r.data["groups"]]
    low = min(values)
    ax.set_ylim(max(0.0, low - max(5.0, (100 - low) * 0.5)), 100)


def _colour(k):
    return f"C{k % 10}"


def _group_names(results):
    names = []
    for result in results:
        names += [name for name in result.group_names if name not in names]
    return names
