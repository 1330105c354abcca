"""The report's calibration section, from a real cross-validation's results file."""
import json

import numpy as np
import pytest

from mfftools.calibration.methods import Settings
from mfftools.calibration.pipeline import cross_validate
from mfftools.data.synthetic_embeddings import biased_pairs, write_biased_pairs
from mfftools.embeddings import open_embeddings
from mfftools.errors import MfftoolsError
from mfftools.files import write_results
from mfftools.pair_data import read_pair_set
from mfftools.reporting.build import write_report
from mfftools.reporting.results import group_gap, load_result
from mfftools.reporting.tables import fmt_rate

GROUPS = ["A", "B", "C"]


@pytest.fixture(scope="module")
def calibration_json(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report_calibration")
    pairs = biased_pairs(group_names=GROUPS, identities_per_group=10, images_per_identity=3,
                         pairs_per_group=300, dim=8, seed=4)
    path = write_biased_pairs(folder / "b.h5", pairs)
    result = cross_validate(read_pair_set(open_embeddings(path)), ["baseline", "faircal", "gst"],
                            Settings(clusters=4))
    result["model"] = "net"
    return write_results(result, folder / "calibration.json")


def test_every_method_is_shown_before_and_after(tmp_path, calibration_json):
    data = json.loads(calibration_json.read_text())
    report = write_report([calibration_json], tmp_path / "report", bootstrap=0)
    titles = [section.title for section in report.report.sections]
    assert titles == ["Calibration and fairness mitigation: net (mean over 5 test folds)"]
    methods_table, groups_table = report.report.sections[0].items
    assert [label for label, _ in methods_table.rows] == ["baseline", "faircal", "gst"]
    for label, cells in methods_table.rows:
        entry = data["methods"][label]
        assert cells[0] == f"{entry['auroc']:.4f}"
        aad = entry["fpr_spread"]["0.001"]["aad"]
        assert cells[2] == ("0" if aad == 0 else f"{aad:.4f}" if aad >= 1e-3 else f"{aad:.3e}")
        fallbacks = entry["fallbacks"]
        assert cells[-1] == f"{fallbacks['fitted']} / {fallbacks['test_pairs']}"
    assert [label for label, _ in groups_table.rows] == GROUPS
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "each group's FPR at the global threshold of FPR 0.001" in markdown


def test_a_calibration_file_missing_a_key_is_refused(tmp_path, calibration_json):
    data = json.loads(calibration_json.read_text())
    del data["methods"]["gst"]["groups"]["B"]["ece"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(MfftoolsError, match="key 'methods.gst.groups.B.ece' is missing"):
        load_result(bad)


def test_the_paired_test_keeps_its_error_rate_and_finds_real_changes():
    from mfftools.reporting.calibration import paired_test

    rng = np.random.default_rng(5)
    groups = np.repeat(np.arange(4), 25)
    false_claims = {"std": 0, "gap": 0}
    n_sets = 200
    for _ in range(n_sets):  # calibration changes nothing: both sides draw the same way
        truth = rng.uniform(0.2, 0.8, 100)
        before = truth + rng.normal(0, 0.1, 100)
        after = truth + rng.normal(0, 0.1, 100)
        for kind in false_claims:
            _, p_value = paired_test(before, after, groups, kind, n_resamples=199,
                                     seed=int(rng.integers(1 << 30)))
            false_claims[kind] += p_value < 0.05
    for kind, count in false_claims.items():
        # 5% expected; 200 sets put the binomial's 99.9% bound near 11.5%
        assert count / n_sets <= 0.115, kind
    truth = rng.uniform(0.2, 0.8, 100) + 0.1 * groups
    before = truth + rng.normal(0, 0.1, 100)
    after = truth.mean() + 0.3 * (before - truth.mean())  # a real shrink of every spread
    for kind in ("std", "gap"):
        change, p_value = paired_test(before, after, groups, kind, n_resamples=499)
        assert change < 0 and p_value < 0.01
    assert paired_test([0.5], [0.4], [0], "std") == (None, None)
    assert paired_test([0.5, np.nan, 0.2], [0.4, 0.1, 0.3], [0, 0, 0], "gap") == (None, None)


def test_instance_results_before_and_after_are_compared(tmp_path):
    from mfftools.calibration.pipeline import fit_calibration
    from mfftools.evaluation.instance import evaluate_instance

    pairs = biased_pairs(group_names=GROUPS, identities_per_group=30, images_per_identity=4,
                         pairs_per_group=600, dim=16, bias=0.3, seed=8)
    path = write_biased_pairs(tmp_path / "b.h5", pairs, model="net")
    calibration = fit_calibration(read_pair_set(open_embeddings(path)), "gst", Settings())
    files = []
    for label, applied in (("plain", None), ("gst", calibration)):
        result = evaluate_instance(open_embeddings(path), targets=(0.01,), methods=("exact",),
                                   device="cpu", progress=False, calibration=applied)
        result["model"] = "net" if applied is None else "net + gst"
        files.append(write_results(result, tmp_path / f"{label}.json"))
    from mfftools.reporting.calibration import calibration_sections
    from mfftools.reporting.results import load_results

    (section,) = calibration_sections([], load_results(files), n_resamples=50)
    assert section.title == "Instance protocol before and after calibration"
    (table,) = section.items
    labels = [label for label, _ in table.rows]
    assert labels == [f"net + gst, FPR 1e-02 (exact), {rate}" for rate in ("TPR", "TPR", "FPR",
                                                                            "FPR")]
    for _, cells in table.rows:
        assert cells[0] in ("std over identities", "highest - lowest group mean")
        assert cells[4] != "-" and 0 < float(cells[4]) <= 1


def _exact_threshold(negatives, target):
    return np.sort(negatives)[::-1][int(np.floor(target * len(negatives)))]


def test_the_search_test_keeps_its_error_rate_and_finds_real_changes():
    from mfftools.reporting.calibrated_searches import paired_outcome_test

    rng = np.random.default_rng(6)
    groups = np.repeat(np.arange(4), 150)
    mated_centre = np.array([0.0, 0.3, 0.6, 0.9])[groups]
    nonmated_centre = np.array([-2.0, -1.8, -1.6, -1.4])[groups]

    def run(mated, nonmated):  # each run at its own threshold for FPIR 0.1
        threshold = _exact_threshold(nonmated, 0.1)
        return mated <= threshold, nonmated > threshold

    false_claims = {"fnir": 0, "fpir": 0}
    n_sets = 200
    for _ in range(n_sets):  # calibration changes nothing: both runs draw the same way
        mated = mated_centre + rng.normal(0, 1, len(groups))
        nonmated = nonmated_centre + rng.normal(0, 1, len(groups))
        before = run(mated + rng.normal(0, 0.5, len(groups)),
                     nonmated + rng.normal(0, 0.5, len(groups)))
        after = run(mated + rng.normal(0, 0.5, len(groups)),
                    nonmated + rng.normal(0, 0.5, len(groups)))
        seed = int(rng.integers(1 << 30))
        for k, rate in enumerate(false_claims):
            _, p_value = paired_outcome_test(before[k], after[k], groups, 199, seed)
            false_claims[rate] += p_value < 0.05
    for rate, count in false_claims.items():
        # 5% expected; 200 sets put the binomial's 99.9% bound near 11.5%
        assert count / n_sets <= 0.115, rate
    groups = np.repeat(np.arange(4), 600)
    mated_centre = np.array([0.0, 0.3, 0.6, 0.9])[groups]
    nonmated_centre = np.array([-2.0, -1.8, -1.6, -1.4])[groups]
    mated = mated_centre + rng.normal(0, 1, len(groups))
    nonmated = nonmated_centre + rng.normal(0, 1, len(groups))
    before = run(mated, nonmated)
    after = run(mated - mated_centre + mated_centre.mean(),  # a real shrink of both gaps
                nonmated - nonmated_centre + nonmated_centre.mean())
    for k in range(2):
        change, p_value = paired_outcome_test(before[k], after[k], groups, 499)
        assert change < 0 and p_value < 0.01
    assert paired_outcome_test([True, False], [False, False], [0, 0]) == (None, None)
    same = rng.random(len(groups)) < 0.3
    assert paired_outcome_test(same, same, groups, 99) == (0.0, 1.0)


def test_the_search_test_draws_what_swapping_searches_gives():
    """Few discordant searches: every swap pattern enumerated gives the exact p, which the
    test's resamples (one binomial draw per group) estimate."""
    from itertools import product

    from mfftools.reporting.calibrated_searches import paired_outcome_test

    groups = np.repeat(np.arange(3), 8)
    before = np.zeros(24, dtype=bool)
    after = np.zeros(24, dtype=bool)
    before[[0, 1, 2, 9]] = True  # 2 and 9 stay missed: concordant
    after[[2, 9, 17, 18, 19, 20]] = True
    discordant = np.flatnonzero(before != after)

    def gap_change(first, second):
        rates = [np.array([values[groups == g].mean() for g in range(3)])
                 for values in (first, second)]
        return np.ptp(rates[1]) - np.ptp(rates[0])

    observed = gap_change(before, after)
    reached = 0
    for swap in product((False, True), repeat=len(discordant)):
        first, second = before.copy(), after.copy()
        chosen = discordant[np.array(swap)]
        first[chosen], second[chosen] = after[chosen], before[chosen]
        reached += abs(gap_change(first, second)) >= abs(observed) - 1e-12
    exact = reached / 2 ** len(discordant)
    change, p_value = paired_outcome_test(before, after, groups, 20000, seed=3)
    assert change == pytest.approx(observed)
    assert p_value == pytest.approx(exact, abs=0.01)


def test_identification_results_before_and_after_are_compared(tmp_path):
    from mfftools.calibration.pipeline import fit_calibration
    from mfftools.evaluation.identification import evaluate_identification
    from mfftools.reporting.calibration import calibration_sections
    from mfftools.reporting.results import load_results

    pairs = biased_pairs(group_names=GROUPS, identities_per_group=30, images_per_identity=4,
                         pairs_per_group=600, dim=16, bias=0.3, seed=8)
    path = write_biased_pairs(tmp_path / "b.h5", pairs, model="net")
    calibration = fit_calibration(read_pair_set(open_embeddings(path)), "gst", Settings())
    files, data = [], []
    for label, applied in (("plain", None), ("gst", calibration)):
        result = evaluate_identification(open_embeddings(path), targets=(0.05, 0.1),
                                         device="cpu", progress=False, calibration=applied)
        result["model"] = "net" if applied is None else "net + gst"
        data.append(result)
        files.append(write_results(result, tmp_path / f"{label}.json"))
    results = load_results(files)
    (section,) = calibration_sections([], identification_results=results, n_resamples=99)
    assert section.title == "1:N protocol before and after calibration"
    *groups_tables, tests = section.items
    assert [table.title for table in groups_tables] == [
        f"net + gst: 1:N per group at target FPIR {t}, before and after calibration"
        for t in ("5e-02", "1e-01")]
    for table, before, after in zip(groups_tables, data[0]["results"], data[1]["results"]):
        rows = dict(table.rows)
        assert list(rows) == ["all"] + GROUPS + ["gap", "max/geomean"]
        for name in GROUPS:
            assert rows[name] == [fmt_rate(entry["groups"][name][rate])
                                  for rate in ("fnir", "fpir") for entry in (before, after)]
    labels = [label for label, _ in tests.rows]
    assert labels == [f"net + gst, FPIR {t}, {rate}" for t in ("5e-02", "1e-01")
                      for rate in ("FNIR", "FPIR")]
    for (label, cells), (before, after, rate) in zip(tests.rows, [
            (b, a, rate) for b, a in zip(data[0]["results"], data[1]["results"])
            for rate in ("fnir", "fpir")]):
        gaps = [group_gap(entry, rate) for entry in (before, after)]
        assert cells[1:3] == [fmt_rate(gap) for gap in gaps]
        assert float(cells[3]) == pytest.approx(gaps[1] - gaps[0], abs=1e-4)
        assert 0 < float(cells[4]) <= 1
    # without each search's outcome (an older file) the rates are compared, untested
    del data[0]["searches"]
    files[0] = write_results(data[0], tmp_path / "old.json")
    (section,) = calibration_sections([], identification_results=load_results(files),
                                      n_resamples=99)
    assert all(cells[4] == "-" for _, cells in section.items[-1].rows)
    # a malformed record of the outcomes is an error naming the file and the key
    data[1]["results"][0]["missed"] = [data[1]["n_mated"]]
    files[1] = write_results(data[1], tmp_path / "bad.json")
    with pytest.raises(MfftoolsError, match="bad.json: 'missed' of target FPIR 0.05 must list "
                                            "search indices below"):
        calibration_sections([], identification_results=load_results(files), n_resamples=9)
