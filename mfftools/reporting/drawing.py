"""The report's figures as matplotlib `Figure` objects: one panel per model, one colour per group
(per model in the bar charts that compare models).

Drawn with matplotlib's object API: no pyplot, no backend chosen, nothing global. Legends sit
outside the axes, so they never cover bars or curves. An axis of accuracy or TPR starts at 0, or
its label says where it starts.
"""
from statistics import NormalDist

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter

from mfftools.reporting.results import as_floats, similarity_keys, union_group_names

PANEL_WIDTH = 4.6
PANEL_HEIGHT = 3.6
# Inches of panel width per group position (bars, boxes), so that many groups keep their room.
WIDTH_PER_GROUP = 0.5
# Heat maps: inches per cell, and the largest panel side before cells shrink (and lose labels).
CELL = 0.62
MAX_SIDE = 11.0
# Tick and cell label sizes (points), and a character's width as a share of the size.
TICK_SIZE = 9
CELL_SIZE = 7
CHAR_WIDTH = 0.62
# Heat map cells that count nothing: a grey outside the colour scale.
ZERO_CELL = "#d9d9d9"


def _text_width(text, size):
    """A text's width in inches at `size` points (an upper estimate of proportional fonts)."""
    return len(text) * size * CHAR_WIDTH / 72


def _group_ticks(ax, names, positions=None, axis="x"):
    """Group names along an axis, level when they fit their spacing, else slanted (30 degrees)
    when that fits, else upright (90 degrees): many or long names (eight subgroups such as
    Caucasian-Female) never run into each other."""
    positions = np.arange(len(names)) if positions is None else positions
    if axis == "y":
        ax.set_yticks(positions, names, fontsize=TICK_SIZE)
        return
    figure_width = ax.figure.get_size_inches()[0]
    spacing = figure_width * ax.get_position().width / max(len(names), 1)
    widest = max(_text_width(name, TICK_SIZE) for name in names)
    if widest <= 0.9 * spacing:
        rotation, align = 0, "center"
    elif widest * np.cos(np.radians(30)) <= 0.8 * spacing:
        rotation, align = 30, "right"
    else:
        rotation, align = 90, "center"
    ax.set_xticks(positions, names, rotation=rotation, ha=align, fontsize=TICK_SIZE,
                  rotation_mode="anchor" if rotation == 30 else "default")


def _groups_width(n_positions):
    """A panel's width for `n_positions` group positions along x."""
    return max(PANEL_WIDTH, WIDTH_PER_GROUP * n_positions + 1.4)


def pair_accuracy(results):
    """Grouped bars: accuracy per group and model, error bars = std over folds. The axis is
    zoomed onto the bars (its label says from where)."""
    names = union_group_names(results)
    figure, axes = _panels(1, width=_groups_width(len(names) * max(1, len(results) / 2)))
    ax = axes[0, 0]
    width = 0.8 / len(results)
    for k, result in enumerate(results):
        accuracy, spread = [], []
        for name in names:
            group = result.data["groups"].get(name)
            folds = np.asarray(group["fold_accuracies"]) if group else np.array([np.nan])
            accuracy.append(100 * group["accuracy"] if group else np.nan)
            spread.append(100 * folds.std())
        ax.bar(_offsets(len(names), k, len(results)), accuracy, width, yerr=spread, capsize=3,
               label=result.model)
    _group_ticks(ax, names)
    _zoom_to_bars(ax, results, names)
    _rate_axis(ax, "accuracy (%)")
    ax.set_title("Pair protocol: accuracy per group")
    _legend_below(figure, ax)
    return figure


def group_means(pairs, intervals):
    """Instance TPR and FPR means per group and model; error bars: the bootstrap intervals of
    `intervals` (model -> `bootstrap_instance` output) where there are some."""
    names = union_group_names([result for result, _ in pairs])
    figure, axes = _panels(2, width=_groups_width(len(names) * max(1, len(pairs) / 2)))
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
            ax.bar(_offsets(len(names), k, len(pairs)), values, width, yerr=yerr, capsize=3,
                   label=result.model)
        _group_ticks(ax, names)
        rate = stat.split("_")[0].upper()
        ax.set_title(f"instance {rate} mean")
        if rate == "TPR":
            _rate_axis(ax, "TPR mean over identities")
        else:
            ax.set_ylabel("FPR mean over identities")
    _legend_below(figure, axes[0, 0])
    return figure


