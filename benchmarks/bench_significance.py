"""How often the report's significance statements fire: when nothing differs (the false-claim
rate, which must stay within alpha and its sampling margin) and when a group is really worse (the
power), at 4 and 8 groups; and the same for the comparison of two models.

Data sets are simulated as inst-eval's per-identity rates from counts (tests/significance_data.py:
identities of 1 to 8 images, TPR over their ordered genuine pairs, FPR over their impostor pairs
at a target of 1e-3 with a heavy-tailed propensity), identities assigned to groups at random.
"Real gaps" lower group G0's accept probability by 0.05 to 0.2, or multiply its false-match
propensity by 3. Each data set goes through the report's own functions (`group_tests`,
`group_claims`, `model_claims`). For comparison, the rules of earlier reports are applied to the
same data: a group marked when its 95% percentile-bootstrap interval excludes the other groups'
pooled mean, and the gap between the highest and lowest group "more than sampling noise" when its
percentile interval excludes 0.

Full run (200 data sets per row, 50 identities per group):
`python benchmarks/bench_significance.py`; smoke run: `--quick`.
"""
import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bench_extract import machine as cpu  # noqa: E402
from mfftools.reporting.claims import GROUP_VERSUS_REST, GROUPS_DIFFER, group_claims  # noqa: E402
from mfftools.reporting.claims import model_claims  # noqa: E402
from mfftools.reporting.results import per_identity_rates  # noqa: E402
from mfftools.reporting.significance import group_tests  # noqa: E402
from mfftools.reporting.tables import entries_at  # noqa: E402
from significance_data import TARGET, identities, model_pair, rates, result  # noqa: E402

ALPHA = 0.05
# (label, TPR gap of group G0, FPR ratio of group G0)
SCENARIOS = (("null", 0.0, 1.0), ("TPR gap 0.05", 0.05, 1.0), ("TPR gap 0.10", 0.10, 1.0),
             ("TPR gap 0.20", 0.20, 1.0), ("FPR x3", 0.0, 3.0))
# (label, spread, lift) of the second model against the first
MODEL_SCENARIOS = (("null (same model)", 1.0, 0.0), ("B narrower", 0.5, 0.05),
                   ("B much narrower", 0.2, 0.12))


def earlier_rules(columns, n_groups, n_resamples, rng):
    """(any group marked, any gap called more than noise) by the earlier report's rules."""
    marked = gap_claimed = False
    for rate in ("tpr", "fpr"):
        values, group = columns[rate], columns["group"]
        keep = ~np.isnan(values)
        values, group = values[keep], group[keep]
        means, draws = [], []
        for g in range(n_groups):
            own = values[group == g]
            sample = own[rng.integers(0, len(own), (n_resamples, len(own)))].mean(axis=1)
            low, high = np.percentile(sample, [2.5, 97.5])
            others = values[group != g].mean()
            marked |= bool(others < low or others > high)
            means.append(own.mean())
            draws.append(sample)
        gap = draws[int(np.argmax(means))] - draws[int(np.argmin(means))]
        low, high = np.percentile(gap, [2.5, 97.5])
        gap_claimed |= bool(low > 0 or high < 0)
    return marked, gap_claimed


def group_row(rng, n_groups, per_group, scenario, n_sets, n_permutations, n_bootstrap):
    """The counts of one row of the group table over `n_sets` simulated data sets."""
    _, tpr_gap, fpr_ratio = scenario
    rate = "tpr_mean" if tpr_gap else "fpr_mean"
    counts = dict.fromkeys(("any", "differ", "named", "other", "earlier marks", "earlier gap"), 0)
    for seed in range(n_sets):
        group, accept, propensity, images = identities(rng, n_groups, per_group, tpr_gap,
                                                       fpr_ratio)
        found = result("m", group, *rates(rng, accept, propensity, images), n_groups)
        entry = found.data["results"][0]
        columns = per_identity_rates(found, entry)
        claims = group_claims(found, entry, group_tests(columns, n_permutations, seed), ALPHA)
        significant = [claim for claim in claims if claim.significant]
        counts["any"] += bool(significant)
        counts["differ"] += any(claim.family == GROUPS_DIFFER and claim.measure.startswith(rate)
                                for claim in significant)
        named = [claim.groups[0] for claim in significant if claim.family == GROUP_VERSUS_REST
                 and claim.measure.startswith(rate)]
        counts["named"] += "G0" in named
        counts["other"] += any(name != "G0" for name in named)
        marked, gap_claimed = earlier_rules(columns, n_groups, n_bootstrap, rng)
        counts["earlier marks"] += marked
        counts["earlier gap"] += gap_claimed
    return counts


