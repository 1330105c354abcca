"""Table contents against numbers written by hand."""
import copy

import pytest

from mfftools.reporting.bootstrap import CONDITIONAL_FIXED, CONDITIONAL_RECHOSEN, Interval
from mfftools.reporting.results import ResultFile
from mfftools.reporting.tables import (
    Table,
    cmc_table,
    entries_at,
    error_rate_table,
    fairness_table,
    fmt_rate,
    group_table,
    identification_table,
    instance_table,
    operating_points,
    pair_heading,
    pair_table,
    similarity_table,
)

PAIR = {
    "protocol": "pair",
    "group_names": ["G1", "G2"],
    "groups": {
        "G1": {"accuracy": 0.95432, "fold_accuracies": [0.95, 0.96], "tar_at_far_1e-3": 0.61234},
        "G2": {"accuracy": 0.87, "fold_accuracies": [0.86, 0.88], "tar_at_far_1e-3": None},
    },
    "mean_accuracy": 91.216,
    "std": 5.9411,
    "ser": 2.8437,
}

GROUP = {"tpr_mean": 0.9, "tpr_std": 0.05, "fpr_mean": 1.5e-5, "fpr_std": 2e-6,
         "fmr": 1.4e-5, "fnmr": 0.1}
ENTRY = {
    "target_fpr": 1e-5, "method": "bisection", "threshold": 0.4123456789, "tpr": 0.87654321,
    "fpr": 1.0001e-5, "converged": False,
    "instance": {"tpr_mean": 0.85, "tpr_std": 0.125, "fpr_mean": 1.1e-5, "fpr_std": 3.3e-6},
    "groups": {"G1": GROUP, "G2": dict(GROUP, tpr_mean=0.7, fnmr=0.3, fpr_mean=2.5e-5)},
    "fairness": {"fdr": 0.8999, "fpd": 0.12, "fnd": 0.34, "garbe": 0.23,
                 "fmr_max_geomean": 1.5, "fnmr_max_geomean": None},
}
INSTANCE = {
    "protocol": "instance", "n_images": 1000, "n_identities": 120, "dim": 512,
    "group_names": ["G1", "G2"], "results": [ENTRY],
    "similarity": {
        "G1": {"intra_mean": 0.71, "intra_std": 0.05, "inter_mean": 0.31, "inter_std": 0.04},
        "G2": {"intra_mean": 0.61, "intra_std": 0.07, "inter_mean": 0.41, "inter_std": None},
    },
}


def _file(data, model):
    return ResultFile(path=None, protocol=data["protocol"], model=model, data=copy.deepcopy(data))


def test_pair_table_prints_the_papers_numbers():
    other = copy.deepcopy(PAIR)
    other["groups"]["G1"]["accuracy"] = 0.5
    other["std"] = None
    table = pair_table([_file(PAIR, "m1"), _file(other, "m2")])
    assert table.blocks == ["m1", "m2"]
    rows = dict(table.rows)
    assert rows["G1"] == ["95.43", "0.50", "0.6123", "-", "50.00", "0.50", "0.6123", "-"]
    assert rows["G2"][:3] == ["87.00", "1.00", "-"]
    assert rows["Mean"] == ["91.22", "-", "-", "-", "91.22", "-", "-", "-"]
    assert rows["STD"] == ["5.94", "-", "-", "-", "-", "-", "-", "-"]
    assert rows["SER"][0] == "2.8437"
    assert "unresolved" not in table.note


def test_pair_table_marks_a_tar_its_pairs_cannot_resolve():
    """Small sets: the TAR of a threshold that could not be placed at FAR = 1e-3 is marked, and
    the FAR the thresholds give is shown beside every TAR."""
    small = copy.deepcopy(PAIR)
    small["groups"]["G1"].update(tar_at_far_resolvable=False, far_at_tar_threshold=0.0113,
                                 far_resolution=1 / 90)
    small["groups"]["G2"].update(tar_at_far_resolvable=True, far_at_tar_threshold=0.00098,
                                 far_resolution=1 / 2700)
    table = pair_table([_file(small, "m1")])
    rows = dict(table.rows)
    assert rows["G1"][2:] == ["unresolved*", "0.0113"]
    assert rows["G2"][3] == "9.800e-04"
    assert ("unresolved*: too few impostor pairs to choose a threshold at FAR = 1e-3 (FAR steps "
            "as coarse as 0.011)") in table.note


