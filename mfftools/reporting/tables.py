"""The report's tables, built from result files: one column block per model.

Tables hold formatted strings, so the HTML and Markdown renderings print the same digits. Numbers
are formatted by the `fmt_*` functions below; a value a model does not have is shown as "-", and a
measure that compares groups, over fewer than two groups, as "n/a" (whatever the file holds).
"""
from dataclasses import dataclass, field

from mfftools.reporting.results import (
    INSTANCE_STATS,
    compared_groups,
    entry_label,
    equal_error_rates,
    folds_label,
    group_gap,
    has_multi_intra,
    point_of,
    similarity_keys,
    skipped_counts,
    union_group_names,
)

MISSING = "-"
NOT_APPLICABLE = "n/a"
UNRESOLVED = "unresolved*"


@dataclass
class Table:
    """Rows of cells under a two-level header: one block of `columns` per entry of `blocks`."""

    title: str
    row_header: str
    blocks: list
    columns: list
    rows: list = field(default_factory=list)  # (label, [cell per block x column])
    note: str = ""

    def add_row(self, label, cells):
        if len(cells) != len(self.blocks) * len(self.columns):
            raise ValueError(f"row {label!r} has {len(cells)} cells")
        self.rows.append((label, list(cells)))


def fmt_percent(fraction):
    """An accuracy given as a fraction, printed in percent as the paper does: 0.95432 -> 95.43."""
    return MISSING if fraction is None else f"{100 * fraction:.2f}"


def fmt_points(value):
    """A value already in percent points (pair mean and STD): 95.4321 -> 95.43."""
    return MISSING if value is None else f"{value:.2f}"


def fmt_rate(value):
    """A rate such as TPR or FPR: four decimals, or three significant digits when small."""
    if value is None:
        return MISSING
    if value == 0:
        return "0"
    if abs(value) >= 1e-3:
        return f"{value:.4f}"
    return f"{value:.3e}"


def fmt_ratio(value):
    """A fairness measure or a ratio (FDR, Gini, SER): four decimals; inf when unbounded."""
    if value is None:
        return MISSING
    if value == float("inf"):
        return "inf"
    return f"{value:.4f}"


def fmt_threshold(value):
    return MISSING if value is None else f"{value:.6f}"


def fmt_interval(interval, fmt):
    return MISSING if interval is None else f"[{fmt(interval.low)}, {fmt(interval.high)}]"


def _cell(mapping, key, fmt):
    return fmt(mapping.get(key) if isinstance(mapping, dict) else None)


def pair_table(results):
    """The paper's pair table: per-group accuracy (%), mean and STD, with fold std, TAR and SER,
    and each group's EER where the files give it.

    A TAR whose threshold the pair counts cannot place at FAR = 1e-3 is marked unresolved, and
    the FAR its thresholds do give is shown beside every TAR."""
    names = union_group_names(results)
    eers = [equal_error_rates(result) for result in results]
    columns = ["Accuracy (%)", "Fold std (%)", "TAR@FAR=1e-3", "at FAR"]
    if any(eer is not None for eer in eers):
        columns.append("EER")
    folds = "; ".join(dict.fromkeys(folds_label(result.data) for result in results))
    table = Table(
        title="Pair protocol: accuracy per group (%)",
        row_header="Group",
        blocks=[result.model for result in results],
        columns=columns,
        note="Mean and STD over groups as the paper prints them (STD with ddof = 1); "
        f"fold std: standard deviation of the fold accuracies, {folds}; SER = max error / min "
        "error; at FAR: the mean test-fold FAR of the TAR@FAR thresholds"
        + ("; EER: where FNMR meets FMR as the threshold moves, over all the group's pairs"
           if len(columns) > 4 else "") + "." + _unresolved_note(results),
    )
    blank = [MISSING] * (len(columns) - 1)
    for name in names:
        cells = []
        for result, eer in zip(results, eers):
            group = result.data["groups"].get(name)
            if group is None:
                cells += [MISSING] * len(columns)
                continue
            folds = group["fold_accuracies"]
            mean = sum(folds) / len(folds)
            fold_std = (sum((a - mean) ** 2 for a in folds) / len(folds)) ** 0.5
            resolved = group.get("tar_at_far_resolvable", True)
            cells += [
                fmt_percent(group["accuracy"]),
                fmt_percent(fold_std),
                fmt_rate(group["tar_at_far_1e-3"]) if resolved else UNRESOLVED,
                fmt_rate(group.get("far_at_tar_threshold")),
            ] + ([fmt_rate((eer or {}).get(name))] if len(columns) > 4 else [])
        table.add_row(name, cells)
    table.add_row("Mean", [c for r in results
                           for c in [fmt_points(r.data["mean_accuracy"])] + blank])
    for label, key, fmt in (("STD", "std", fmt_points), ("SER", "ser", fmt_ratio)):
        table.add_row(label, [
            c for r in results
            for c in [_across_groups(len(r.group_names), r.data[key], fmt)] + blank
        ])
    _skipped_rows(lambda label, values: table.add_row(
        label, [c for value in values for c in [value] + blank]), results)
    return table


