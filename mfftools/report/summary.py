"""The report's opening paragraph: for each model, the hardest group and the gaps between groups,
and whether the bootstrap interval of each gap excludes 0 (then the gap is more than sampling
noise); for 1:N identification, the groups with the highest FNIR and FPIR."""
from mfftools.report.results import entry_label, group_gap
from mfftools.report.tables import fmt_interval, fmt_rate


def summarise(pair_results, instance_pairs, intervals, identification_pairs=()):
    """One paragraph over the pair results, the instance results at one operating point and the
    identification results at one target FPIR.

    `instance_pairs` and `identification_pairs` are `entries_at(...)` of those points (either may
    be empty); `intervals` maps a model to its `bootstrap_instance` output at the first.
    """
    by_model = [(result.model, _pair_sentence(result)) for result in pair_results]
    by_model += [
        (result.model,
         _instance_sentence(result, entry, intervals.get(result.model, {}).get("gap", {})))
        for result, entry in instance_pairs
    ]
    by_model += [(result.model, _identification_sentence(result, entry))
                 for result, entry in identification_pairs]
    models = list(dict.fromkeys(model for model, _ in by_model))
    sentences = [sentence for _, sentence in sorted(by_model, key=lambda m: models.index(m[0]))]
    if intervals:
        sentences.append(
            "A gap whose 95% bootstrap interval (over identities) excludes 0 is more than "
            "sampling noise."
        )
    return " ".join(sentences)


def _pair_sentence(result):
    groups = result.data["groups"]
    if len(groups) < 2:
        return f"{result.model}, pair protocol: one group only, no gap between groups."
    hardest = min(groups, key=lambda name: groups[name]["accuracy"])
    best = max(groups, key=lambda name: groups[name]["accuracy"])
    accuracy = 100 * groups[hardest]["accuracy"]
    gap = 100 * groups[best]["accuracy"] - accuracy
    return (
        f"{result.model}, pair protocol: hardest group by accuracy: {hardest} ({accuracy:.2f}%, "
        f"{gap:.2f} points below {best})."
    )


def _instance_sentence(result, entry, gap_intervals):
    head = f"{result.model}, instance protocol at {entry_label(entry)}:"
    parts = [
        _extreme(entry, "tpr_mean", "hardest group by TPR mean", min, "below", gap_intervals),
        _extreme(entry, "fpr_mean", "highest FPR mean", max, "above", gap_intervals),
    ]
    parts = [part for part in parts if part is not None]
    if not parts:
        return f"{head} fewer than two groups, no gap between groups."
    return f"{head} {'; '.join(parts)}."


def _identification_sentence(result, entry):
    head = f"{result.model}, 1:N identification at {entry_label(entry)}:"
    parts = [
        _extreme(entry, "fnir", f"highest FNIR (rank {result.data['rank']})", max, "above", {}),
        _extreme(entry, "fpir", "highest FPIR", max, "above", {}),
    ]
    parts = [part for part in parts if part is not None]
    if not parts:
        return f"{head} fewer than two groups, no gap between groups."
    return f"{head} {'; '.join(parts)}."


def _extreme(entry, stat, what, pick, direction, gap_intervals):
    """"<what>: <group> (<value>, <gap> <direction> <other group>[; interval])", or None with
    fewer than two groups."""
    gap = group_gap(entry, stat)
    if gap is None:
        return None
    values = {name: group[stat] for name, group in entry["groups"].items()
              if group[stat] is not None}
    extreme = pick(values, key=values.get)
    other = (max if pick is min else min)(values, key=values.get)
    text = (f"{what}: {extreme} ({fmt_rate(values[extreme])}, {fmt_rate(gap)} {direction} "
            f"{other}")
    interval = gap_intervals.get(stat)
    if interval is not None:
        excludes = interval.low > 0 or interval.high < 0
        text += (f"; 95% CI of the gap {fmt_interval(interval, fmt_rate)} "
                 f"{'excludes' if excludes else 'includes'} 0")
    return text + ")"