def test_pair_headings_and_notes_say_how_the_folds_were_made():
    contiguous = dict(PAIR, fold_assignment="contiguous")
    from_file = copy.deepcopy(PAIR)
    from_file.update(fold_assignment="file")
    for group in from_file["groups"].values():
        group["fold_accuracies"] = [0.9] * 5
    assert pair_heading([_file(contiguous, "a")]) == \
        "Pair protocol: verification per group, 2-fold (contiguous folds)"
    assert pair_heading([_file(from_file, "b")]) == \
        "Pair protocol: verification per group, 5-fold (folds from the file)"
    assert pair_heading([_file(contiguous, "a"), _file(from_file, "b")]) == (
        "Pair protocol: verification per group; a: 2-fold (contiguous folds); b: 5-fold (folds "
        "from the file)")
    assert pair_heading([_file(PAIR, "old")]) == "Pair protocol: verification per group, 2-fold"
    note = pair_table([_file(from_file, "b")]).note
    assert "fold accuracies, 5-fold (folds from the file);" in note
    assert "10-fold" not in pair_table([_file(from_file, "b")]).note


def test_pair_table_shows_eers_and_what_extraction_left_out():
    data = dict(PAIR, eer={"G1": 0.021, "G2": None}, n_skipped_images=1, n_dropped_pairs=3)
    table = pair_table([_file(data, "m1"), _file(PAIR, "m2")])
    assert table.columns[-1] == "EER"
    rows = dict(table.rows)
    assert rows["G1"][4] == "0.0210" and rows["G2"][4] == "-" and rows["G1"][9] == "-"
    assert rows["Images skipped at extraction"] == ["1", "-", "-", "-", "-",
                                                    "-", "-", "-", "-", "-"]
    assert rows["Pairs dropped at extraction"][0] == "3"
    assert "EER" not in pair_table([_file(PAIR, "m2")]).columns


def test_instance_table_with_and_without_intervals():
    table = instance_table([(_file(INSTANCE, "m1"), ENTRY)])
    rows = dict(table.rows)
    assert table.columns == ["Value"]
    assert rows["Threshold"] == ["0.412346"]
    assert rows["Converged"] == ["no"]
    assert rows["TPR"] == ["0.8765"]
    assert rows["FPR"] == ["1.000e-05"]
    assert rows["Instance TPR std"] == ["0.1250"]
    assert rows["Instance FPR std"] == ["3.300e-06"]
    assert rows["Group gap TPR mean (max - min)"] == ["0.2000"]
    assert rows["Group gap FPR mean (max - min)"] == ["1.000e-05"]
    assert "G2 TPR mean" not in rows  # the groups have their own table

    intervals = {"m1": {"overall": {"tpr_mean": Interval(0.8, 0.9)},
                        "groups": {"G2": {"tpr_mean": Interval(0.6, 0.75)}},
                        "gap": {"tpr_mean": Interval(0.15, 0.25)},
                        "conditional_on": CONDITIONAL_RECHOSEN, "n_clamped": 3}}
    second = _file(INSTANCE, "m2")
    table = instance_table([(_file(INSTANCE, "m1"), ENTRY), (second, ENTRY)], intervals)
    rows = dict(table.rows)
    assert table.columns == ["Value", "95% CI"]
    assert rows["Instance TPR mean"] == ["0.8500", "[0.8000, 0.9000]", "0.8500", "-"]
    assert rows["Group gap TPR mean (max - min)"][1] == "[0.1500, 0.2500]"
    assert rows["Images"] == ["1000", "-", "1000", "-"]
    assert "Single-image identities" not in rows
    assert f"m1: {CONDITIONAL_RECHOSEN}." in table.note
    assert "simultaneous over every pair of groups" in table.note
    assert "ladder (taken at its nearest end): m1 3." in table.note
    counted = _file(dict(INSTANCE, n_single_image_identities=7, n_skipped_images=2), "m3")
    rows = dict(instance_table([(counted, ENTRY), (second, ENTRY)]).rows)
    assert rows["Single-image identities"] == ["7", "-"]
    assert rows["Images skipped at extraction"] == ["2", "-"]
    assert "Pairs dropped at extraction" not in rows