def pair_heading(results):
    """The pair section's heading, true to how the files made their folds."""
    folds = list(dict.fromkeys(folds_label(result.data) for result in results))
    if len(folds) == 1:
        return f"Pair protocol: verification per group, {folds[0]}"
    return ("Pair protocol: verification per group; "
            + "; ".join(f"{result.model}: {folds_label(result.data)}" for result in results))


def _unresolved_note(results):
    """What `UNRESOLVED` means, with the coarsest FAR step of the groups it marks ("" if none)."""
    steps = [group.get("far_resolution") for result in results
             for group in result.data["groups"].values()
             if group.get("tar_at_far_resolvable", True) is False]
    if not steps:
        return ""
    coarsest = max(step for step in steps if step is not None) if any(steps) else None
    step = f" (FAR steps as coarse as {coarsest:.2g})" if coarsest else ""
    return (f" {UNRESOLVED}: too few impostor pairs to choose a threshold at FAR = 1e-3{step}; "
            "'at FAR' is what the thresholds found give.")


def _across_groups(n_groups, value, fmt):
    """A measure that compares groups: "n/a" over fewer than two groups, else formatted."""
    return NOT_APPLICABLE if n_groups < 2 else fmt(value)


def operating_points(results):
    """The operating points of results of one protocol (`point_of` their entries), in order of
    first appearance."""
    points = []
    for result in results:
        for entry in result.data["results"]:
            point = point_of(entry)
            if point not in points:
                points.append(point)
    return points


def entries_at(results, point):
    """(result, entry) for each result that has the operating point `point`."""
    found = []
    for result in results:
        for entry in result.data["results"]:
            if point_of(entry) == point:
                found.append((result, entry))
                break
    return found


_STAT_LABELS = {
    "tpr_mean": "TPR mean",
    "tpr_std": "TPR std",
    "fpr_mean": "FPR mean",
    "fpr_std": "FPR std",
}


# Marks a group's mean that differs from the other groups' pooled mean (a significance statement).
DIFFERS = "\u2020"


def fmt_p(value):
    """A p-value: three significant digits."""
    return MISSING if value is None else f"{value:.3g}"


def interval_note(intervals):
    """What the intervals of `intervals` (model -> `bootstrap_instance` output) are and what
    each model's are conditional on."""
    if not intervals:
        return ""
    conditions = {}
    for model, found in intervals.items():
        conditions.setdefault(found["conditional_on"], []).append(model)
    text = ("95% CI: percentile bootstrap over identities, resampled within each group; the gap's "
            "is simultaneous over every pair of groups (the pair with the highest and the lowest "
            "mean is picked after looking), a description of uncertainty, not a test. ")
    text += " ".join(f"{', '.join(models)}: {condition}." for condition, models
                     in conditions.items())
    clamped = {model: found["n_clamped"] for model, found in intervals.items()
               if found.get("n_clamped")}
    if clamped:
        text += " Resamples whose FPR did not reach the target within the ladder (taken at its " \
                "nearest end): " + ", ".join(f"{model} {count}" for model, count
                                             in clamped.items()) + "."
    return text


