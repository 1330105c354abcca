"""The report's opening paragraph: for each model, the groups at the extremes (named as ties when
several share the extreme value) and the gap to the other end, then the significance statements
of the first operating point, taken word for word from their claim objects.

The hardest group of the pair protocol is defined here once (`hardest_pair_group`): the demo
prints the same phrase.
"""
from mfftools.evaluation.sanity import describe as describe_degenerate
from mfftools.reporting.claims import GROUP_VERSUS_REST, GROUPS_DIFFER, MODELS
from mfftools.reporting.results import entry_label
from mfftools.reporting.tables import fmt_rate

# Tied names listed before "and N more".
SHOWN_TIES = 2


def name_ties(names, shown=SHOWN_TIES):
    """"A", "A and B", "A, B and C", or "A, B and 5 more" beyond `shown` + 1 names."""
    names = list(names)
    if len(names) <= shown + 1:
        return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"
    return ", ".join(names[:shown]) + f" and {len(names) - shown} more"


def extreme(values, highest):
    """(the names whose value is the highest (or lowest), in order, the value) of {name: value}
    without None values; ties are exact equality."""
    value = (max if highest else min)(values.values())
    return [name for name, found in values.items() if found == value], value


def _gap_phrase(values, highest, fmt, what, unit="", points=False):
    """"X (<what> <value>, <gap> below Y)" with ties named, or None with fewer than two groups;
    "all N groups at <value>" when every group ties."""
    if len(values) < 2:
        return None
    ends, value = extreme(values, highest)
    others, other = extreme(values, not highest)
    if value == other:
        return f"all {len(values)} groups at {fmt(value)}{unit} ({what}, no gap)"
    tied = "tied, " if len(ends) > 1 else ""
    gap = abs(value - other)
    gap_text = f"{gap:.2f} points" if points else fmt(gap)
    direction = "above" if highest else "below"
    return (f"{name_ties(ends)} ({tied}{what} {fmt(value)}{unit}, {gap_text} {direction} "
            f"{name_ties(others)})")


def hardest_pair_group(groups):
    """The pair protocol's hardest group (lowest accuracy) as the report and the demo print it:
    "X (pair accuracy 87.00%, 8.00 points below Y)", ties named; None with one group."""
    accuracies = {name: 100 * group["accuracy"] for name, group in groups.items()}
    return _gap_phrase(accuracies, False, lambda value: f"{value:.2f}", "pair accuracy", "%",
                       points=True)


def summarise(pair_results, instance_pairs, claims=(), identification_pairs=(), alpha=None):
    """One paragraph over the pair results, the instance results at one operating point, the
    identification results at one target FPIR and the significance `claims` of that instance
    operating point (`claims.Claim` objects; statements about single groups only where
    significant).

    `instance_pairs` and `identification_pairs` are `entries_at(...)` of those points (either may
    be empty). A result of degenerate embeddings gets a sentence saying so, and no group named.
    """
    by_model = [(result.model, _sound(result, "pair protocol") or _pair_sentence(result))
                for result in pair_results]
    by_model += [(result.model, _sound(result, f"instance protocol at {entry_label(entry)}")
                  or _instance_sentence(result, entry))
                 for result, entry in instance_pairs]
    by_model += [(result.model, _sound(result, f"1:N identification at {entry_label(entry)}")
                  or _identification_sentence(result, entry))
                 for result, entry in identification_pairs]
    by_model += [(claim.model, claim.statement) for claim in claims
                 if claim.family == GROUPS_DIFFER
                 or (claim.family == GROUP_VERSUS_REST and claim.significant)]
    models = list(dict.fromkeys(model for model, _ in by_model))
    sentences = [sentence for _, sentence in sorted(by_model, key=lambda m: models.index(m[0]))]
    sentences += [claim.statement for claim in claims if claim.family == MODELS]
    if claims:
        sentences.append(
            f"Each significance statement is a permutation test over identities, Holm-adjusted "
            f"within its family, so that when nothing differs it fires with probability at most "
            f"α = {alpha if alpha is not None else claims[0].alpha:g}; every statement made is "
            "in claims.json.")
    return " ".join(sentences)


def _sound(result, what):
    """None for sound embeddings; for degenerate ones, the sentence that says no group is named."""
    finding = describe_degenerate(result.data)
    if not finding:
        return None
    return f"{result.model}, {what}: {finding}; no group comparison is drawn from them."


def _pair_sentence(result):
    """Over the demographic groups only: verification sets (lfw, cfp_fp, ...) are unrelated
    benchmarks, not groups of one."""
    sets = result.data.get("verification_sets") or []
    groups = {name: group for name, group in result.data["groups"].items() if name not in sets}
    phrase = hardest_pair_group(groups)
    if phrase is not None:
        return f"{result.model}, pair protocol: hardest group: {phrase}."
    if sets:
        return (f"{result.model}, pair protocol: verification sets {', '.join(sets)}, unrelated "
                "benchmarks, not groups to compare.")
    return f"{result.model}, pair protocol: one group only, no gap between groups."


def _instance_sentence(result, entry):
    head = f"{result.model}, instance protocol at {entry_label(entry)}:"
    parts = [_extreme_part(entry, "tpr_mean", "lowest TPR mean", False),
             _extreme_part(entry, "fpr_mean", "highest FPR mean", True)]
    return _joined(head, parts)


def _identification_sentence(result, entry):
    head = f"{result.model}, 1:N identification at {entry_label(entry)}:"
    parts = [_extreme_part(entry, "fnir", f"highest FNIR (rank {result.data['rank']})", True),
             _extreme_part(entry, "fpir", "highest FPIR", True)]
    return _joined(head, parts)


def _joined(head, parts):
    parts = [part for part in parts if part is not None]
    if not parts:
        return f"{head} fewer than two groups, no gap between groups."
    return f"{head} {'; '.join(parts)}."


def _extreme_part(entry, stat, what, highest):
    values = {name: group[stat] for name, group in entry["groups"].items()
              if group.get(stat) is not None}
    phrase = _gap_phrase(values, highest, fmt_rate, stat.split("_")[0].upper())
    return None if phrase is None else f"{what}: {phrase}"