def roc(curves):
    """Per-group ROC curves on a log FPR axis, one panel per model; `curves` is a list of
    (result, {group: (fpr array, tpr array)})."""
    names = union_group_names([result for result, _ in curves])
    figure, axes = _panels(len(curves))
    for ax, (result, model_curves) in zip(axes[0], curves):
        smallest, largest = 1.0, 0.0
        for name, (fpr, tpr) in model_curves.items():
            order = np.argsort(fpr, kind="stable")
            fpr, tpr = fpr[order], tpr[order]
            positive = fpr > 0
            if positive.any():
                smallest = min(smallest, fpr[positive].min())
                largest = max(largest, fpr[positive].max())
            ax.plot(fpr[positive], tpr[positive], color=_colour(names.index(name)), label=name)
        ax.set_xscale("log")
        # the curves' own FPR range: the instance protocol only samples the low-FPR end
        ax.set_xlim(smallest, max(min(1.0, largest), smallest * 10))
        ax.set_xlabel("FPR")
        _rate_axis(ax, "TPR")
        ax.set_title(result.model)
        ax.grid(True, which="major", alpha=0.3)
    _legend_right(figure, axes[0])
    return figure


def fmr_heatmaps(matrices):
    """The group x group FMR matrix of each model on a log colour scale (the matched diagonal is
    often orders above the rest), cells without a false match in grey; `matrices` is a list of
    (result, matrix). Returns (figure, whether every cell could be labelled)."""
    figure, axes = _heatmap_panels(len(matrices), max(len(r.group_names) for r, _ in matrices))
    labelled = True
    for ax, (result, matrix) in zip(axes[0], matrices):
        matrix = np.asarray(matrix, dtype=np.float64)
        positive = matrix[np.isfinite(matrix) & (matrix > 0)]
        low = positive.min() if len(positive) else 1e-6
        high = max(positive.max() if len(positive) else 1e-5, low * 10)
        norm = LogNorm(vmin=low, vmax=high)
        image = ax.imshow(np.ma.masked_less_equal(np.nan_to_num(matrix, nan=-1), 0), norm=norm,
                          cmap=colormaps["viridis"].with_extremes(bad=ZERO_CELL))
        labelled &= _label_cells(ax, matrix, result.group_names, "{:.1e}".format,
                                 colour=_contrast(np.sqrt(low * high)))
        ax.set_xlabel("group of the compared image")
        ax.set_ylabel("group of the probe")
        ax.set_title(result.model)
        figure.colorbar(image, ax=ax, shrink=0.8, label="FMR (log scale)")
    return figure, labelled


def per_identity_rates(rates):
    """Box plots of per-identity TPR and FPR by group, one row per model; `rates` is a list of
    (result, per-identity columns). Identities without a genuine pair have no TPR."""
    figure, axes = _panels(2, rows=len(rates),
                           width=_groups_width(max(len(r.group_names) for r, _ in rates)))
    for row, (result, columns) in enumerate(rates):
        for panel, rate in enumerate(("tpr", "fpr")):
            ax = axes[row, panel]
            _boxes(ax, result.group_names, columns, rate)
            ax.set_title(f"{result.model}: per-identity {rate.upper()}")
            if rate == "tpr":
                _rate_axis(ax, "TPR")
            else:
                ax.set_ylabel("FPR")
    return figure


def intra_boxes_drawable(columns):
    """Whether per-identity columns allow a box plot of intra similarity over identities with
    at least two images (they must give each identity's image count)."""
    return columns is not None and "intra" in columns and "n_images" in columns


def similarity(similarities):
    """Intra/inter identity similarity by group, one row per model; `similarities` is a list of
    (result, per-identity columns or None). Per-identity distributions (box plots) where the
    columns allow, else the means with std as error bars. Intra leaves out identities with one
    image (intra 1 by construction) wherever the result says which they are."""
    figure, axes = _panels(2, rows=len(similarities),
                           width=_groups_width(max(len(r.group_names) for r, _ in similarities)))
    for row, (result, columns) in enumerate(similarities):
        intra_ax, inter_ax = axes[row]
        if intra_boxes_drawable(columns):
            _boxes(intra_ax, result.group_names, columns, "intra",
                   rows=columns["n_images"] >= 2)
        else:
            _mean_bars(intra_ax, result, similarity_keys(result)[:2])
        if columns is not None and "inter" in columns:
            _boxes(inter_ax, result.group_names, columns, "inter")
        else:
            _mean_bars(inter_ax, result, ("inter_mean", "inter_std"))
        for ax, kind in ((intra_ax, "intra"), (inter_ax, "inter")):
            ax.set_title(f"{result.model}: {kind} similarity")
            ax.set_ylabel("cosine")
    return figure