def instance_table(pairs, intervals=None, significance=None):
    """The paper's instance statistics at one operating point, with bootstrap intervals if given;
    the per-group statistics are in `group_table`.

    `pairs` is `entries_at(...)`; `intervals` maps a model name to `bootstrap_instance` output
    (models without per-identity rows are absent and show "-"); `significance` maps a model name
    to {"differ": {rate: adjusted p}, "versus_rest": {(rate, group index): adjusted p},
    "alpha": alpha} (`claims.adjusted_p_values`).
    """
    intervals = intervals or {}
    significance = significance or {}
    with_ci = bool(intervals)
    columns = ["Value", "95% CI"] if with_ci else ["Value"]
    note = ("TPR/FPR at the global threshold; instance mean/std over identities (ddof = 0). "
            + interval_note(intervals))
    if significance:
        note += (" Groups differ, p: permutation test of the range of the group means (group "
                 "labels shuffled across identities, each group keeping its size), "
                 "Holm-adjusted over TPR and FPR; the statements under the tables say what it "
                 "shows.")
    table = Table(
        title=f"Instance protocol at {entry_label(pairs[0][1])}",
        row_header="Statistic",
        blocks=[result.model for result, _ in pairs],
        columns=columns,
        note=note.strip(),
    )

    def add(label, values, cis=None):
        cells = []
        for k, value in enumerate(values):
            cells.append(value)
            if with_ci:
                cells.append(cis[k] if cis else MISSING)
        table.add_row(label, cells)

    add("Images", [str(result.data["n_images"]) for result, _ in pairs])
    add("Identities", [str(result.data["n_identities"]) for result, _ in pairs])
    if any("n_single_image_identities" in result.data for result, _ in pairs):
        # they have no genuine pair, so the TPR statistics leave them out
        add("Single-image identities",
            [str(result.data.get("n_single_image_identities", MISSING)) for result, _ in pairs])
    _skipped_rows(add, [result for result, _ in pairs])
    add("Threshold", [fmt_threshold(entry["threshold"]) for _, entry in pairs])
    add("Converged", [_yes_no(entry.get("converged")) for _, entry in pairs])
    add("TPR", [fmt_rate(entry["tpr"]) for _, entry in pairs])
    add("FPR", [fmt_rate(entry["fpr"]) for _, entry in pairs])
    for stat in INSTANCE_STATS:
        add(
            f"Instance {_STAT_LABELS[stat]}",
            [fmt_rate(entry["instance"][stat]) for _, entry in pairs],
            [
                fmt_interval(intervals.get(result.model, {}).get("overall", {}).get(stat), fmt_rate)
                for result, _ in pairs
            ],
        )
    for stat in ("tpr_mean", "fpr_mean"):
        add(
            f"Group gap {_STAT_LABELS[stat]} (max - min)",
            [NOT_APPLICABLE if (gap := group_gap(entry, stat)) is None else fmt_rate(gap)
             for _, entry in pairs],
            [
                fmt_interval(intervals.get(result.model, {}).get("gap", {}).get(stat), fmt_rate)
                for result, _ in pairs
            ],
        )
    if significance:
        for stat in ("tpr_mean", "fpr_mean"):
            add(
                f"Groups differ ({_STAT_LABELS[stat]}), p",
                [_p_cell(significance.get(result.model), "differ", stat) for result, _ in pairs],
            )
    return table


def _skipped_rows(add, results):
    """Rows of what extraction left out, where any result file says."""
    counts = [skipped_counts(result) for result in results]
    for k, label in enumerate(("Images skipped at extraction", "Pairs dropped at extraction")):
        if any(count[k] is not None for count in counts):
            add(label, [MISSING if count[k] is None else str(count[k]) for count in counts])


