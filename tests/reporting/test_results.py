import numpy as np
import pytest
from numpy.testing import assert_array_equal

from mfftools.errors import MfftoolsError
from mfftools.reporting.results import (
    det_curves,
    equal_error_rates,
    fmr_matrix,
    folds_label,
    images_of,
    ladder_of,
    load_result,
    load_results,
    per_identity,
    roc_curves,
    skipped_counts,
)

from result_builders import identification_result, instance_result, pair_result, write_json


def test_model_name_from_field_else_stem_and_duplicates_disambiguated(tmp_path, rng):
    named = write_json(tmp_path / "one.json", instance_result(rng, "r34-mixfair", extras=False))
    unnamed = write_json(tmp_path / "two.json", instance_result(rng, extras=False))
    pair = write_json(tmp_path / "three.json", pair_result(rng, "r34-mixfair", extras=False))
    again = write_json(tmp_path / "four.json", instance_result(rng, "r34-mixfair", extras=False))
    files = load_results([named, unnamed, pair, again])
    assert [f.model for f in files] == [
        "r34-mixfair (one)", "two", "r34-mixfair", "r34-mixfair (four)"
    ]
    assert [f.protocol for f in files] == ["instance", "instance", "pair", "instance"]



def test_names_given_explicitly_win_and_match_files_however_spelled(tmp_path, rng, monkeypatch):
    monkeypatch.chdir(tmp_path)
    inst = write_json(tmp_path / "x_inst.json", instance_result(rng, "from-field", extras=False))
    pair = write_json(tmp_path / "x_pair.json", pair_result(rng, extras=False))
    other = write_json(tmp_path / "y_pair.json", pair_result(rng, "y", extras=False))
    files = load_results([inst, pair, other], names=[("x", ["x_inst.json", f"./{pair.name}"])])
    assert [f.model for f in files] == ["x", "x", "y"]
    with pytest.raises(MfftoolsError, match="z.json is not one of the result files given"):
        load_results([inst, pair], names=[("x", ["z.json"])])
    with pytest.raises(MfftoolsError, match=r"x_pair.json is named twice \(x and w\)"):
        load_results([inst, pair], names=[("x", [pair]), ("w", [pair])])

@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.pop("protocol"), "key 'protocol' must be"),
        (lambda d: d["results"][0]["instance"].pop("tpr_std"), "'results[0].instance.tpr_std' is missing"),
        (lambda d: d["results"][0]["groups"].pop("Asian"), "'results[0].groups.Asian' is missing"),
        (lambda d: d["results"][0].update(threshold="high"), "'results[0].threshold' must be a number"),
        (lambda d: d["results"][0].update(fpr=None), "'results[0].fpr' must be a number"),
        (lambda d: d["similarity"]["Indian"].pop("inter_std"), "'similarity.Indian.inter_std' is missing"),
        (lambda d: d["similarity"]["Asian"].update(intra_mean_multi="x"),
         "'similarity.Asian.intra_mean_multi' must be a number"),
        (lambda d: d.update(results=[]), "'results' must be a non-empty list"),
        (lambda d: d.update(group_names="African"), "'group_names' must be a non-empty list"),
        (lambda d: d["score_distributions"]["genuine"].pop("Asian"),
         "'score_distributions.genuine.Asian' is missing"),
        (lambda d: d["score_distributions"]["impostor"]["all"].update(n=None),
         "'score_distributions.impostor.all.n' must be a number"),
        (lambda d: d["score_distributions"]["impostor_matrix"]["mean"].pop(),
         "'score_distributions.impostor_matrix.mean' must be a 4 x 4 list of lists"),
        (lambda d: d["score_distributions"]["shift"]["impostor"].pop("Indian"),
         "'score_distributions.shift.impostor.Indian' is missing"),
    ],
)
def test_instance_validation_names_file_and_key(tmp_path, rng, edit, message):
    data = instance_result(rng)
    edit(data)
    path = write_json(tmp_path / "bad.json", data)
    with pytest.raises(MfftoolsError, match="bad.json") as error:
        load_result(path)
    assert message in str(error.value)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d["groups"]["Indian"].pop("fold_accuracies"), "'groups.Indian.fold_accuracies' is missing"),
        (lambda d: d.pop("mean_accuracy"), "'mean_accuracy' is missing"),
        (lambda d: d["groups"]["Asian"].update(accuracy=True), "'groups.Asian.accuracy' must be a number"),
    ],
)
def test_pair_validation_names_file_and_key(tmp_path, rng, edit, message):
    data = pair_result(rng, extras=False)
    edit(data)
    with pytest.raises(MfftoolsError, match=message):
        load_result(write_json(tmp_path / "bad.json", data))


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.pop("n_nonmated"), "'n_nonmated' is missing"),
        (lambda d: d.update(ranks=[1, 0]), "'ranks' must be a non-empty list of integers of at "
         "least 1, not [1, 0]"),
        (lambda d: d["results"][1].pop("threshold"), "'results[1].threshold' is missing"),
        (lambda d: d["results"][0].update(fnir=None), "'results[0].fnir' must be a number"),
        (lambda d: d["results"][0]["groups"]["Indian"].pop("n_mated"),
         "'results[0].groups.Indian.n_mated' is missing"),
        (lambda d: d["results"][0]["fairness"].pop("fpir_max_geomean"),
         "'results[0].fairness.fpir_max_geomean' is missing"),
        (lambda d: d["results"][0]["false_positive_matrix"][2].append(0),
         "'results[0].false_positive_matrix' must be a 4 x 4 list of lists"),
        (lambda d: d["results"][0]["false_positive_matrix"][0].__setitem__(0, -1),
         "'results[0].false_positive_matrix' must be a 4 x 4 list of lists"),
        (lambda d: d["cmc"].pop("Asian"), "'cmc.Asian' is missing"),
        (lambda d: d["cmc"]["all"].pop(), "'cmc.all' must be a list of 3 rates, one per rank"),
    ],
)
def test_identification_validation_names_file_and_key(tmp_path, rng, edit, message):
    data = identification_result(rng)
    edit(data)
    with pytest.raises(MfftoolsError, match="bad.json") as error:
        load_result(write_json(tmp_path / "bad.json", data))
    assert message in str(error.value)


