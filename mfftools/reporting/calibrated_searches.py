"""The report's 1:N protocol before and after a calibration: ident-eval results of the same
searches with and without `--calibration`, and each gallery of template-eval results likewise.

A calibrated result (with a `calibration` entry) is paired with the plain result of the same
images whose model its name extends ("MODEL + METHOD"; `calibration.calibrated_pairs`), when
both split the same searches (the same counts, groups and ranking rule). At each target FPIR
both give, each group's FNIR and FPIR before and after, and their spread across groups: the gap
between the highest and lowest group rate, and max/geomean (the results' own). Each change of
the gap is tested by a paired permutation test over searches (`paired_outcome_test`): under the
null that calibration changes nothing, the two outcomes of each search (missed or not, a false
positive or not, each at its run's threshold) are exchangeable, so each resample swaps them
with probability 1/2, search by search. Only a search whose two outcomes differ changes
anything, so a resample draws, per group, how many of its d discordant searches end with the
outcome after: Binomial(d, 1/2), exactly what the swaps give, at the cost of one draw per group.
The thresholds are those each run set (a resample may move a run's overall FPIR off its
target), so the false-claim rate is tested on null data whose runs set their own thresholds.
"""
import numpy as np

from mfftools.errors import MfftoolsError
from mfftools.evaluation.sanity import describe as describe_degenerate
from mfftools.reporting.document import Section
from mfftools.reporting.results import group_gap
from mfftools.reporting.tables import MISSING, NOT_APPLICABLE, Table, fmt_rate, fmt_ratio

# The paired test's random stream, apart from the bootstrap's, the group tests' and the
# instance pairing's.
STREAM = 4
# A resample that rebuilds the observed outcomes reaches the observed change whatever the order
# of its sums: changes within this relative margin count as equal.
_RELATIVE_TIE = 1e-12
RATES = {"fnir": ("mated_group", "missed"), "fpir": ("nonmated_group", "false_positives")}
# The results' keys that must agree for two runs to have searched the same way.
_SAME_SEARCHES = ("group_names", "n_templates", "n_mated", "n_nonmated", "rank", "rank_ties")


def paired_outcome_test(before, after, groups, n_resamples=1000, seed=0):
    """(change, p-value) of the gap between the highest and the lowest group rate of binary
    outcomes (one per search, `groups` its group), from `before` to `after`: a paired
    permutation test over searches, two-sided (module docstring); p = (1 + resamples whose
    |change| is at least the observed one) / (1 + resamples). None, None with fewer than two
    groups."""
    before, after = np.asarray(before, dtype=bool), np.asarray(after, dtype=bool)
    present, labels = np.unique(np.asarray(groups, dtype=np.int64), return_inverse=True)
    if len(present) < 2:
        return None, None
    size = np.bincount(labels, minlength=len(present))
    both = np.bincount(labels[before & after], minlength=len(present))
    discordant = np.bincount(labels[before != after], minlength=len(present))
    rising = np.bincount(labels[~before & after], minlength=len(present))

    def change(ending_after):  # [resamples, groups]: discordant searches with the outcome after
        after_rates = (both + ending_after) / size
        before_rates = (both + discordant - ending_after) / size
        return np.ptp(after_rates, axis=1) - np.ptp(before_rates, axis=1)

    observed = float(change(rising[None, :])[0])
    rng = np.random.default_rng((seed, STREAM))
    changes = change(rng.binomial(discordant, 0.5, size=(n_resamples, len(present))))
    reached = int(np.count_nonzero(np.abs(changes) >= abs(observed) * (1 - _RELATIVE_TIE)))
    return observed, (1 + reached) / (1 + n_resamples)


def search_outcomes(result, run, entry, rate):
    """(group of each search, its outcome) of `rate` ("fnir": mated searches, missed;
    "fpir": non-mated searches, false positives) at one results entry of `run` (an ident-eval
    result, or a template-eval gallery, of the ResultFile `result`); None when the result does
    not record them (older files). Malformed records are an error."""
    group_key, outcome_key = RATES[rate]
    searches = run.get("searches")
    if searches is None or outcome_key not in entry:
        return None
    groups, hits = searches.get(group_key), entry[outcome_key]
    count = run["n_mated"] if rate == "fnir" else run["n_nonmated"]
    names = run["group_names"]
    if (not isinstance(groups, list) or len(groups) != count
            or not all(_is_index(value, len(names)) for value in groups)):
        raise MfftoolsError(f"{result.path}: 'searches.{group_key}' must list the group index of "
                            f"each of the {count} searches")
    if not isinstance(hits, list) or not all(_is_index(value, count) for value in hits):
        raise MfftoolsError(f"{result.path}: '{outcome_key}' of target FPIR "
                            f"{entry['target_fpir']:g} must list search indices below {count}")
    outcome = np.zeros(count, dtype=bool)
    outcome[np.asarray(hits, dtype=np.int64)] = True
    return np.asarray(groups, dtype=np.int64), outcome