def _p_cell(significance, kind, key):
    if significance is None:
        return MISSING
    value = significance[kind].get(key)
    return NOT_APPLICABLE if value is None else fmt_p(value)


GROUP_COLUMNS = ("tpr_mean", "tpr_std", "fpr_mean", "fpr_std")


def group_table(pairs, intervals=None, significance=None):
    """Each group's instance statistics at one operating point: a row per group, per model the
    TPR and FPR mean and std, with the means' intervals and the p of "the group differs from the
    rest" when given (same arguments as `instance_table`). A mean whose statement is significant
    is marked DIFFERS."""
    intervals = intervals or {}
    significance = significance or {}
    columns = []
    for stat in GROUP_COLUMNS:
        columns.append(_STAT_LABELS[stat])
        if intervals and stat.endswith("_mean"):
            columns.append(f"{_STAT_LABELS[stat]} 95% CI")
    if significance:
        columns += ["p vs rest (TPR)", "p vs rest (FPR)"]
    note = "Mean and std over the group's identities (ddof = 0)."
    if significance:
        alpha = next(iter(significance.values()))["alpha"]
        note += (f" p vs rest: permutation test of the group's mean against the other groups' "
                 f"identities pooled, two-sided, Holm-adjusted over every group and rate, and "
                 f"at least the rate's 'groups differ' p (a group is named only when the groups "
                 f"differ); {DIFFERS}: p <= {alpha:g}, stated under the tables.")
    table = Table(title=f"Groups at {entry_label(pairs[0][1])}", row_header="Group",
                  blocks=[result.model for result, _ in pairs], columns=columns, note=note)
    for name in union_group_names([result for result, _ in pairs]):
        cells = []
        for result, entry in pairs:
            group = entry["groups"].get(name)
            model_significance = significance.get(result.model)
            index = result.group_names.index(name) if name in result.group_names else None
            for stat in GROUP_COLUMNS:
                mark = ""
                if model_significance is not None and stat.endswith("_mean"):
                    p = model_significance["versus_rest"].get((stat, index))
                    mark = DIFFERS if p is not None and p <= model_significance["alpha"] else ""
                cells.append(_cell(group, stat, fmt_rate) + (mark if group else ""))
                if intervals and stat.endswith("_mean"):
                    cells.append(fmt_interval(intervals.get(result.model, {}).get("groups", {})
                                              .get(name, {}).get(stat), fmt_rate))
            if significance:
                for stat in ("tpr_mean", "fpr_mean"):
                    if model_significance is None or group is None:
                        cells.append(MISSING)
                        continue
                    p = model_significance["versus_rest"].get((stat, index))
                    cells.append(NOT_APPLICABLE if p is None else fmt_p(p))
        table.add_row(name, cells)
    return table


def fairness_table(pairs):
    """Fairness measures at one operating point, side by side."""
    table = Table(
        title=f"Fairness at {entry_label(pairs[0][1])}",
        row_header="Measure",
        blocks=[result.model for result, _ in pairs],
        columns=["Value"],
        note="Over each group's demographically matched FMR (impostor pairs with both images in "
        "the group) and its FNMR. FDR: 1 is fair; FPD, FND, GARBE (Gini based): 0 is fair; "
        "max/geomean: 1 is fair; SER (FNMR): worst group FNMR / best group FNMR; n/a: fewer than "
        "two groups with both rates to compare.",
    )
    for label, key in (
        ("FDR", "fdr"),
        ("FPD (Gini of FMR)", "fpd"),
        ("FND (Gini of FNMR)", "fnd"),
        ("GARBE", "garbe"),
        ("FMR max/geomean", "fmr_max_geomean"),
        ("FNMR max/geomean", "fnmr_max_geomean"),
    ):
        table.add_row(label, [
            _across_groups(compared_groups(entry), entry["fairness"][key], fmt_ratio)
            for _, entry in pairs
        ])
    table.add_row("SER (FNMR)", [
        _across_groups(compared_groups(entry), _fnmr_ser(entry), fmt_ratio) for _, entry in pairs
    ])
    return table


