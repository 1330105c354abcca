"""The report's opening paragraph, against numbers written by hand: extremes with ties named as
ties, and the significance statements taken word for word from their claims."""
import copy

from mfftools.reporting.claims import GROUP_VERSUS_REST, GROUPS_DIFFER, MODELS, Claim
from mfftools.reporting.results import ResultFile
from mfftools.reporting.summary import hardest_pair_group, name_ties, summarise

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


def _claim(model, statement, family, significant=True):
    return Claim(model=model, protocol="instance", measure="tpr_mean at FPR 1e-04, bisection",
                 groups=["G2"], statement=statement, test="t", statistic=0.2, p_value=0.01,
                 alpha=0.05, significant=significant, family=family)


def test_extremes_and_gaps_then_the_claims_word_for_word():
    instance = _file(INSTANCE, "m")
    claims = [
        _claim("m", "m: the groups differ (p = 0.01).", GROUPS_DIFFER),
        _claim("m", "m: G2 is lower than the rest (p = 0.02).", GROUP_VERSUS_REST),
        _claim("m", "m: G1 is not named.", GROUP_VERSUS_REST, significant=False),
        _claim("m vs n", "n's TPR std is lower than m's (p = 0.03).", MODELS),
    ]
    text = summarise([_file(PAIR, "m"), _file(PAIR, "n")], [(instance, ENTRY)], claims)
    assert text == (
        "m, pair protocol: hardest group: G2 (pair accuracy 87.00%, 8.00 points below G1). "
        "m, instance protocol at FPR 1e-04, bisection: lowest TPR mean: G2 (TPR 0.7000, 0.2000 "
        "below G1); highest FPR mean: G2 (FPR 3.000e-04, 2.000e-04 above G1). "
        "m: the groups differ (p = 0.01). m: G2 is lower than the rest (p = 0.02). "
        "n, pair protocol: hardest group: G2 (pair accuracy 87.00%, 8.00 points below G1). "
        "n's TPR std is lower than m's (p = 0.03). "
        "Each significance statement is a permutation test over identities, Holm-adjusted within "
        "its family, so that when nothing differs it fires with probability at most α = 0.05; "
        "every statement made is in claims.json."
    )
    assert "sampling noise" not in text


def test_without_claims_or_a_second_group():
    instance = _file(INSTANCE, "m")
    assert summarise([], [(instance, ENTRY)]) == (
        "m, instance protocol at FPR 1e-04, bisection: lowest TPR mean: G2 (TPR 0.7000, 0.2000 "
        "below G1); highest FPR mean: G2 (FPR 3.000e-04, 2.000e-04 above G1)."
    )
    one_pair = dict(PAIR, group_names=["G1"], groups={"G1": {"accuracy": 0.9}})
    one_entry = dict(ENTRY, groups={"G1": ENTRY["groups"]["G1"]})
    assert summarise([_file(one_pair, "m")], [(instance, one_entry)]) == (
        "m, pair protocol: one group only, no gap between groups. "
        "m, instance protocol at FPR 1e-04, bisection: fewer than two groups, no gap between "
        "groups."
    )


def test_ties_are_named_as_ties():
    assert name_ties(["A"]) == "A"
    assert name_ties(["A", "B"]) == "A and B"
    assert name_ties(["A", "B", "C"]) == "A, B and C"
    assert name_ties(["A", "B", "C", "D", "E", "F", "G"]) == "A, B and 5 more"
    groups = {"African-Male": {"accuracy": 0.8}, "Asian-Female": {"accuracy": 0.8},
              "Indian-Male": {"accuracy": 0.9}, "Asian-Male": {"accuracy": 0.9}}
    assert hardest_pair_group(groups) == ("African-Male and Asian-Female (tied, pair accuracy "
                                          "80.00%, 10.00 points below Indian-Male and Asian-Male)")
    assert hardest_pair_group({"A": {"accuracy": 0.8}, "B": {"accuracy": 0.8}}) == \
        "all 2 groups at 80.00% (pair accuracy, no gap)"
    assert hardest_pair_group({"A": {"accuracy": 0.8}}) is None
    names = [f"{e}-{g}" for e in ("African", "Asian", "Caucasian", "Indian")
             for g in ("Male", "Female")]
    entry = {"target_fpir": 1e-2,
             "groups": {name: {"fnir": 0.0 if k < 7 else 0.1, "fpir": 0.01}
                        for k, name in enumerate(names)}}
    searches = _file({"protocol": "identification", "group_names": names, "rank": 1,
                      "results": [entry]}, "m")
    assert summarise([], [], [], [(searches, entry)]) == (
        "m, 1:N identification at FPIR 1e-02: highest FNIR (rank 1): Indian-Female (FNIR 0.1000, "
        "0.1000 above African-Male, African-Female and 5 more); highest FPIR: all 8 groups at "
        "0.0100 (FPIR, no gap).")


def test_verification_sets_are_not_groups_to_compare():
    sets = {"protocol": "pair", "group_names": ["lfw", "cfp_fp"], "verification_sets":
            ["lfw", "cfp_fp"], "groups": {"lfw": {"accuracy": 0.99}, "cfp_fp": {"accuracy": 0.9}}}
    assert summarise([_file(sets, "m")], []) == (
        "m, pair protocol: verification sets lfw, cfp_fp, unrelated benchmarks, not groups to "
        "compare.")
    mixed = copy.deepcopy(PAIR)
    mixed["groups"]["lfw"] = {"accuracy": 0.5}
    mixed["verification_sets"] = ["lfw"]
    assert summarise([_file(mixed, "m")], []).startswith(
        "m, pair protocol: hardest group: G2 (pair accuracy 87.00%")


SEARCH = {
    "target_fpir": 1e-2,
    "groups": {"G1": {"fnir": 0.05, "fpir": 0.012}, "G2": {"fnir": 0.25, "fpir": 0.008},
               "G3": {"fnir": 0.1, "fpir": None}},
}
IDENTIFICATION = {"protocol": "identification", "group_names": ["G1", "G2", "G3"], "rank": 5,
                  "results": [SEARCH]}


def test_identification_names_the_groups_with_the_highest_rates():
    searches = _file(IDENTIFICATION, "m")
    text = summarise([_file(PAIR, "m")], [], [], [(searches, SEARCH)])
    assert text == (
        "m, pair protocol: hardest group: G2 (pair accuracy 87.00%, 8.00 points below G1). "
        "m, 1:N identification at FPIR 1e-02: highest FNIR (rank 5): G2 (FNIR 0.2500, 0.2000 "
        "above G1); highest FPIR: G1 (FPIR 0.0120, 0.0040 above G2)."
    )
    one = dict(SEARCH, groups={"G1": SEARCH["groups"]["G1"]})
    assert summarise([], [], [], [(searches, one)]) == (
        "m, 1:N identification at FPIR 1e-02: fewer than two groups, no gap between groups.")