def det(curves):
    """FNIR against FPIR on log axes, one panel per model, one curve per group of the search and
    one over all searches (dashed); a dotted line at each target FPIR. `curves` is a list of
    (result, {"all" or group: (fpir array, fnir array)}). A point where a rate is 0 cannot sit on
    a log axis and is left out."""
    names = union_group_names([result for result, _ in curves])
    figure, axes = _panels(len(curves))
    for ax, (result, model_curves) in zip(axes[0], curves):
        for name, (fpir, fnir) in model_curves.items():
            order = np.argsort(fpir, kind="stable")
            fpir, fnir = fpir[order], fnir[order]
            shown = (fpir > 0) & (fnir > 0)
            ax.plot(fpir[shown], fnir[shown], **_line_style(name, names))
        for entry in result.data["results"]:
            ax.axvline(entry["target_fpir"], color="grey", linestyle=":", linewidth=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("FPIR")
        ax.set_ylabel(f"FNIR at rank {result.data['rank']}")
        ax.set_title(result.model)
        ax.grid(True, which="major", alpha=0.3)
    _legend_right(figure, axes[0])
    return figure


# Tick rates of the normal-deviate axes, kept where the curves reach.
PROBIT_TICKS = (1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.05, 0.2, 0.5, 0.8, 0.95, 0.99)


def probit(rates):
    """The normal deviate of each rate (the inverse standard normal CDF); NaN outside (0, 1)."""
    rates = np.asarray(rates, dtype=np.float64)
    inside = (rates > 0) & (rates < 1)
    deviates = np.full(rates.shape, np.nan)
    normal = NormalDist()
    deviates[inside] = [normal.inv_cdf(rate) for rate in rates[inside]]
    return deviates


def verification_det(curves):
    """FNMR against matched FMR per group on normal-deviate (probit) axes, as NIST plots them,
    one panel per model; the dashed diagonal is FNMR = FMR (a curve crosses it at its EER).
    `curves` is a list of (result, {group: (fmr array, fnmr array)}). A point where a rate is 0
    or 1 has no normal deviate and is left out."""
    names = union_group_names([result for result, _ in curves])
    figure, axes = _panels(len(curves))
    for ax, (result, model_curves) in zip(axes[0], curves):
        reach = []
        for name, (fmr, fnmr) in model_curves.items():
            order = np.argsort(fmr, kind="stable")
            x, y = probit(fmr[order]), probit(fnmr[order])
            shown = ~(np.isnan(x) | np.isnan(y))
            if shown.any():
                ax.plot(x[shown], y[shown], **_line_style(name, names))
                reach += [x[shown].min(), x[shown].max(), y[shown].min(), y[shown].max()]
        low, high = (min(reach), max(reach)) if reach else (probit(1e-4)[()], 0.0)
        ax.plot([low, high], [low, high], color="grey", linestyle="--", linewidth=1)
        ticks = [rate for rate in PROBIT_TICKS if low - 0.3 <= probit(rate)[()] <= high + 0.3]
        # upright FMR labels: the deviates of 1e-6 .. 1e-3 lie close together
        ax.set_xticks(probit(ticks), [f"{rate:g}" for rate in ticks], rotation=90,
                      fontsize=TICK_SIZE)
        ax.set_yticks(probit(ticks), [f"{rate:g}" for rate in ticks], fontsize=TICK_SIZE)
        ax.set_xlabel("FMR (normal deviate scale)")
        ax.set_ylabel("FNMR (normal deviate scale)")
        ax.set_title(result.model)
        ax.grid(True, which="major", alpha=0.3)
    _legend_right(figure, axes[0])
    return figure


def cmc(results):
    """The rank-k identification rate against k, one panel per model, one curve per group of the
    search and one over all searches (dashed)."""
    names = union_group_names(results)
    figure, axes = _panels(len(results))
    for ax, result in zip(axes[0], results):
        ranks = result.data["ranks"]
        for name in ["all"] + result.group_names:
            rates = as_floats(result.data["cmc"][name])
            if not np.isnan(rates).all():  # a group without mated searches has no CMC
                ax.plot(ranks, rates, marker="o", markersize=3, **_line_style(name, names))
        ax.set_xticks(ranks, [str(k) for k in ranks])
        ax.set_xlabel("rank k")
        _rate_axis(ax, "identification rate")
        ax.set_title(result.model)
        ax.grid(True, which="major", alpha=0.3)
    _legend_right(figure, axes[0])
    return figure


def false_positive_heatmaps(matrices):
    """False positives by group of the non-mated search (rows) and of its best template
    (columns), one panel per model, on a log colour scale; cells without any in grey.
    `matrices` is a list of (result, count matrix). Returns (figure, whether every cell could be
    labelled)."""
    figure, axes = _heatmap_panels(len(matrices), max(len(r.group_names) for r, _ in matrices))
    labelled = True
    for ax, (result, counts) in zip(axes[0], matrices):
        counts = np.asarray(counts, dtype=np.float64)
        norm = LogNorm(vmin=1, vmax=max(2.0, counts.max()))
        image = ax.imshow(np.ma.masked_less_equal(counts, 0), norm=norm,
                          cmap=colormaps["viridis"].with_extremes(bad=ZERO_CELL))
        # the middle of the log scale: text light below, dark above
        labelled &= _label_cells(ax, counts, result.group_names, "{:.0f}".format,
                                 colour=_contrast(np.sqrt(norm.vmax)))
        ax.set_xlabel("group of the best template")
        ax.set_ylabel("group of the non-mated search")
        ax.set_title(result.model)
        bar = figure.colorbar(image, ax=ax, shrink=0.8, label="false positives (log scale)")
        for axis_formatter in (bar.ax.yaxis.set_major_formatter, bar.ax.yaxis.set_minor_formatter):
            axis_formatter(LogFormatter(labelOnlyBase=False))  # counts as 1, 2, 10, not 2x10^0
    return figure, labelled


def score_distributions(distributions):
    """Per model, one row: the group x group impostor mean matrix, and each group's genuine and
    impostor mean +- std (and the overall ones); `distributions` is a list of
    (result, its `score_distributions`). The matrix's colour scale spans its values (centred on
    0 only when they straddle it). Returns (figure, whether every cell could be labelled)."""
    n_groups = max(len(result.group_names) for result, _ in distributions)
    side = _heatmap_side(n_groups)
    figure, axes = _panels(2, rows=len(distributions),
                           width=max(side, _groups_width(n_groups + 1)),
                           height=max(PANEL_HEIGHT, side - 0.6))
    labelled = True
    for row, (result, scores) in enumerate(distributions):
        matrix_ax, means_ax = axes[row]
        names = result.group_names
        matrix = as_floats(scores["impostor_matrix"]["mean"])
        finite = matrix[np.isfinite(matrix)]
        low, high = (finite.min(), finite.max()) if len(finite) else (-1.0, 1.0)
        if low < 0 < high:
            reach = max(-low, high)
            image = matrix_ax.imshow(matrix, cmap="coolwarm", vmin=-reach, vmax=reach)
            colour = None
        else:
            if high == low:
                low, high = low - 1e-3, high + 1e-3
            image = matrix_ax.imshow(matrix, cmap="viridis", vmin=low, vmax=high)
            colour = _contrast((low + high) / 2, floor=-np.inf)
        labelled &= _label_cells(matrix_ax, matrix, names, "{:+.3f}".format, colour=colour)
        matrix_ax.set_xlabel("group of the compared image")
        matrix_ax.set_ylabel("group of the probe")
        matrix_ax.set_title(f"{result.model}: impostor score mean")
        figure.colorbar(image, ax=matrix_ax, shrink=0.8)
        labels = ["all"] + names
        for k, (kind, marker) in enumerate((("genuine", "o"), ("impostor", "s"))):
            stats = [scores[kind].get(name) or {} for name in labels]
            means_ax.errorbar(np.arange(len(labels)) + (k - 0.5) * 0.2,
                              as_floats([s.get("mean") for s in stats]),
                              yerr=as_floats([s.get("std") for s in stats]), fmt=marker,
                              capsize=3, color=_colour(k), label=kind)
        _group_ticks(means_ax, labels)
        means_ax.set_ylabel("cosine score, mean +- std")
        means_ax.set_title(f"{result.model}: scores by group of the probe")
        means_ax.grid(True, axis="y", alpha=0.3)
    _legend_below(figure, axes[-1, 1])
    return figure, labelled


def _label_cells(ax, matrix, names, fmt, colour=None):
    """Group names on both axes and, where they fit the cells, each cell's value written in it
    ("-" where undefined), in the colour `colour(value)` gives (black by default). Returns
    whether the values were written."""
    _group_ticks(ax, names)
    _group_ticks(ax, names, axis="y")
    texts = ["-" if np.isnan(value) else fmt(value) for value in np.ravel(matrix)]
    figure_width = ax.figure.get_size_inches()[0]
    cell = figure_width * ax.get_position().width / max(len(names), 1)
    if max(_text_width(text, CELL_SIZE) for text in texts) > 0.9 * cell:
        return False
    for k, text in enumerate(texts):
        i, j = divmod(k, len(names))
        value = matrix[i, j]
        ax.text(j, i, text, ha="center", va="center", fontsize=CELL_SIZE,
                color=colour(value) if colour and not np.isnan(value) else "black")
    return True


def _contrast(middle, floor=0.0):
    """The colour of a cell's text on viridis: white on the dark end (above `floor`, below
    `middle`), black elsewhere (grey cells at or below `floor` included)."""
    return lambda value: "white" if floor < value < middle else "black"


def _heatmap_side(n_groups):
    """A heat map panel's side in inches: room for a labelled cell per group, up to MAX_SIDE."""
    return min(MAX_SIDE, max(PANEL_WIDTH, CELL * n_groups + 2.6))


def _heatmap_panels(count, n_groups):
    side = _heatmap_side(n_groups)
    return _panels(count, width=side, height=max(PANEL_HEIGHT, side - 0.6))


def _panels(count, rows=1, width=PANEL_WIDTH, height=PANEL_HEIGHT):
    figure = Figure(figsize=(width * count, height * rows), layout="constrained")
    return figure, figure.subplots(rows, count, squeeze=False)


def _offsets(n_positions, k, n_bars):
    """x positions of the k-th of n_bars side-by-side bars at each of n_positions."""
    return np.arange(n_positions) + (k - (n_bars - 1) / 2) * (0.8 / n_bars)


def _legend_right(figure, axes):
    """One legend of the labelled lines of `axes`, right of the panels."""
    handles = {}
    for ax in axes:
        for line in ax.get_lines():
            if not line.get_label().startswith("_"):  # unlabelled: guides such as target lines
                handles.setdefault(line.get_label(), line)
    figure.legend(handles.values(), handles.keys(), loc="outside right upper", fontsize="small")


def _line_style(name, names):
    """The curve of a group in its colour; the one over all searches ("all") black and dashed."""
    if name == "all":
        return {"color": "black", "linestyle": "--", "label": "all searches"}
    return {"color": _colour(names.index(name)), "label": name}


def _legend_below(figure, ax):
    """One legend of `ax`'s labelled bars, under the panels: it cannot cover a bar there."""
    handles, labels = ax.get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4),
                  fontsize="small")