def test_identification_results_are_named_like_the_others(tmp_path, rng):
    data = identification_result(rng, "r34")
    data["results"][0]["groups"]["Asian"]["fpir"] = None  # a group without non-mated searches
    data["cmc"]["Asian"] = [None] * 3  # ... or without mated ones
    data["results"][0]["fairness"]["fnir_max_geomean"] = None
    ident = write_json(tmp_path / "ident.json", data)
    inst = write_json(tmp_path / "inst.json", instance_result(rng, "r34", extras=False))
    again = write_json(tmp_path / "again.json", identification_result(rng, "r34"))
    files = load_results([ident, inst, again])
    assert [(f.protocol, f.model) for f in files] == [
        ("identification", "r34 (ident)"), ("instance", "r34"), ("identification", "r34 (again)")]
    bad = write_json(tmp_path / "other.json", dict(data, protocol="verification"))
    with pytest.raises(MfftoolsError, match="key 'protocol' must be one of 'instance', 'pair', "
                       "'identification', 'template', 'calibration', not 'verification'"):
        load_result(bad)


def test_det_curves_drop_undefined_points(tmp_path, rng):
    data = identification_result(rng)
    result = load_result(write_json(tmp_path / "ident.json", data))
    curves = det_curves(result)
    assert list(curves) == ["all"] + data["group_names"]
    assert_array_equal(curves["Asian"][0], data["det"]["Asian"]["fpir"][1:])
    assert_array_equal(curves["Asian"][1], data["det"]["Asian"]["fnir"][1:])
    assert_array_equal(curves["Indian"][1], data["det"]["Indian"]["fnir"])
    del data["det"]
    assert det_curves(load_result(write_json(tmp_path / "plain.json", data))) is None


def test_undefined_statistics_may_be_null(tmp_path, rng):
    data = pair_result(rng, extras=False)
    data["std"] = data["ser"] = None
    assert load_result(write_json(tmp_path / "pair.json", data)).data["ser"] is None
    data = instance_result(rng)
    data["results"][0]["fairness"]["fnmr_max_geomean"] = None
    distributions = data["score_distributions"]
    distributions["genuine"]["Asian"].update(mean=None, std=None, n=0)  # no genuine pair
    distributions["shift"]["genuine"]["Asian"] = None
    distributions["impostor_matrix"]["std"][0][1] = None
    assert load_result(write_json(tmp_path / "inst.json", data)).protocol == "instance"


