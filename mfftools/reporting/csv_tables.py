"""The group tables and the ROC, DET and CMC points of one results dict as CSV files, for people
who plot in their own tools (`--csv DIR` of inst-eval, pair-eval and ident-eval).

Files are named by protocol (`instance_groups.csv`, `pair_roc.csv`, ...), so the three commands
can share a folder. Each file is written whole or not at all; a table whose data the result lacks
(ROC, DET or EER points) is not written. Numbers are written exactly (Python's shortest repr);
an undefined value (null in the JSON) is an empty cell.
"""
import csv
import io
from pathlib import Path

from mfftools.files import write_text

INSTANCE_GROUP_KEYS = ("tpr_mean", "tpr_std", "fpr_mean", "fpr_std", "fmr", "fmr_relative",
                       "fmr_probe_group", "fnmr")
INSTANCE_OVERALL_KEYS = ("threshold", "converged", "tpr", "fpr")
INSTANCE_STATS = ("tpr_mean", "tpr_std", "fpr_mean", "fpr_std")
SIMILARITY_KEYS = ("intra_mean", "intra_std", "intra_mean_multi", "intra_std_multi",
                   "inter_mean", "inter_std")
# The points of each protocol's curves: (key in the results, file suffix, columns).
CURVES = {
    "instance": (("roc", "roc", ("threshold", "fpr", "tpr")),
                 ("det", "det", ("threshold", "fmr", "fnmr"))),
    "pair": (("roc", "roc", ("threshold", "far", "tar")),
             ("det", "det", ("threshold", "fmr", "fnmr"))),
    "identification": (("det", "det", ("threshold", "fpir", "fnir")),),
}


def write_csv_tables(result, out_dir):
    """Write the CSV files of `result` (any protocol's results dict) into `out_dir`; returns
    their paths."""
    out_dir = Path(out_dir)
    protocol = result["protocol"]
    tables = {"instance": _instance_tables, "pair": _pair_tables,
              "identification": _identification_tables}[protocol](result)
    for key, suffix, columns in CURVES[protocol]:
        curves = result.get(key)
        if isinstance(curves, dict):
            tables[suffix] = _curve_rows(curves, columns)
    if isinstance(result.get("eer"), dict):
        tables["eer"] = [("group", "eer")] + [(name, result["eer"].get(name))
                                              for name in result["group_names"]]
    return [write_text(out_dir / f"{protocol}_{name}.csv", _csv(rows))
            for name, rows in tables.items()]


def _instance_tables(result):
    groups = [("target_fpr", "method", "group") + INSTANCE_GROUP_KEYS + ("reference_group",)]
    fairness_keys = tuple(result["results"][0]["fairness"])
    overall = [("target_fpr", "method") + INSTANCE_OVERALL_KEYS
               + tuple(f"instance_{key}" for key in INSTANCE_STATS) + fairness_keys]
    for entry in result["results"]:
        point = (entry["target_fpr"], entry["method"])
        for name in result["group_names"]:
            group = entry["groups"].get(name, {})
            groups.append(point + (name,) + tuple(group.get(key) for key in INSTANCE_GROUP_KEYS)
                          + (entry.get("reference_group"),))
        overall.append(point + tuple(entry.get(key) for key in INSTANCE_OVERALL_KEYS)
                       + tuple(entry["instance"].get(key) for key in INSTANCE_STATS)
                       + tuple(entry["fairness"].get(key) for key in fairness_keys))
    similarity = [("group",) + SIMILARITY_KEYS] + [
        (name,) + tuple(result["similarity"][name].get(key) for key in SIMILARITY_KEYS)
        for name in result["group_names"]]
    return {"groups": groups, "overall": overall, "similarity": similarity}


def _pair_tables(result):
    keys = ("accuracy", "accuracy_std", "tar_at_far_1e-3", "far_at_tar_threshold",
            "tar_at_far_resolvable")
    groups = [("group",) + keys + ("n_folds",)]
    for name in result["group_names"]:
        group = result["groups"][name]
        groups.append((name,) + tuple(group.get(key) for key in keys)
                      + (len(group["fold_accuracies"]),))
    overall = [("mean_accuracy", "std", "ser", "fold_assignment"),
               tuple(result.get(key) for key in ("mean_accuracy", "std", "ser",
                                                 "fold_assignment"))]
    return {"groups": groups, "overall": overall}


def _identification_tables(result):
    groups = [("target_fpir", "threshold", "group", "fnir", "fpir", "n_mated", "n_nonmated")]
    overall = [("target_fpir", "threshold", "rank", "fnir", "fpir", "fnir_max_geomean",
                "fpir_max_geomean")]
    for entry in result["results"]:
        point = (entry["target_fpir"], entry["threshold"])
        for name in result["group_names"]:
            group = entry["groups"][name]
            groups.append(point + (name,) + tuple(group.get(key) for key in
                                                  ("fnir", "fpir", "n_mated", "n_nonmated")))
        overall.append(point + (result["rank"], entry["fnir"], entry["fpir"],
                                entry["fairness"]["fnir_max_geomean"],
                                entry["fairness"]["fpir_max_geomean"]))
    cmc = [("group", "rank", "identification_rate")] + [
        (name, rank, rate) for name in ["all"] + result["group_names"]
        for rank, rate in zip(result["ranks"], result["cmc"][name])]
    return {"groups": groups, "overall": overall, "cmc": cmc}


def _curve_rows(curves, columns):
    """One row per point of every group's curve: group, then `columns` ("threshold" left empty
    where the file gives none)."""
    rows = [("group",) + columns]
    for name, points in curves.items():
        if not isinstance(points, dict):
            continue
        length = max((len(points[key]) for key in columns if key in points), default=0)
        for k in range(length):
            rows.append((name,) + tuple(points[key][k] if key in points else None
                                        for key in columns))
    return rows


def _csv(rows):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in rows:
        writer.writerow("" if value is None else value for value in row)
    return buffer.getvalue()
