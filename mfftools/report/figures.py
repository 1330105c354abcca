"""The report's figures as PNG files, with their titles and captions.

`drawing` draws each figure; this module picks the data, names the files and writes them. A figure
whose data a result lacks (ROC or DET points, the FMR matrix, per-identity rows) is not drawn; the
caller gets a note saying which extra was missing instead.
"""
import logging
from dataclasses import dataclass
from pathlib import Path

from mfftools.files import atomic_output
from mfftools.report import drawing
from mfftools.report.results import (
    det_curves,
    entry_label,
    fmr_matrix,
    has_multi_intra,
    per_identity,
    per_identity_rates,
    roc_curves,
    score_distributions,
)

logger = logging.getLogger(__name__)

DPI = 100


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
        with atomic_output(path) as temporary:
            figure.savefig(temporary, format="png", dpi=DPI, bbox_inches="tight")
        logger.debug("wrote %s", path)
        return Figure(path=path, title=title, caption=caption)

    def pair_accuracy(self, results):
        """Grouped bars: accuracy per group and model, error bars = std over folds."""
        figure = drawing.pair_accuracy(results)
        caption = "Mean accuracy over the 10 folds; error bars: std over folds."
        bottom = figure.axes[0].get_ylim()[0]
        if bottom > 0:
            caption += f" The accuracy axis starts at {bottom:.3g}%, not 0."
        return self._save(figure, "pair_accuracy", "Pair accuracy per group", caption)

    def group_means(self, pairs, intervals, slug):
        """Instance TPR and FPR means per group and model, error bars = bootstrap 95% CI."""
        caption = "Mean over the group's identities"
        caption += "; error bars: bootstrap 95% CI over identities." if intervals else "."
        return self._save(drawing.group_means(pairs, intervals), f"instance_group_means_{slug}",
                          f"Instance TPR/FPR means per group ({entry_label(pairs[0][1])})", caption)

    def roc(self, results, protocol):
        """Per-group ROC curves in the low-FPR region (log FPR axis), one panel per model."""
        drawn = self._drawable([(result, roc_curves(result)) for result in results],
                               f"{protocol} ROC curves", "'roc' points")
        if not drawn:
            return None
        return self._save(drawing.roc(drawn), f"{protocol}_roc",
                          f"{protocol.capitalize()} ROC per group",
                          "ROC curve of each group, FPR on a log axis (low-FPR region).")

    def _drawable(self, found, what, needed):
        """The (result, data) of `found` that have data; a note names the models without."""
        missing = [result.model for result, data in found if data is None]
        if missing:
            self.notes.append(f"{what} not drawn for {', '.join(missing)}: the result has no "
                              f"{needed}.")
        return [(result, data) for result, data in found if data is not None]

    def _available(self, pairs, extract, what, needed):
        """(result, data) for the models whose entry has the data; a note names the others."""
        return self._drawable([(result, extract(result, entry)) for result, entry in pairs],
                              f"{what} at {entry_label(pairs[0][1])}", needed)

    def fmr_heatmaps(self, pairs, slug):
        """The group x group FMR matrix of each model at one operating point."""
        drawn = self._available(pairs, fmr_matrix, "FMR heat map", "'group_fmr_matrix'")
        if not drawn:
            return None
        return self._save(drawing.fmr_heatmaps(drawn), f"instance_fmr_matrix_{slug}",
                          f"Group x group FMR ({entry_label(pairs[0][1])})",
                          "False match rate of impostor pairs by the groups of their two images.")

    def per_identity_rates(self, pairs, slug):
        """Distributions of per-identity TPR and FPR by group (box plots), one row per model."""
        drawn = self._available(pairs, per_identity_rates, "Per-identity TPR/FPR",
                                "'per_identity' rows")
        if not drawn:
            return None
        return self._save(drawing.per_identity_rates(drawn), f"instance_per_identity_{slug}",
                          f"Per-identity TPR and FPR by group ({entry_label(pairs[0][1])})",
                          "Each box: the group's identities (identities without a genuine pair "
                          "left out of TPR).")

    def false_positive_heatmaps(self, pairs, slug):
        """The false-positive matrix of each identification result at one target FPIR."""
        matrices = [(result, entry["false_positive_matrix"]) for result, entry in pairs]
        return self._save(drawing.false_positive_heatmaps(matrices),
                          f"identification_false_positives_{slug}",
                          f"False positives by group ({entry_label(pairs[0][1])})",
                          "Non-mated searches scoring above the threshold, by the group of the "
                          "search (rows) and of its best template (columns); log colour scale, "
                          "cells without any false positive in grey.")

    def cmc(self, results):
        """The CMC of each identification result, per group of the search."""
        return self._save(drawing.cmc(results), "identification_cmc",
                          "CMC per group", "Rank-k identification rate of the mated searches "
                          "(no threshold), per group of the search and over all searches.")

    def det(self, results):
        """FNIR against FPIR per group on log axes, one panel per model."""
        drawn = self._drawable([(result, det_curves(result)) for result in results],
                               "FNIR vs FPIR curves", "'det' points")
        if not drawn:
            return None
        return self._save(drawing.det(drawn), "identification_det",
                          "FNIR vs FPIR per group",
                          "FNIR at the result's rank against FPIR as the threshold moves, per "
                          "group of the search (log axes; points where a rate is 0 cannot be "
                          "drawn on them); dotted: the target FPIRs.")

    def score_distributions(self, results):
        """Impostor mean per pair of groups, and genuine/impostor mean +- std per group; results
        that have `score_distributions`."""
        drawn = [(result, score_distributions(result)) for result in results]
        return self._save(drawing.score_distributions(drawn), "instance_score_distributions",
                          "Genuine and impostor scores by group",
                          "Left: mean impostor score of each pair of groups (probe, compared "
                          "image). Right: mean +- std of the genuine and impostor scores whose "
                          "probe is in the group, and over all pairs.")

    def similarity(self, results):
        """Intra/inter identity similarity by group: per-identity distributions when available,
        else the means with std as error bars."""
        similarities = [(result, _first_per_identity(result)) for result in results]
        caption = (
            "Intra: cosine of each image to its identity centroid, over identities with at least "
            "two images (an identity with one image scores 1 by construction, which would "
            "inflate the intra similarity); inter: mean cosine of a centroid to its 50 nearest "
            "other centroids."
        )
        inflated = [result.model for result, columns in similarities
                    if not drawing.intra_boxes_drawable(columns) and not has_multi_intra(result)]
        if inflated:
            caption += (
                f" {', '.join(inflated)}: the result gives neither the identities' image counts "
                "nor intra_mean_multi, so its intra similarity includes one-image identities."
            )
        return self._save(drawing.similarity(similarities), "instance_similarity",
                          "Intra/inter identity similarity by group", caption)


def _first_per_identity(result):
    """The per-identity columns of the first operating point that has them, or None."""
    for entry in result.data["results"]:
        columns = per_identity(result, entry)
        if columns is not None:
            return columns
    return None