def _is_index(value, size):
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < size


def searched_pairs(pairs, template_pairs=()):
    """(label, plain result, calibrated result, plain searches, calibrated searches) of paired
    ident-eval results, and of each gallery two paired template-eval results share; only where
    both searched the same way (`_SAME_SEARCHES`, and the same searches' groups)."""
    found = [(calibrated.model, base, calibrated, base.data, calibrated.data)
             for base, calibrated in pairs]
    for base, calibrated in template_pairs:
        before = (base.data.get("identification") or {}).get("galleries", {})
        after = (calibrated.data.get("identification") or {}).get("galleries", {})
        found += [(f"{calibrated.model}, gallery {name}", base, calibrated, before[name],
                   after[name]) for name in after if name in before]
    return [item for item in found if _same_searches(item[3], item[4])]


def _same_searches(before, after):
    if any(before.get(key) != after.get(key) for key in _SAME_SEARCHES):
        return False
    recorded = [run.get("searches") for run in (before, after)]
    return None in recorded or recorded[0] == recorded[1]


def before_after_section(searched, n_resamples, seed):
    """The section comparing each paired 1:N run at each target FPIR both give; None without
    any."""
    tests = Table(
        title="Spread of the groups' FNIR and FPIR before and after calibration, with its "
              "paired test",
        row_header="model, target FPIR, rate",
        blocks=["spread"], columns=["statistic", "before", "after", "change", "p (paired)"],
        note="Gap: the highest minus the lowest group rate (over the groups with searches of "
             "that kind). Each change is tested by a paired permutation test over searches (the "
             "two outcomes of a search, each at its own run's threshold, swapped at random; "
             "two-sided); p below 0.05 says the calibration changed the gap by more than the "
             "searches' sampling noise. '-': no test (--bootstrap 0, fewer than two groups, "
             "results that do not record each search's outcome, or degenerate embeddings).",
    )
    section = Section("1:N protocol before and after calibration")
    for label, base, calibrated, before, after in searched:
        entries = {entry["target_fpir"]: entry for entry in before["results"]}
        testable = n_resamples and not any(describe_degenerate(result.data)
                                           for result in (base, calibrated))
        for entry in after["results"]:
            target = entry["target_fpir"]
            if target not in entries:
                continue
            section.items.append(_group_table(label, before, entries[target], entry))
            for rate in RATES:
                change, p_value = None, None
                sides = ((base, before, entries[target]), (calibrated, after, entry))
                outcomes = [search_outcomes(result, run, found, rate)
                            for result, run, found in sides]
                if testable and None not in outcomes:
                    change, p_value = paired_outcome_test(outcomes[0][1], outcomes[1][1],
                                                          outcomes[0][0], n_resamples, seed)
                gaps = [group_gap(found, rate) for found in (entries[target], entry)]
                tests.add_row(f"{label}, FPIR {_target(target)}, {rate.upper()}", [
                    "highest - lowest group", fmt_rate(gaps[0]), fmt_rate(gaps[1]),
                    MISSING if change is None else f"{change:+.4g}",
                    MISSING if p_value is None else f"{p_value:.3g}"])
    if not tests.rows:
        return None
    section.items.append(tests)
    return section


def _group_table(label, run, before, after):
    """Each group's FNIR and FPIR before and after, then their gap and max/geomean."""
    table = Table(
        title=f"{label}: 1:N per group at target FPIR {_target(after['target_fpir'])}, before "
              "and after calibration",
        row_header="group", blocks=["FNIR", "FPIR"], columns=["before", "after"],
        note="Each run at its own threshold for the target FPIR (after calibration, a "
             "confidence). Gap: highest - lowest group rate; max/geomean: 1 is fair, - where a "
             "group's rate is 0; n/a: fewer than two groups with the rate.",
    )
    table.add_row("all", [fmt_rate(entry[rate]) for rate in RATES for entry in (before, after)])
    for name in run["group_names"]:
        table.add_row(name, [fmt_rate(entry["groups"][name][rate]) for rate in RATES
                             for entry in (before, after)])
    table.add_row("gap", [_across(entry, rate, fmt_rate(group_gap(entry, rate)))
                          for rate in RATES for entry in (before, after)])
    table.add_row("max/geomean", [
        _across(entry, rate, fmt_ratio(entry["fairness"][f"{rate}_max_geomean"]))
        for rate in RATES for entry in (before, after)])
    return table


def _target(target):
    """A target FPIR as the report writes it (1e-02), or in full where that would round it."""
    short = f"{target:.0e}"
    return short if float(short) == target else f"{target:g}"


def _across(entry, rate, cell):
    """A measure across groups, or n/a over fewer than two groups with the rate."""
    defined = sum(1 for group in entry["groups"].values() if group[rate] is not None)
    return cell if defined >= 2 else NOT_APPLICABLE
