"""The report's calibration section: `mfftools calibrate` results (cross-val or apply), every
method side by side, before (baseline) and after.

Per results file: one table of accuracy, the spread of the groups' FPRs at the global threshold
and the mean calibration error per method; one table of each group's FPR at the first target per
method. The results file's keys are checked on load (`check_calibration`).
"""
from mfftools.report.document import Section
from mfftools.report.tables import MISSING, Table, fmt_rate, fmt_ratio

SPREAD_STATS = ("aad", "mad", "std")
CALIBRATION_MEASURES = ("ks", "ece", "brier")


def check_calibration(check, data):
    """The keys of a calibration results file (docs/calibrate.md), via report.results' checker."""
    names = check.group_names(data)
    check.number(data, "folds", "")
    methods = check.mapping(data, "methods", "")
    if not methods:
        check.fail("methods", "must name at least one method")
    for method, entry in methods.items():
        where = f"methods.{method}."
        if not isinstance(entry, dict):
            check.fail(f"methods.{method}", "must be an object")
        check.number(entry, "auroc", where, nullable=True)
        rates = check.mapping(entry, "tpr_at_fpr", where)
        spreads = check.mapping(entry, "fpr_spread", where)
        for target in rates:
            check.number(rates, target, f"{where}tpr_at_fpr.", nullable=True)
            spread = check.mapping(spreads, target, f"{where}fpr_spread.")
            for stat in SPREAD_STATS:
                check.number(spread, stat, f"{where}fpr_spread.{target}.", nullable=True)
        groups = check.mapping(entry, "groups", where)
        for name in names:
            group = check.mapping(groups, name, f"{where}groups.")
            fpr = check.mapping(group, "fpr", f"{where}groups.{name}.")
            for target in rates:
                check.number(fpr, target, f"{where}groups.{name}.fpr.", nullable=True)
            for measure in CALIBRATION_MEASURES:
                check.number(group, measure, f"{where}groups.{name}.", nullable=True)


def calibration_sections(results):
    """One section per calibration results file (ResultFile)."""
    return [_section(result) for result in results]


def _section(result):
    data = result.data
    targets = data.get("targets") or list(next(iter(data["methods"].values()))["tpr_at_fpr"])
    folds = data["folds"]
    how = "all pairs" if folds == 1 else f"mean over {folds} test folds"
    section = Section(f"Calibration and fairness mitigation: {result.model} ({how})")
    section.items.append(_methods_table(result, targets))
    section.items.append(_group_table(result, targets[0]))
    return section


def _methods_table(result, targets):
    methods = result.data["methods"]
    columns = ["AUROC"]
    for target in targets:
        columns += [f"TPR @ FPR {target}"] + [f"FPR {stat.upper()} @ {target}"
                                              for stat in SPREAD_STATS]
    columns += [f"{measure.upper() if measure != 'brier' else 'Brier'} mean"
                for measure in CALIBRATION_MEASURES] + ["fallbacks"]
    table = Table(
        title=f"{result.model}: accuracy, spread of the groups' FPR at one global threshold, "
              "calibration",
        row_header="method", blocks=[result.model], columns=columns,
        note="FPR spread: across groups, of each group's FPR over its impostor pairs with both "
             "images in it (FairCal's AAD, MAD, STD); lower is fairer. Calibration: mean over "
             "groups of KS, ECE and Brier score of the confidence. baseline is the global "
             "calibrator alone (before mitigation). Fallbacks: clusters or groups fitted with "
             "the global fit / test pairs that met one.",
    )
    for method, entry in methods.items():
        cells = [fmt_ratio(entry["auroc"])]
        for target in targets:
            cells.append(fmt_rate(entry["tpr_at_fpr"].get(target)))
            spread = entry["fpr_spread"].get(target, {})
            cells += [fmt_rate(spread.get(stat)) for stat in SPREAD_STATS]
        calibration = entry.get("calibration", {})
        cells += [fmt_rate(calibration.get(measure, {}).get("mean"))
                  for measure in CALIBRATION_MEASURES]
        fallbacks = entry.get("fallbacks")
        cells.append(MISSING if fallbacks is None
                     else f"{fallbacks['fitted']} / {fallbacks['test_pairs']}")
        table.add_row(method, cells)
    return table


def _group_table(result, target):
    methods = result.data["methods"]
    table = Table(
        title=f"{result.model}: each group's FPR at the global threshold of FPR {target}",
        row_header="group", blocks=[result.model], columns=list(methods),
        note="'-': the group has no impostor pair within it.",
    )
    for name in result.group_names:
        table.add_row(name, [fmt_rate(entry["groups"][name]["fpr"].get(target))
                             for entry in methods.values()])
    return table
