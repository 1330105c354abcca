"""The report's figures as PNG files, with their titles and captions.

`drawing` draws each figure; this module picks the data, names the files and writes them. A figure
whose data a result lacks (ROC or DET points, the FMR matrix, per-identity rows) is not drawn; the
caller gets a note saying which extra was missing instead.
"""
import logging
from dataclasses import dataclass
from pathlib import Path

from mfftools.files import atomic_output
from mfftools.reporting import drawing
from mfftools.reporting.results import (
    det_curves,
    entry_label,
    fmr_matrix,
    folds_label,
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
        folds = "; ".join(dict.fromkeys(folds_label(result.data) for result in results))
        caption = f"Mean accuracy over the folds ({folds}); error bars: std over folds."
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
        """Per-group ROC curves in the low-FPR region (log FPR axis), one panel per model; the
        caption names each group without a curve, and why."""
        drawn = self._drawable([(result, roc_curves(result)) for result in results],
                               f"{protocol} ROC curves", "'roc' points")
        if not drawn:
            return None
        caption = "ROC curve of each group, FPR on a log axis (low-FPR region)."
        caption += _missing_curves(drawn, _roc_gaps)
        return self._save(drawing.roc(drawn), f"{protocol}_roc",
                          f"{protocol.capitalize()} ROC per group", caption)

    def det(self, results, protocol):
        """Per-group DET curves, one panel per model: FNMR against matched FMR on normal-deviate
        axes (instance, pair), or FNIR against FPIR on log axes (identification)."""
        if protocol == "identification":
            drawn = self._drawable([(result, det_curves(result)) for result in results],
                                   "FNIR vs FPIR curves", "'det' points")
            if not drawn:
                return None
            return self._save(drawing.det(drawn), "identification_det",
                              "FNIR vs FPIR per group",
                              "FNIR at the result's rank against FPIR as the threshold moves, "
                              "per group of the search (log axes; points where a rate is 0 "
                              "cannot be drawn on them); dotted: the target FPIRs.")
        drawn = self._drawable([(result, det_curves(result)) for result in results],
                               f"{protocol} DET curves", "'det' points")
        if not drawn:
            return None
        caption = ("FNMR against FMR as the threshold moves, per group, on normal-deviate "
                   "(probit) axes as NIST plots them; FMR over impostor pairs with both images "
                   "in the group (demographically matched). Dashed: FNMR = FMR; a curve crosses "
                   "it at the group's EER (in the table). Points where a rate is 0 or 1 have no "
                   "normal deviate and are left out.")
        caption += _missing_curves(drawn, _det_gaps)
        return self._save(drawing.verification_det(drawn), f"{protocol}_det",
                          f"{protocol.capitalize()} DET per group", caption)

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
        figure, labelled = drawing.fmr_heatmaps(drawn)
        return self._save(figure, f"instance_fmr_matrix_{slug}",
                          f"Group x group FMR ({entry_label(pairs[0][1])})",
                          "False match rate of impostor pairs by the groups of their two images "
                          "(the diagonal: the matched FMR of the tables), on a log colour scale; "
                          "cells without a false match in grey." + _unlabelled(labelled))

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
        figure, labelled = drawing.false_positive_heatmaps(matrices)
        return self._save(figure, f"identification_false_positives_{slug}",
                          f"False positives by group ({entry_label(pairs[0][1])})",
                          "Non-mated searches scoring above the threshold, by the group of the "
                          "search (rows) and of its best template (columns); log colour scale, "
                          "cells without any false positive in grey." + _unlabelled(labelled))

    def cmc(self, results):
        """The CMC of each identification result, per group of the search."""
        return self._save(drawing.cmc(results), "identification_cmc",
                          "CMC per group", "Rank-k identification rate of the mated searches "
                          "(no threshold), per group of the search and over all searches.")

    def score_distributions(self, results):
        """Impostor mean per pair of groups, and genuine/impostor mean +- std per group; results
        that have `score_distributions`."""
        drawn = [(result, score_distributions(result)) for result in results]
        figure, labelled = drawing.score_distributions(drawn)
        return self._save(figure, "instance_score_distributions",
                          "Genuine and impostor scores by group",
                          "Left: mean impostor score of each pair of groups (probe, compared "
                          "image); the colour scale spans the values. Right: mean +- std of the "
                          "genuine and impostor scores whose probe is in the group, and over all "
                          "pairs." + _unlabelled(labelled))

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


def _unlabelled(labelled):
    return "" if labelled else (" The cells are too small to write their values in (many "
                                "groups): they are in the results file and the tables.")


def _roc_gaps(result, curves):
    """{group: why it has no ROC curve on a log FPR axis} of one model."""
    gaps = {}
    for name in result.group_names:
        if name not in curves:
            gaps[name] = "no defined point (no impostor or no genuine pair in the group)"
        elif not (curves[name][0] > 0).any():
            gaps[name] = ("FPR 0 at every sampled threshold (no impostor pair of the group scores "
                          "above them), which a log FPR axis cannot show")
    return gaps


def _det_gaps(result, curves):
    """{group: why it has no DET curve on normal-deviate axes} of one model."""
    gaps = {}
    for name in result.group_names:
        if name not in curves:
            gaps[name] = "no defined point (no matched impostor or no genuine pair)"
            continue
        fmr, fnmr = curves[name]
        if not ((fmr > 0) & (fmr < 1) & (fnmr > 0) & (fnmr < 1)).any():
            gaps[name] = ("FMR or FNMR is 0 or 1 at every sampled threshold, which has no normal "
                          "deviate")
    return gaps


def _missing_curves(drawn, gaps_of):
    """The caption's sentence naming each group without a curve and why ("" if none)."""
    found = []
    for result, curves in drawn:
        for name, why in gaps_of(result, curves).items():
            found.append(f"{name} ({result.model}): {why}")
    return (" No curve for " + "; ".join(found) + ".") if found else ""


def _first_per_identity(result):
    """The per-identity columns of the first operating point that has them, or None."""
    for entry in result.data["results"]:
        columns = per_identity(result, entry)
        if columns is not None:
            return columns
    return None