def error_rate_table(pairs):
    """Each group's error rates at one operating point: matched FMR, relative FMR (NIST's FMR
    inflation), the FMR over impostor pairs whose probe is in the group, FNMR, and the EER."""
    columns = ["FMR", "FMR relative", "FMR (probe in group)", "FNMR", "EER"]
    references = [f"{result.model}: {entry.get('reference_group') or '-'}"
                  for result, entry in pairs]
    table = Table(
        title=f"Error rates per group at {entry_label(pairs[0][1])}",
        row_header="Group",
        blocks=[result.model for result, _ in pairs],
        columns=columns,
        note="FMR: impostor pairs with both images in the group (NISTIR 8280's demographically "
        "matched FMR); FMR relative: FMR / the reference group's FMR at the same threshold "
        f"(NIST's FMR inflation; reference: {', '.join(references)}); FMR (probe in group): over "
        "impostor pairs whose probe is in the group, the earlier definition; EER: where FNMR "
        "meets the matched FMR as the threshold moves (one value per group, whatever the "
        "target); - where the file does not give it.",
    )
    for name in union_group_names([result for result, _ in pairs]):
        cells = []
        for result, entry in pairs:
            group = entry["groups"].get(name)
            eer = (equal_error_rates(result) or {}).get(name)
            cells += [_cell(group, "fmr", fmt_rate), _cell(group, "fmr_relative", fmt_ratio),
                      _cell(group, "fmr_probe_group", fmt_rate), _cell(group, "fnmr", fmt_rate),
                      fmt_rate(eer)]
        table.add_row(name, cells)
    return table


def similarity_table(results):
    """Identity similarity per group: intra (to own centroid) and inter (to nearest centroids).

    Intra is over identities with at least two images (`intra_mean_multi`), or over all of them,
    with a note, for a result file that predates those statistics.
    """
    note = (
        "Intra: cosine of an identity's images to its centroid, over identities with at least "
        "two images (an identity with one image scores 1 by construction, which would inflate "
        "the mean); inter: centroid to its 50 nearest other centroids (cosine)."
    )
    lacking = [result.model for result in results if not has_multi_intra(result)]
    if lacking:
        note += (
            f" {', '.join(lacking)}: the result has no intra_mean_multi, so its intra columns "
            "include one-image identities."
        )
    table = Table(
        title="Identity similarity per group",
        row_header="Group",
        blocks=[result.model for result in results],
        columns=["Intra mean", "Intra std", "Inter mean", "Inter std"],
        note=note,
    )
    for name in union_group_names(results):
        table.add_row(
            name,
            [
                _cell(result.data["similarity"].get(name), key, fmt_rate)
                for result in results
                for key in similarity_keys(result)
            ],
        )
    return table


