"""The report's significance statements, one object each, written to claims.json.

A statement is printed from its object (`statement` is the sentence as printed) and the summary
paragraph takes its significance sentences from the same objects, so the two cannot disagree.
Each object keeps its stated error rate `alpha` under the null, whatever the number of groups or
models, by these families (one model, one operating point):

- "the groups differ" (`GROUPS_DIFFER`): the permutation test of the range of the group means,
  for TPR and FPR, Holm-adjusted over the two rates;
- "group g differs from the rest" (`GROUP_VERSUS_REST`): the permutation test of the group's mean
  against the other groups' pooled mean, Holm-adjusted over every group and rate, and named only
  where the "groups differ" statement of the same rate is significant: its p is the larger of the
  two. When every group is alike, a group can then be named only when some "groups differ"
  statement fires, which the Holm step keeps at most alpha;
- model comparisons (`MODELS`), at one operating point, between models evaluated on the same
  images: "B's TPR std over identities is lower than A's" and "B's gap between its highest and
  lowest group TPR mean is smaller than A's", by paired permutation over identities,
  Holm-adjusted over every comparison at that point.

Statements that a group differs are printed only when significant; the others are printed either
way ("do not differ detectably" is not a claim of equality).
"""
import json
from dataclasses import asdict, dataclass, field
from itertools import combinations

from mfftools.files import write_text
from mfftools.reporting.results import entry_label, per_identity_rates, point_of
from mfftools.reporting.same_images import SAME, compare_images, paired_identities
from mfftools.reporting.significance import holm, paired_test
from mfftools.reporting.tables import fmt_p, fmt_rate

ALPHA = 0.05
# The keys of each object of claims.json, in order.
KEYS = ("model", "protocol", "measure", "groups", "statement", "test", "statistic", "p_value",
        "alpha", "significant")
GROUPS_DIFFER, GROUP_VERSUS_REST, MODELS = "groups differ", "group versus rest", "models"
RATE_LABELS = {"tpr_mean": "TPR mean", "fpr_mean": "FPR mean"}


@dataclass(frozen=True)
class Claim:
    """One printed significance statement (KEYS), with its family and operating point."""

    model: str
    protocol: str
    measure: str
    groups: list
    statement: str
    test: str
    statistic: float
    p_value: float
    alpha: float
    significant: bool
    family: str = field(default="", compare=False)
    point: object = field(default=None, compare=False)

    def as_json(self):
        found = asdict(self)
        return {key: found[key] for key in KEYS}


def adjusted_p_values(tests):
    """The p-values `group_claims` compares with alpha, from `significance.group_tests` output:
    ({rate: "groups differ" p, Holm over the rates}, {(rate, group index): group versus rest p,
    Holm over groups and rates, then at least its rate's "groups differ" p})."""
    rates = [rate for rate in RATE_LABELS if rate in tests]
    gates = dict(zip(rates, holm([tests[rate].range.p_value for rate in rates])))
    hypotheses = [(rate, group) for rate in rates for group in sorted(tests[rate].versus_rest)]
    adjusted = holm([tests[rate].versus_rest[group].p_value for rate, group in hypotheses])
    return gates, {(rate, group): max(p, gates[rate])
                   for (rate, group), p in zip(hypotheses, adjusted)}


def group_claims(result, entry, tests, alpha=ALPHA):
    """The statements about the groups of one model at one operating point, from its
    `significance.group_tests` output: "the groups differ" for each rate, then each group whose
    mean differs from the rest's."""
    label = entry_label(entry)
    head = f"{result.model}, instance protocol at {label}:"
    names = result.group_names
    gates, versus_rest = adjusted_p_values(tests)
    claims = []
    for rate, p in gates.items():
        found = tests[rate]
        what = RATE_LABELS[rate]
        significant = p <= alpha
        statistic = fmt_rate(found.range.observed)
        adjustment = f"Holm-adjusted over {len(gates)} rate{'s' if len(gates) > 1 else ''}"
        if significant:
            statement = (f"{head} the groups' {what}s differ by more than a random assignment "
                         f"of identities to groups explains (highest minus lowest {statistic}; "
                         f"permutation p = {fmt_p(p)}, {adjustment}; α = {alpha:g}).")
        else:
            statement = (f"{head} the groups' {what}s do not differ detectably from a random "
                         f"assignment of identities to groups (highest minus lowest {statistic}; "
                         f"permutation p = {fmt_p(p)}, {adjustment}; α = {alpha:g}).")
        claims.append(Claim(
            model=result.model, protocol="instance", measure=f"{rate} at {label}",
            groups=[names[g] for g in sorted(found.versus_rest)], statement=statement,
            test=(f"permutation of the group labels across {found.n_identities} identities "
                  f"({found.range.n_resamples} shuffles); statistic: highest minus lowest "
                  f"group mean; {adjustment}"),
            statistic=found.range.observed, p_value=p, alpha=alpha, significant=significant,
            family=GROUPS_DIFFER, point=point_of(entry)))
    for (rate, group), p in versus_rest.items():
        if p > alpha:
            continue
        found = tests[rate]
        mean, rest = found.means[group]
        direction = "higher" if mean > rest else "lower"
        claims.append(Claim(
            model=result.model, protocol="instance", measure=f"{rate} at {label}",
            groups=[names[group]],
            statement=(f"{head} {names[group]}'s {RATE_LABELS[rate]} ({fmt_rate(mean)}) is "
                       f"{direction} than that of the other groups' identities pooled "
                       f"({fmt_rate(rest)}) (permutation p = {fmt_p(p)}, Holm-adjusted over "
                       f"{len(versus_rest)} groups and rates; α = {alpha:g})."),
            test=(f"permutation of the group labels across {found.n_identities} identities "
                  f"({found.range.n_resamples} shuffles); statistic: the group's mean minus the "
                  f"other groups' pooled mean, two-sided; Holm over {len(versus_rest)} groups "
                  "and rates; p is the larger of that and the rate's 'groups differ' p"),
            statistic=found.versus_rest[group].observed, p_value=p, alpha=alpha,
            significant=True, family=GROUP_VERSUS_REST, point=point_of(entry)))
    return claims


