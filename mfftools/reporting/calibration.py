"""The report's calibration sections: `mfftools calibrate` results (cross-val or apply), every
method side by side, before (baseline) and after; and the instance protocol before and after a
calibration, with the significance of each change.

Per calibrate results file: one table of accuracy, the spread of the groups' FPRs at the global
threshold and the mean calibration error per method; one table of each group's FPR at the first
target per method. The results file's keys are checked on load (`check_calibration`).

Instance results of the same images with and without `--calibration` (a calibrated result names
its model "MODEL + METHOD") are compared at each operating point they share: the spread of the
per-identity TPR and FPR (their standard deviation over identities) and the gap between the
highest and lowest group mean, before and after, each change tested by a paired permutation
test over identities (`paired_test`). 1:N results (ident-eval, template-eval's galleries) before
and after a calibration are compared likewise, search by search (calibrated_searches).
"""
import numpy as np

from mfftools.reporting.calibrated_searches import before_after_section, searched_pairs
from mfftools.reporting.document import Section
from mfftools.reporting.results import per_identity_rates, point_of
from mfftools.reporting.tables import MISSING, Table, fmt_rate, fmt_ratio

# The paired test's random stream, apart from the bootstrap's and the group test's.
STREAM = 3
_CHUNK = 100
# A resample that rebuilds the observed pairing reaches the observed change whatever the order
# of its sums: changes within this relative margin count as equal.
_RELATIVE_TIE = 1e-12

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


def calibration_sections(results, instance_results=(), n_resamples=1000, seed=0,
                         identification_results=(), template_results=()):
    """One section per calibration results file (ResultFile), then the instance protocol before
    and after calibration where `instance_results` hold both (`n_resamples` of the paired test;
    0: no tests), then 1:N before and after where the identification or template results hold
    both (calibrated_searches)."""
    sections = [_section(result) for result in results]
    pairs = calibrated_pairs(instance_results)
    if pairs:
        sections.append(_before_after_section(pairs, n_resamples, seed))
    searched = searched_pairs(calibrated_pairs(identification_results),
                              calibrated_pairs(template_results))
    section = before_after_section(searched, n_resamples, seed) if searched else None
    if section is not None:
        sections.append(section)
    return sections


def calibrated_pairs(results):
    """(plain, calibrated) results of one protocol on the same images: a calibrated result (with
    a `calibration` entry) and the uncalibrated result whose model its name extends."""
    plain = [result for result in results if "calibration" not in result.data]
    pairs = []
    for result in results:
        if "calibration" not in result.data:
            continue
        for base in plain:
            same_images = result.data.get("images") == base.data.get("images")
            if same_images and result.model.startswith(f"{base.model} + "):
                pairs.append((base, result))
                break
    return pairs


SPREAD_STATISTICS = {"std": "std over identities", "gap": "highest - lowest group mean"}


def statistic(values, groups, kind):
    """The spread of per-identity rates [resamples, identities]: their std (ddof 0) over
    identities, or the gap between the highest and the lowest group mean (`groups` one group
    index per identity)."""
    values = np.atleast_2d(values)
    if kind == "std":
        return values.std(axis=1)
    present, labels = np.unique(groups, return_inverse=True)
    sums = np.stack([values[:, labels == k].sum(axis=1) for k in range(len(present))], axis=1)
    means = sums / np.bincount(labels, minlength=len(present))
    return means.max(axis=1) - means.min(axis=1)


def paired_test(before, after, groups, kind, n_resamples=1000, seed=0):
    """(change, p-value) of a spread statistic (`statistic`) from `before` to `after`, per
    identity paired: under the null that calibration changes nothing, the two values of each
    identity are exchangeable, so each resample swaps them for a random half of the identities;
    p = (1 + resamples whose |change| is at least the observed one) / (1 + resamples), two-sided.
    Identities undefined on either side (NaN: no genuine pair) are left out. None, None with
    fewer than two identities (or groups, for the gap)."""
    before, after = np.asarray(before, dtype=np.float64), np.asarray(after, dtype=np.float64)
    defined = ~np.isnan(before) & ~np.isnan(after)
    before, after, groups = before[defined], after[defined], np.asarray(groups)[defined]
    if len(before) < 2 or (kind == "gap" and len(np.unique(groups)) < 2):
        return None, None
    observed = float(statistic(after, groups, kind)[0] - statistic(before, groups, kind)[0])
    rng = np.random.default_rng((seed, STREAM))
    reached = 0
    for start in range(0, n_resamples, _CHUNK):
        count = min(_CHUNK, n_resamples - start)
        swap = rng.random((count, len(before))) < 0.5
        first = np.where(swap, after, before)
        second = np.where(swap, before, after)
        changes = statistic(second, groups, kind) - statistic(first, groups, kind)
        reached += int(np.count_nonzero(
            np.abs(changes) >= abs(observed) * (1 - _RELATIVE_TIE)))
    return observed, (1 + reached) / (1 + n_resamples)


def _before_after_section(pairs, n_resamples, seed):
    section = Section("Instance protocol before and after calibration")
    table = Table(
        title="Per-identity spread before and after calibration, with its paired test",
        row_header="model, operating point, rate",
        blocks=["spread"], columns=["statistic", "before", "after", "change", "p (paired)"],
        note="Each change is tested by a paired permutation test over identities (the two "
             "values of an identity swapped at random, two-sided); p below 0.05 says the "
             "calibration changed the spread by more than the identities' sampling noise. '-': "
             "no test (--bootstrap 0, or too few identities or groups).",
    )
    for base, calibrated in pairs:
        entries = {point_of(entry): entry for entry in base.data["results"]}
        for entry in calibrated.data["results"]:
            point = point_of(entry)
            if point not in entries:
                continue
            before = per_identity_rates(base, entries[point])
            after = per_identity_rates(calibrated, entry)
            if before is None or after is None:
                continue
            for rate in ("tpr", "fpr"):
                for kind, words in SPREAD_STATISTICS.items():
                    change, p_value = (None, None)
                    if n_resamples:
                        change, p_value = paired_test(before[rate], after[rate],
                                                      before["group"], kind, n_resamples, seed)
                    values = [_spread_of(columns[rate], columns["group"], kind)
                              for columns in (before, after)]
                    label = (f"{calibrated.model}, FPR {point[0]:.0e} ({point[1]}), "
                             f"{rate.upper()}")
                    table.add_row(label, [words, fmt_rate(values[0]), fmt_rate(values[1]),
                                          MISSING if change is None else f"{change:+.4g}",
                                          MISSING if p_value is None else f"{p_value:.3g}"])
    section.items.append(table)
    return section


def _spread_of(values, groups, kind):
    values = np.asarray(values, dtype=np.float64)
    defined = ~np.isnan(values)
    if defined.sum() < 2:
        return None
    return float(statistic(values[defined], np.asarray(groups)[defined], kind)[0])


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