def identification_table(pairs):
    """Open-set identification at one target FPIR: the threshold, FNIR and FPIR overall and per
    group of the search with the searches they count, and the max/geomean ratios.

    `pairs` is `entries_at(...)` of identification results.
    """
    table = Table(
        title=f"1:N identification at {entry_label(pairs[0][1])}",
        row_header="Statistic",
        blocks=[result.model for result, _ in pairs],
        columns=["Value"],
        note="One global threshold: the smallest with FPIR <= the target over all non-mated "
        "searches. FNIR: mated searches whose template is not among the R best-scoring templates "
        "or scores at or below the threshold; FPIR: non-mated searches whose best score is above "
        "it; per group of the search image. Max/geomean: 1 is fair; - where a group's rate is "
        "0; n/a: fewer than two groups with the rate.",
    )

    def add(label, cells):
        table.add_row(label, list(cells))

    data = [(result.data, entry) for result, entry in pairs]
    add("Templates", (str(d["n_templates"]) for d, _ in data))
    add("Mated searches", (str(d["n_mated"]) for d, _ in data))
    add("Non-mated searches", (str(d["n_nonmated"]) for d, _ in data))
    add("Rank R of FNIR", (str(d["rank"]) for d, _ in data))
    _skipped_rows(add, [result for result, _ in pairs])
    add("Threshold", (fmt_threshold(entry["threshold"]) for _, entry in data))
    add("FNIR", (fmt_rate(entry["fnir"]) for _, entry in data))
    add("FPIR", (fmt_rate(entry["fpir"]) for _, entry in data))
    for name in union_group_names([result for result, _ in pairs]):
        groups = [entry["groups"].get(name) for _, entry in data]
        add(f"{name} FNIR", (_cell(group, "fnir", fmt_rate) for group in groups))
        add(f"{name} FPIR", (_cell(group, "fpir", fmt_rate) for group in groups))
        add(f"{name} mated / non-mated searches",
            (MISSING if group is None else f"{group['n_mated']} / {group['n_nonmated']}"
             for group in groups))
    for rate in ("fnir", "fpir"):
        add(f"{rate.upper()} max/geomean", (
            _across_groups(_groups_with(entry, rate), entry["fairness"][f"{rate}_max_geomean"],
                           fmt_ratio)
            for _, entry in data))
    return table


def _groups_with(entry, rate):
    return sum(1 for group in entry["groups"].values() if group.get(rate) is not None)


def cmc_table(results):
    """The CMC of identification results: the rank-k identification rate, overall and per group
    of the search, at every rank any of them reports."""
    ranks = sorted({k for result in results for k in result.data["ranks"]})
    table = Table(
        title="1:N identification: CMC (rank-k identification rate)",
        row_header="Group",
        blocks=[result.model for result in results],
        columns=[f"Rank {k}" for k in ranks],
        note="Share of the mated searches whose template is among the k best-scoring templates "
        "(no threshold), by group of the search image.",
    )
    for name in ["all"] + union_group_names(results):
        cells = []
        for result in results:
            rates = result.data["cmc"].get(name)
            reported = result.data["ranks"]
            cells += [MISSING if rates is None or k not in reported
                      else fmt_rate(rates[reported.index(k)]) for k in ranks]
        table.add_row("All" if name == "all" else name, cells)
    return table


def score_distribution_table(results):
    """Genuine and impostor score statistics per group (of the probe) and overall, with each
    group's shift; `results` are instance results that carry `score_distributions`."""
    table = Table(
        title="Score distributions per group",
        row_header="Group",
        blocks=[result.model for result in results],
        columns=["Genuine mean", "Genuine std", "Genuine n", "Impostor mean", "Impostor std",
                 "Impostor n", "Genuine shift", "Impostor shift"],
        note="Cosine scores of ordered pairs (every pair counted from both sides), by the group "
        "of the probe image; std with ddof = 0; shift: (group mean - overall mean) / overall "
        "std, of genuine and of impostor scores (ISO/IEC 19795-10's comparison-score "
        "differentials).",
    )
    for name in ["all"] + union_group_names(results):
        cells = []
        for result in results:
            distributions = result.data["score_distributions"]
            for kind in ("genuine", "impostor"):
                stats = distributions[kind].get(name)
                cells += [_cell(stats, "mean", fmt_rate), _cell(stats, "std", fmt_rate),
                          _cell(stats, "n", _fmt_count)]
            for kind in ("genuine", "impostor"):
                shift = distributions["shift"][kind]
                cells.append(MISSING if name == "all" else _cell(shift, name, fmt_rate))
        table.add_row("All" if name == "all" else name, cells)
    return table


def _fmt_count(value):
    return MISSING if value is None else str(int(value))


def _fnmr_ser(entry):
    errors = [group["fnmr"] for group in entry["groups"].values() if group["fnmr"] is not None]
    if len(errors) < 2:
        return None
    worst, best = max(errors), min(errors)
    if best == 0:
        return 1.0 if worst == 0 else float("inf")
    return worst / best


def _yes_no(value):
    return MISSING if value is None else ("yes" if value else "no")
