"""The report's opening paragraph, against numbers written by hand."""
import copy

from mfftools.report.bootstrap import Interval
from mfftools.report.results import ResultFile
from mfftools.report.summary import summarise

PAIR = {
    "protocol": "pair", "group_names": ["G1", "G2", "G3"],
    "groups": {"G1": {"accuracy": 0.95}, "G2": {"accuracy": 0.87}, "G3": {"accuracy": 0.9}},
}
ENTRY = {
    "target_fpr": 1e-4, "method": "bisection",
    "groups": {"G1": {"tpr_mean": 0.9, "fpr_mean": 1e-4}, "G2": {"tpr_mean": 0.7, "fpr_mean": 3e-4},
               "G3": {"tpr_mean": 0.85, "fpr_mean": None}},
}
INSTANCE = {"protocol": "instance", "group_names": ["G1", "G2", "G3"], "results": [ENTRY]}


def _file(data, model):
    return ResultFile(path=None, protocol=data["protocol"], model=model, data=copy.deepcopy(data))


def test_hardest_groups_and_gaps_with_their_intervals():
    gaps = {"tpr_mean": Interval(0.15, 0.25), "fpr_mean": Interval(-1e-5, 4e-4)}
    intervals = {"m": {"gap": gaps}}
    instance = _file(INSTANCE, "m")
    text = summarise([_file(PAIR, "m"), _file(PAIR, "n")], [(instance, ENTRY)], intervals)
    assert text == (
        "m, pair protocol: hardest group by accuracy: G2 (87.00%, 8.00 points below G1). "
        "m, instance protocol at FPR 1e-04, bisection: hardest group by TPR mean: G2 (0.7000, "
        "0.2000 below G1; 95% CI of the gap [0.1500, 0.2500] excludes 0); highest FPR mean: G2 "
        "(3.000e-04, 2.000e-04 above G1; 95% CI of the gap [-1.000e-05, 4.000e-04] includes 0). "
        "n, pair protocol: hardest group by accuracy: G2 (87.00%, 8.00 points below G1). "
        "A gap whose 95% bootstrap interval (over identities) excludes 0 is more than sampling "
        "noise."
    )


def test_without_intervals_or_a_second_group():
    instance = _file(INSTANCE, "m")
    assert summarise([], [(instance, ENTRY)], {}) == (
        "m, instance protocol at FPR 1e-04, bisection: hardest group by TPR mean: G2 (0.7000, "
        "0.2000 below G1); highest FPR mean: G2 (3.000e-04, 2.000e-04 above G1)."
    )
    one_pair = dict(PAIR, group_names=["G1"], groups={"G1": {"accuracy": 0.9}})
    one_entry = dict(ENTRY, groups={"G1": ENTRY["groups"]["G1"]})
    assert summarise([_file(one_pair, "m")], [(instance, one_entry)], {}) == (
        "m, pair protocol: one group only, no gap between groups. "
        "m, instance protocol at FPR 1e-04, bisection: fewer than two groups, no gap between "
        "groups."
    )


SEARCH = {
    "target_fpir": 1e-2,
    "groups": {"G1": {"fnir": 0.05, "fpir": 0.012}, "G2": {"fnir": 0.25, "fpir": 0.008},
               "G3": {"fnir": 0.1, "fpir": None}},
}
IDENTIFICATION = {"protocol": "identification", "group_names": ["G1", "G2", "G3"], "rank": 5,
                  "results": [SEARCH]}


def test_identification_names_the_groups_with_the_highest_rates():
    searches = _file(IDENTIFICATION, "m")
    text = summarise([_file(PAIR, "m")], [], {}, [(searches, SEARCH)])
    assert text == (
        "m, pair protocol: hardest group by accuracy: G2 (87.00%, 8.00 points below G1). "
        "m, 1:N identification at FPIR 1e-02: highest FNIR (rank 5): G2 (0.2500, 0.2000 above "
        "G1); highest FPIR: G1 (0.0120, 0.0040 above G2)."
    )
    one = dict(SEARCH, groups={"G1": SEARCH["groups"]["G1"]})
    assert summarise([], [], {}, [(searches, one)]) == (
        "m, 1:N identification at FPIR 1e-02: fewer than two groups, no gap between groups.")