def test_groups_in_a_grid_with_their_marks_and_p_values():
    intervals = {"m1": {"groups": {"G2": {"tpr_mean": Interval(0.6, 0.75)}},
                        "conditional_on": CONDITIONAL_FIXED}}
    significance = {"m1": {"differ": {"tpr_mean": 0.002, "fpr_mean": 0.4126},
                           "versus_rest": {("tpr_mean", 0): 0.5, ("tpr_mean", 1): 0.004,
                                           ("fpr_mean", 0): 0.4126, ("fpr_mean", 1): 0.4126},
                           "alpha": 0.05}}
    pairs = [(_file(INSTANCE, "m1"), ENTRY), (_file(INSTANCE, "m2"), ENTRY)]
    table = group_table(pairs, intervals, significance)
    assert table.columns == ["TPR mean", "TPR mean 95% CI", "TPR std", "FPR mean",
                             "FPR mean 95% CI", "FPR std", "p vs rest (TPR)", "p vs rest (FPR)"]
    rows = dict(table.rows)
    assert list(rows) == ["G1", "G2"]
    assert rows["G2"][:8] == ["0.7000\u2020", "[0.6000, 0.7500]", "0.0500", "2.500e-05", "-",
                              "2.000e-06", "0.004", "0.413"]
    assert rows["G2"][8:] == ["0.7000", "-", "0.0500", "2.500e-05", "-", "2.000e-06", "-", "-"]
    assert rows["G1"][0] == "0.9000"
    assert "\u2020: p <= 0.05" in table.note
    rows = dict(instance_table(pairs, intervals, significance).rows)
    assert rows["Groups differ (TPR mean), p"] == ["0.002", "-", "-", "-"]
    assert rows["Groups differ (FPR mean), p"] == ["0.413", "-", "-", "-"]
    plain = group_table(pairs)
    assert plain.columns == ["TPR mean", "TPR std", "FPR mean", "FPR std"]
    assert "\u2020" not in plain.note and "\u2020" not in str(plain.rows)


def test_fairness_error_rate_and_similarity_tables():
    rows = dict(fairness_table([(_file(INSTANCE, "m1"), ENTRY)]).rows)
    assert rows["FDR"] == ["0.8999"]
    assert rows["FNMR max/geomean"] == ["-"]
    assert rows["SER (FNMR)"] == ["3.0000"]
    data = copy.deepcopy(INSTANCE)
    data["eer"] = {"G1": 0.031, "G2": None}
    entry = copy.deepcopy(ENTRY)
    entry["groups"]["G2"].update(fmr_relative=2.5, fmr_probe_group=3e-5)
    entry["reference_group"] = "G1"
    table = error_rate_table([(_file(data, "m1"), entry), (_file(INSTANCE, "old"), ENTRY)])
    assert table.columns == ["FMR", "FMR relative", "FMR (probe in group)", "FNMR", "EER"]
    rows = dict(table.rows)
    assert rows["G2"] == ["1.400e-05", "2.5000", "3.000e-05", "0.3000", "-",
                          "1.400e-05", "-", "-", "0.3000", "-"]
    assert rows["G1"][4] == "0.0310"
    assert "reference: m1: G1, old: -" in table.note
    rows = dict(similarity_table([_file(INSTANCE, "m1")]).rows)
    assert rows["G2"] == ["0.6100", "0.0700", "0.4100", "-"]


def test_similarity_shows_intra_over_identities_with_two_images_or_says_why_not():
    multi = copy.deepcopy(INSTANCE)
    multi["similarity"]["G1"].update(intra_mean_multi=0.66, intra_std_multi=0.04)
    multi["similarity"]["G2"].update(intra_mean_multi=0.55, intra_std_multi=None)
    table = similarity_table([_file(multi, "m1"), _file(INSTANCE, "old")])
    rows = dict(table.rows)
    assert rows["G1"] == ["0.6600", "0.0400", "0.3100", "0.0400",
                          "0.7100", "0.0500", "0.3100", "0.0400"]
    assert rows["G2"][:2] == ["0.5500", "-"]
    assert "over identities with at least two images (an identity with one image scores 1 by " \
        "construction, which would inflate the mean)" in table.note
    assert table.note.endswith(" old: the result has no intra_mean_multi, so its intra columns "
                               "include one-image identities.")
    assert "m1:" not in similarity_table([_file(multi, "m1")]).note


@pytest.mark.parametrize("stored", [None, 1.0])  # null (the specification), 1.0 (older files)
def test_measures_across_groups_over_one_group_are_not_applicable(stored):
    entry = copy.deepcopy(ENTRY)
    del entry["groups"]["G2"]
    entry["fairness"] = dict.fromkeys(entry["fairness"], stored)
    one = _file(dict(INSTANCE, group_names=["G1"], results=[entry]), "one")
    rows = dict(fairness_table([(one, entry), (_file(INSTANCE, "two"), ENTRY)]).rows)
    for label in ("FDR", "FPD (Gini of FMR)", "FND (Gini of FNMR)", "GARBE", "FMR max/geomean",
                  "FNMR max/geomean", "SER (FNMR)"):
        assert rows[label][0] == "n/a"
    assert rows["FDR"][1] == "0.8999"
    rows = dict(error_rate_table([(one, entry), (_file(INSTANCE, "two"), ENTRY)]).rows)
    assert rows["G1"][3] == rows["G1"][8] == "0.1000"
    rows = dict(instance_table([(one, entry)]).rows)
    assert rows["Group gap TPR mean (max - min)"] == ["n/a"]
    pair = dict(PAIR, group_names=["G1"], groups={"G1": PAIR["groups"]["G1"]}, std=None, ser=stored)
    rows = dict(pair_table([_file(pair, "one")]).rows)
    assert rows["STD"] == ["n/a", "-", "-", "-"] and rows["SER"] == ["n/a", "-", "-", "-"]

