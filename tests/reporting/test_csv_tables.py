"""`--csv DIR`: the group tables and curve points of each protocol as CSV, read back equal to the
results dict, through the library and through each evaluation command."""
import csv
import json

import numpy as np
from click.testing import CliRunner

from embedding_files import write_images_file, write_pairs_file
from mfftools.cli import main
from mfftools.reporting.csv_tables import write_csv_tables
from result_builders import identification_result, instance_result, pair_result

NAMES = ["African", "Asian", "Caucasian", "Indian"]


def _read(path):
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _number(text):
    return None if text == "" else float(text)


def test_instance_tables_hold_the_results(tmp_path, rng):
    data = instance_result(rng, "m", targets=((1e-2, "bisection"), (1e-3, "exact")))
    data["results"][1]["groups"]["Asian"]["fmr_relative"] = None  # undefined: an empty cell
    paths = write_csv_tables(data, tmp_path / "csv")
    assert sorted(path.name for path in paths) == sorted(
        f"instance_{name}.csv" for name in ("groups", "overall", "similarity", "roc", "det",
                                            "eer"))
    groups = _read(tmp_path / "csv" / "instance_groups.csv")
    assert len(groups) == 2 * 4
    for row in groups:
        entry = next(e for e in data["results"] if e["method"] == row["method"])
        assert float(row["target_fpr"]) == entry["target_fpr"]
        for key in ("tpr_mean", "fpr_std", "fmr", "fmr_relative", "fmr_probe_group", "fnmr"):
            assert _number(row[key]) == entry["groups"][row["group"]][key], key
        assert row["reference_group"] == entry["reference_group"]
    overall = _read(tmp_path / "csv" / "instance_overall.csv")
    assert [float(row["threshold"]) for row in overall] == [
        entry["threshold"] for entry in data["results"]]
    assert float(overall[0]["instance_tpr_std"]) == data["results"][0]["instance"]["tpr_std"]
    assert float(overall[1]["garbe"]) == data["results"][1]["fairness"]["garbe"]
    det = _read(tmp_path / "csv" / "instance_det.csv")
    indian = [row for row in det if row["group"] == "Indian"]
    assert [float(row["fnmr"]) for row in indian] == data["det"]["Indian"]["fnmr"]
    roc = _read(tmp_path / "csv" / "instance_roc.csv")
    assert [float(row["fpr"]) for row in roc if row["group"] == "Asian"] == \
        data["roc"]["Asian"]["fpr"]
    assert {row["threshold"] for row in roc} == {""}  # the builder's ROC has no thresholds
    eer = {row["group"]: float(row["eer"]) for row in _read(tmp_path / "csv" / "instance_eer.csv")}
    assert eer == data["eer"]
    similarity = _read(tmp_path / "csv" / "instance_similarity.csv")
    assert float(similarity[3]["intra_mean_multi"]) == \
        data["similarity"]["Indian"]["intra_mean_multi"]


def test_pair_and_identification_tables(tmp_path, rng):
    pair = pair_result(rng, "m")
    names = {path.name for path in write_csv_tables(pair, tmp_path)}
    assert names == {"pair_groups.csv", "pair_overall.csv", "pair_roc.csv", "pair_det.csv",
                     "pair_eer.csv"}
    groups = _read(tmp_path / "pair_groups.csv")
    assert [float(row["accuracy"]) for row in groups] == [
        pair["groups"][name]["accuracy"] for name in NAMES]
    assert {row["n_folds"] for row in groups} == {"10"}
    assert float(_read(tmp_path / "pair_overall.csv")[0]["std"]) == pair["std"]
    roc = _read(tmp_path / "pair_roc.csv")
    assert [float(row["tar"]) for row in roc if row["group"] == "Indian"] == \
        pair["roc"]["Indian"]["tar"]
    bare = pair_result(rng, "m", extras=False)
    assert {path.name for path in write_csv_tables(bare, tmp_path / "bare")} == {
        "pair_groups.csv", "pair_overall.csv"}

    searches = identification_result(rng, "m")
    write_csv_tables(searches, tmp_path)
    groups = _read(tmp_path / "identification_groups.csv")
    assert len(groups) == 2 * 4
    assert float(groups[5]["fnir"]) == searches["results"][1]["groups"]["Asian"]["fnir"]
    cmc = _read(tmp_path / "identification_cmc.csv")
    assert [float(row["identification_rate"]) for row in cmc if row["group"] == "all"] == \
        searches["cmc"]["all"]
    det = _read(tmp_path / "identification_det.csv")
    assert det[20]["group"] == "African" and det[20]["fnir"] == str(
        searches["det"]["African"]["fnir"][0])
    assert [row["fnir"] for row in det if row["group"] == "Asian"][0] == ""  # null


def test_every_evaluation_command_writes_its_tables(tmp_path, rng):
    n_ids = 40
    sizes = rng.integers(2, 5, size=n_ids)
    identity = np.repeat(np.arange(n_ids), sizes)
    group = np.repeat(np.arange(n_ids) % 4, sizes)
    rows = (np.repeat(rng.standard_normal((n_ids, 16)), sizes, axis=0)
            + 0.8 * rng.standard_normal((len(identity), 16))).astype(np.float32)
    images = write_images_file(tmp_path / "emb.h5", rows, identity, group, NAMES, model="toy")
    issame = np.tile([True, False], 80)
    first = rng.normal(size=(160, 16))
    second = np.where(issame[:, None], first + 0.7 * rng.normal(size=first.shape),
                      rng.normal(size=first.shape))
    pair_rows = np.empty((320, 16), np.float32)
    pair_rows[0::2], pair_rows[1::2] = first, second
    pairs = write_pairs_file(tmp_path / "pairs.h5", pair_rows, issame,
                             np.repeat(np.arange(4), 40), NAMES)
    out = tmp_path / "tables"
    for command, source, extra in (("inst-eval", images, ["--fpr", "1e-2", "--device", "cpu"]),
                                   ("ident-eval", images, ["--fpir", "0.1", "--device", "cpu"]),
                                   ("pair-eval", pairs, [])):
        json_path = tmp_path / f"{command}.json"
        result = CliRunner().invoke(main, [command, str(source), *extra, "--csv", str(out),
                                           "--json", str(json_path)])
        assert result.exit_code == 0, result.output
        protocol = json.loads(json_path.read_text())["protocol"]
        groups = _read(out / f"{protocol}_groups.csv")
        assert f"table written to {out / f'{protocol}_groups.csv'}" in result.output
        assert {row["group"] for row in groups} == set(NAMES)
    written = json.loads((tmp_path / "inst-eval.json").read_text())
    rows = _read(out / "instance_groups.csv")
    assert [_number(row["fnmr"]) for row in rows] == [
        written["results"][0]["groups"][name]["fnmr"] for name in NAMES]
    assert (out / "instance_roc.csv").is_file() and (out / "pair_roc.csv").is_file()
    assert (out / "identification_cmc.csv").is_file()