def model_row(rng, per_group, scenario, n_sets, n_permutations):
    _, spread, lift = scenario
    counts = {"any": 0, "std": 0}
    for seed in range(n_sets):
        first, second = model_pair(rng, 4, per_group, spread, lift)
        claims, _ = model_claims(entries_at([first, second], (TARGET, "exact")), n_permutations,
                                 seed, ALPHA)
        counts["any"] += any(claim.significant for claim in claims)
        counts["std"] += any(claim.significant and claim.measure.startswith("tpr_std")
                             for claim in claims)
    return counts


def wilson_upper(count, n, z=1.96):
    """The upper end of the 95% Wilson interval of a share count / n."""
    share = count / n
    centre = share + z * z / (2 * n)
    spread = z * np.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    return (centre + spread) / (1 + z * z / n)


def machine():
    return f"{cpu(torch.device('cpu'))}, load average {os.getloadavg()[0]:.1f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-sets", type=int, default=200, help="data sets per row")
    parser.add_argument("--per-group", type=int, default=50, help="identities per group")
    parser.add_argument("--permutations", type=int, default=999)
    parser.add_argument("--bootstrap", type=int, default=200, help="of the earlier rules")
    parser.add_argument("--quick", action="store_true", help="20 data sets per row")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n_sets = 20 if args.quick else args.data_sets
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    print(f"alpha {ALPHA}; {n_sets} data sets per row; {args.per_group} identities per group; "
          f"{args.permutations} shuffles per test; machine: {machine()}")
    print("\nGroups (identities assigned to groups at random; G0 worse in the gap rows). Shares "
          "of data sets with: any significant statement; 'the groups differ' for the rate with "
          "the gap; G0 named; another group named; earlier rules: any group marked, the gap "
          "called more than noise.\n")
    print("| groups | data | any statement | groups differ | G0 named | other named | "
          "earlier: marks | earlier: gap | within alpha |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n_groups in (4, 8):
        for scenario in SCENARIOS:
            counts = group_row(rng, n_groups, args.per_group, scenario, n_sets,
                               args.permutations, args.bootstrap)
            within = ""
            if scenario[0] == "null":
                upper = wilson_upper(counts["any"], n_sets)
                within = f"yes (95% upper {upper:.3f})" if counts["any"] / n_sets <= ALPHA + \
                    2 * np.sqrt(ALPHA * (1 - ALPHA) / n_sets) else f"NO (95% upper {upper:.3f})"
            shares = " | ".join(f"{counts[key] / n_sets:.3f}" for key in
                                ("any", "differ", "named", "other", "earlier marks",
                                 "earlier gap"))
            print(f"| {n_groups} | {scenario[0]} | {shares} | {within} |")
    print("\nModel comparisons (two models on the same identities, 4 groups): shares of data "
          "sets with any significant comparison, and with 'TPR std' significant.\n")
    print("| data | any comparison | TPR std | within alpha |")
    print("|---|---|---|---|")
    for scenario in MODEL_SCENARIOS:
        counts = model_row(rng, args.per_group, scenario, n_sets, args.permutations)
        within = ""
        if scenario[1] == 1.0:
            within = "yes" if counts["any"] / n_sets <= ALPHA + 2 * np.sqrt(
                ALPHA * (1 - ALPHA) / n_sets) else "NO"
            within += f" (95% upper {wilson_upper(counts['any'], n_sets):.3f})"
        print(f"| {scenario[0]} | {counts['any'] / n_sets:.3f} | {counts['std'] / n_sets:.3f} | "
              f"{within} |")
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