SEARCH = {
    "target_fpir": 0.01, "threshold": 0.51234567, "fnir": 0.125, "fpir": 0.0095,
    "groups": {"G1": {"fnir": 0.05, "fpir": 0.01, "n_mated": 40, "n_nonmated": 100},
               "G2": {"fnir": 0.2, "fpir": 0.009, "n_mated": 40, "n_nonmated": 100}},
    "fairness": {"fnir_max_geomean": 2.0, "fpir_max_geomean": 1.0260},
    "false_positive_matrix": [[1, 0], [0, 1]],
}
IDENTIFICATION = {
    "protocol": "identification", "group_names": ["G1", "G2"], "n_templates": 60, "n_mated": 80,
    "n_nonmated": 200, "rank": 1, "ranks": [1, 5], "results": [SEARCH],
    "cmc": {"all": [0.875, 0.95], "G1": [0.95, 1.0], "G2": [0.8, 0.9]},
}


def test_identification_table_at_one_target():
    one = copy.deepcopy(SEARCH)
    one["groups"] = {"G1": dict(SEARCH["groups"]["G1"], fnir=0.0)}
    one["fairness"]["fnir_max_geomean"] = None
    single = _file(dict(IDENTIFICATION, group_names=["G1"], results=[one], rank=5), "one")
    table = identification_table([(_file(IDENTIFICATION, "m"), SEARCH), (single, one)])
    assert table.title == "1:N identification at FPIR 1e-02"
    rows = dict(table.rows)
    assert rows["Templates"] == ["60", "60"]
    assert rows["Non-mated searches"] == ["200", "200"]
    assert rows["Rank R of FNIR"] == ["1", "5"]
    assert rows["Threshold"] == ["0.512346", "0.512346"]
    assert rows["FNIR"] == ["0.1250", "0.1250"] and rows["FPIR"] == ["0.0095", "0.0095"]
    assert rows["G2 FNIR"] == ["0.2000", "-"]
    assert rows["G1 FNIR"] == ["0.0500", "0"]
    assert rows["G2 mated / non-mated searches"] == ["40 / 100", "-"]
    assert rows["FNIR max/geomean"] == ["2.0000", "n/a"]
    assert rows["FPIR max/geomean"] == ["1.0260", "n/a"]
    zero = copy.deepcopy(SEARCH)
    zero["groups"]["G1"]["fnir"] = 0.0  # the geometric mean is 0: no ratio
    zero["fairness"]["fnir_max_geomean"] = None
    assert dict(identification_table([(_file(IDENTIFICATION, "m"), zero)]).rows)[
        "FNIR max/geomean"] == ["-"]


def test_cmc_table_over_every_rank_any_result_reports():
    other = dict(IDENTIFICATION, ranks=[1, 10], cmc={"all": [0.5, 0.7], "G1": [0.6, 0.8],
                                                     "G2": [None, None]})
    table = cmc_table([_file(IDENTIFICATION, "a"), _file(other, "b")])
    assert table.columns == ["Rank 1", "Rank 5", "Rank 10"]
    rows = dict(table.rows)
    assert list(rows) == ["All", "G1", "G2"]
    assert rows["All"] == ["0.8750", "0.9500", "-", "0.5000", "-", "0.7000"]
    assert rows["G2"] == ["0.8000", "0.9000", "-", "-", "-", "-"]


def test_operating_points_in_order_of_appearance():
    exact = dict(ENTRY, method="exact", target_fpr=1e-4)
    first = _file(dict(INSTANCE, results=[ENTRY]), "m1")
    second = _file(dict(INSTANCE, results=[exact, ENTRY]), "m2")
    assert operating_points([first, second]) == [(1e-5, "bisection"), (1e-4, "exact")]
    assert [r.model for r, _ in entries_at([first, second], (1e-4, "exact"))] == ["m2"]
    searches = _file(dict(IDENTIFICATION, results=[dict(SEARCH, target_fpir=0.1), SEARCH]), "s")
    assert operating_points([searches, _file(IDENTIFICATION, "t")]) == [0.1, 0.01]


@pytest.mark.parametrize("value, text", [(0, "0"), (0.5, "0.5000"), (1e-3, "0.0010"),
                                         (9.99e-4, "9.990e-04"), (None, "-")])
def test_rate_format(value, text):
    assert fmt_rate(value) == text


def test_row_length_checked():
    table = Table("t", "r", ["a", "b"], ["x"])
    with pytest.raises(ValueError):
        table.add_row("row", ["1"])