def _rate_axis(ax, label):
    """Label an accuracy or TPR axis, saying where it starts when that is not 0."""
    bottom = ax.get_ylim()[0]
    ax.set_ylabel(label if bottom <= 0 else f"{label}, axis from {bottom:.3g} (not 0)")


def _boxes(ax, names, columns, key, rows=None):
    """One box per group of the per-identity values in `columns[key]` (NaN left out), over the
    identities `rows` selects (all by default)."""
    chosen = np.ones(len(columns["group"]), dtype=bool) if rows is None else rows
    data = []
    for index in range(len(names)):
        values = columns[key][chosen & (columns["group"] == index)]
        data.append(values[~np.isnan(values)])
    boxes = ax.boxplot(data, patch_artist=True, showfliers=True, flierprops={"markersize": 2})
    for k, patch in enumerate(boxes["boxes"]):
        patch.set_facecolor(_colour(k))
        patch.set_alpha(0.6)
    _group_ticks(ax, names, positions=np.arange(1, len(names) + 1))


def _mean_bars(ax, result, keys):
    """Bars of a similarity statistic's mean per group, its std as error bars."""
    mean_key, std_key = keys
    names = result.group_names
    similarity = result.data["similarity"]
    ax.bar(range(len(names)), as_floats([similarity[n][mean_key] for n in names]),
           yerr=as_floats([similarity[n][std_key] for n in names]), capsize=3,
           color=[_colour(k) for k in range(len(names))])
    _group_ticks(ax, names)


def _zoom_to_bars(ax, results, names):
    values = [100 * r.data["groups"][n]["accuracy"] for r in results for n in names
              if n in r.data["groups"]]
    low = min(values)
    ax.set_ylim(max(0.0, low - max(5.0, (100 - low) * 0.5)), 100)


def _colour(k):
    """The k-th group's colour: matplotlib's ten cycle colours, then their ten light variants
    (tab20's odd entries), so that up to twenty groups never share one."""
    if k % 20 < 10:
        return f"C{k % 10}"
    return colormaps["tab20"](2 * (k % 10) + 1)