MODEL_MEASURES = {
    "tpr_std": ("TPR std over identities", "lower", "higher"),
    "tpr_range": ("gap between the highest and the lowest group TPR mean", "smaller", "larger"),
}


def model_claims(pairs, n_resamples, seed=0, alpha=ALPHA):
    """The model comparisons at one operating point (`pairs`: `entries_at` of instance results),
    between every two models evaluated on the same images whose identities pair up. Returns
    (claims, notes): a note for each pair of models not compared, and why."""
    tested, notes = [], []
    for (first, first_entry), (second, second_entry) in combinations(pairs, 2):
        check = compare_images("instance", [first, second])
        if check.verdict != SAME:
            notes.append(f"{first.model} and {second.model} are not compared at "
                         f"{entry_label(first_entry)}: {check.message}")
            continue
        first_columns = per_identity_rates(first, first_entry)
        second_columns = per_identity_rates(second, second_entry)
        if (first_columns is None or second_columns is None
                or not paired_identities(first, second)):
            notes.append(f"{first.model} and {second.model} are not compared at "
                         f"{entry_label(first_entry)}: the files do not give per-identity rows "
                         "of the same identities in the same order.")
            continue
        for measure in MODEL_MEASURES:
            found = paired_test(first_columns["tpr"], second_columns["tpr"],
                                first_columns["group"], measure, n_resamples, seed)
            if found is not None:
                tested.append((first, second, first_entry, measure, found))
    adjusted = holm([found.p_value for *_, found in tested])
    claims = []
    for (first, second, entry, measure, found), p in zip(tested, adjusted):
        what, less, more = MODEL_MEASURES[measure]
        label = entry_label(entry)
        significant = p <= alpha
        evidence = (f"paired permutation over {found.n_identities} identities, p = {fmt_p(p)}, "
                    f"Holm-adjusted over {len(tested)} model comparisons; α = {alpha:g}")
        if significant:
            (low, low_value), (high, high_value) = sorted(
                [(first.model, found.first), (second.model, found.second)], key=lambda m: m[1])
            statement = (f"Instance protocol at {label}: {low}'s {what} ({fmt_rate(low_value)}) "
                         f"is {less} than {high}'s ({fmt_rate(high_value)}) ({evidence}).")
        else:
            statement = (f"Instance protocol at {label}: the {what} of {first.model} "
                         f"({fmt_rate(found.first)}) and {second.model} "
                         f"({fmt_rate(found.second)}) do not differ detectably ({evidence}).")
        claims.append(Claim(
            model=f"{first.model} vs {second.model}", protocol="instance",
            measure=f"{measure} at {label}", groups=list(first.group_names),
            statement=statement,
            test=(f"paired permutation: each identity's two TPRs swapped at random "
                  f"({found.n_resamples} swaps), each model at its own threshold; statistic: "
                  f"{what} of {first.model} minus that of {second.model}, two-sided; Holm over "
                  f"{len(tested)} model comparisons"),
            statistic=found.observed, p_value=p, alpha=alpha, significant=significant,
            family=MODELS, point=point_of(entry)))
    return claims, notes


def write_claims(path, claims):
    """claims.json: a list of one object per statement (KEYS), written atomically."""
    return write_text(path, json.dumps([claim.as_json() for claim in claims], indent=1,
                                       ensure_ascii=False, allow_nan=False) + "\n")