def test_unreadable_files(tmp_path):
    with pytest.raises(MfftoolsError, match="no such result file"):
        load_result(tmp_path / "absent.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(MfftoolsError, match="broken.json: not a readable JSON"):
        load_result(tmp_path / "broken.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(MfftoolsError, match="JSON object"):
        load_result(tmp_path / "list.json")
    with pytest.raises(MfftoolsError, match="no result files"):
        load_results([])


def test_per_identity_columns_are_read_and_checked(tmp_path, rng):
    data = instance_result(rng, n_per_group=5)
    columns = data["results"][0]["per_identity"]
    result = load_result(write_json(tmp_path / "columns.json", data))
    from_columns = per_identity(result, result.data["results"][0])
    assert_array_equal(from_columns["group"], np.repeat(np.arange(4), 5))
    expected_tpr = [np.nan if t is None else t for t in columns["tpr"]]
    assert_array_equal(from_columns["tpr"], expected_tpr)
    assert np.isnan(from_columns["tpr"][0])  # identity 0 had no genuine pair
    assert_array_equal(from_columns["inter"], columns["inter"])

    entry = data["results"][0]
    for group, message in ((9, "out of range"), ("Martian", "must be group indices")):
        entry["per_identity"] = dict(columns, group=[group] + columns["group"][1:])
        result = load_result(write_json(tmp_path / "bad.json", data))
        with pytest.raises(MfftoolsError, match=message):
            per_identity(result, result.data["results"][0])
    entry["per_identity"] = {"group": [0, 1], "tpr": [0.5]}
    result = load_result(write_json(tmp_path / "short.json", data))
    with pytest.raises(MfftoolsError, match="column 'tpr' has 1 rows, 'group' has 2"):
        per_identity(result, result.data["results"][0])


def test_image_counts_of_the_identities_join_the_per_identity_columns(tmp_path, rng):
    data = instance_result(rng, n_per_group=5)
    result = load_result(write_json(tmp_path / "counts.json", data))
    columns = per_identity(result, result.data["results"][0])
    assert_array_equal(columns["n_images"], data["identities"]["n_images"])
    assert columns["n_images"][0] == 1 and columns["intra"][0] == 1.0
    data["identities"]["n_images"].pop()
    result = load_result(write_json(tmp_path / "short.json", data))
    message = "'identities.n_images' has 19 rows, 'per_identity' has 20"
    with pytest.raises(MfftoolsError, match=message):
        per_identity(result, result.data["results"][0])

def test_extras_absent_give_none(tmp_path, rng):
    result = load_result(write_json(tmp_path / "plain.json", instance_result(rng, extras=False)))
    entry = result.data["results"][0]
    assert per_identity(result, entry) is None
    assert roc_curves(result) is None
    assert fmr_matrix(result, entry) is None


def test_roc_formats(tmp_path, rng):
    pair = load_result(write_json(tmp_path / "pair.json", pair_result(rng)))
    curves = roc_curves(pair)
    assert list(curves) == pair.group_names
    assert_array_equal(curves["Asian"][0], pair.data["roc"]["Asian"]["far"])
    assert_array_equal(curves["Asian"][1], pair.data["roc"]["Asian"]["tar"])
    data = instance_result(rng)
    # undefined points (null) are dropped; a group without any defined point has no curve
    data["roc"] = {"Asian": {"threshold": [0.9, 0.5, 0.1], "fpr": [None, 0.01, 0.2],
                             "tpr": [0.3, 0.6, None]},
                   "Indian": {"fpr": [None], "tpr": [None]}}
    curves = roc_curves(load_result(write_json(tmp_path / "nulls.json", data)))
    assert list(curves) == ["Asian"]
    assert_array_equal(curves["Asian"][0], [0.01])
    assert_array_equal(curves["Asian"][1], [0.6])


def test_fmr_matrix_shape_checked(tmp_path, rng):
    data = instance_result(rng)
    result = load_result(write_json(tmp_path / "ok.json", data))
    entry = result.data["results"][0]
    assert fmr_matrix(result, entry).shape == (4, 4)
    entry["group_fmr_matrix"][1][2] = None  # no impostor pair between two groups
    assert np.isnan(fmr_matrix(result, entry)[1, 2])
    entry["group_fmr_matrix"] = [[1e-5, 2e-5]]
    with pytest.raises(MfftoolsError, match=r"shape \(1, 2\), expected \(4, 4\)"):
        fmr_matrix(result, entry)


def test_ladder_read_as_per_identity_rates_at_each_level(tmp_path, rng):
    data = instance_result(rng, n_per_group=5)
    entry = data["results"][0]
    # levels written out of order: the reader sorts them by FPR
    order = [2, 0, 1] + list(range(3, 9))
    for key in ("target_fpr", "threshold", "identity_tp", "identity_fp"):
        entry["ladder"][key] = [entry["ladder"][key][k] for k in order]
    result = load_result(write_json(tmp_path / "ladder.json", data))
    ladder = ladder_of(result, result.data["results"][0])
    assert ladder.target == entry["target_fpr"]
    assert list(ladder.levels) == sorted(entry["ladder"]["target_fpr"])
    genuine = np.array(data["identities"]["n_genuine_pairs"], dtype=float)
    impostor = np.array(data["identities"]["n_impostor_pairs"], dtype=float)
    middle = entry["ladder"]["identity_tp"][order.index(4)]
    with np.errstate(invalid="ignore", divide="ignore"):
        assert_array_equal(ladder.tpr[:, 4], np.where(genuine > 0, middle / genuine, np.nan))
    assert_array_equal(ladder.fpr[:, 4], np.array(entry["ladder"]["identity_fp"][order.index(4)])
                       / impostor)
    assert np.isnan(ladder.tpr[0]).all()  # identity 0 has one image: no genuine pair
    assert_array_equal(ladder.impostor_pairs, impostor)
    # the per-identity rates of the middle level are the entry's
    assert_array_equal(ladder.fpr[:, 4], per_identity(result, result.data["results"][0])["fpr"])


def test_a_ladder_is_optional_and_a_broken_one_named(tmp_path, rng):
    data = instance_result(rng, n_per_group=5)
    del data["identities"]["n_impostor_pairs"]  # an older file
    result = load_result(write_json(tmp_path / "old.json", data))
    assert ladder_of(result, result.data["results"][0]) is None
    data = instance_result(rng, n_per_group=5)
    data["results"][0]["ladder"]["identity_fp"][3].pop()
    result = load_result(write_json(tmp_path / "broken.json", data))
    with pytest.raises(MfftoolsError, match=r"broken.json: 'ladder.identity_fp' of the entry at "
                       r"FPR 1e-02, bisection has shape \(0,\), expected \(9, 20\)"):
        ladder_of(result, result.data["results"][0])
    assert ladder_of(result, {"target_fpr": 1e-2}) is None


def test_images_skipped_counts_eers_and_verification_det(tmp_path, rng):
    data = instance_result(rng, n_per_group=5)
    data.update(n_skipped_images=3, n_dropped_pairs=None)
    data["eer"]["Asian"] = None
    result = load_result(write_json(tmp_path / "inst.json", data))
    assert images_of(result) == data["images"]
    assert skipped_counts(result) == (3, None)
    assert equal_error_rates(result)["Asian"] is None
    assert equal_error_rates(result)["Indian"] == data["eer"]["Indian"]
    curves = det_curves(result)
    assert list(curves) == data["group_names"]
    assert_array_equal(curves["Indian"][0], data["det"]["Indian"]["fmr"])
    assert_array_equal(curves["Indian"][1], data["det"]["Indian"]["fnmr"])
    bare = load_result(write_json(tmp_path / "bare.json", instance_result(rng, extras=False)))
    assert images_of(bare) is None and equal_error_rates(bare) is None
    assert skipped_counts(bare) == (None, None) and det_curves(bare) is None


def test_folds_said_as_the_file_records_them(rng):
    data = pair_result(rng)
    assert folds_label(data) == "10-fold (contiguous folds)"
    data["fold_assignment"] = "file"
    data["groups"]["Asian"]["fold_accuracies"] = [0.9] * 5
    assert folds_label(data) == "5-10-fold (folds from the file)"
    del data["fold_assignment"]
    assert folds_label(data) == "5-10-fold"
