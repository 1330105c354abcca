"""Result JSONs (instance, pair, identification and template protocols, calibration) read back,
validated, and named by model.

The required keys are those of the results file specification; anything more (per-identity rows,
ROC points, the group x group FMR matrix, score distributions, DET points) is optional and read
leniently by `per_identity`, `roc_curves`, `fmr_matrix`, `score_distributions`, `det_curves`,
`equal_error_rates`, `images_of`, `skipped_counts` and `ladder_of`, which return None when an extra
is absent (older files lack most of them). Score distributions are checked on load when present.
"""
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mfftools.errors import MfftoolsError
from mfftools.reporting.bootstrap import Ladder

INSTANCE_STATS = ("tpr_mean", "tpr_std", "fpr_mean", "fpr_std")
GROUP_STATS = INSTANCE_STATS + ("fmr", "fnmr")
FAIRNESS_KEYS = ("fdr", "fpd", "fnd", "garbe", "fmr_max_geomean", "fnmr_max_geomean")
SIMILARITY_STATS = ("intra_mean", "intra_std", "inter_mean", "inter_std")
# Intra similarity over identities with at least two images (one image scores 1 by construction).
MULTI_INTRA_STATS = ("intra_mean_multi", "intra_std_multi")
PAIR_GROUP_KEYS = ("accuracy", "fold_accuracies", "tar_at_far_1e-3")
IDENT_RATES = ("fnir", "fpir")
IDENT_COUNTS = ("n_mated", "n_nonmated")
IDENT_FAIRNESS_KEYS = ("fnir_max_geomean", "fpir_max_geomean")
PROTOCOLS = ("instance", "pair", "identification", "template", "calibration")
DISTRIBUTION_STATS = ("mean", "std", "n")


@dataclass
class ResultFile:
    """One result JSON: its protocol (one of PROTOCOLS), the model it describes, its content."""

    path: Path
    protocol: str
    model: str
    data: dict

    @property
    def group_names(self):
        return list(self.data.get("group_names", ()))


def load_results(paths, names=()):
    """Read and validate result JSONs; give each a model name unique within its protocol.

    `paths` may hold ResultFile objects too (results already in memory, see `result_file`),
    taken as they are. `names` is a sequence of (model, [path, ...]) naming files explicitly
    (`report --name`); a file not named there takes the JSON's "model" field when it is a
    non-empty string, else its file stem. Two files of the same protocol with the same name get
    their file stems appended.
    """
    if not paths:
        raise MfftoolsError("no result files given")
    chosen = _chosen_names([path for path in paths if not isinstance(path, ResultFile)], names)
    files = [path if isinstance(path, ResultFile) else load_result(path, chosen.get(_key(path)))
             for path in paths]
    for protocol in PROTOCOLS:
        same = [f for f in files if f.protocol == protocol]
        names = [f.model for f in same]
        for f in same:
            if names.count(f.model) > 1:
                f.model = f"{f.model} ({f.path.stem})"
        names = [f.model for f in same]
        if len(set(names)) < len(names):
            raise MfftoolsError(
                f"two {protocol} result files have the same model name and file name: "
                + ", ".join(str(f.path) for f in same if names.count(f.model) > 1)
            )
    return files


def _key(path):
    return Path(path).resolve()


def _chosen_names(paths, names):
    """{resolved path: model} of the files `names` names, each one of `paths`, named once."""
    given = {_key(path) for path in paths}
    chosen = {}
    for model, files in names:
        for file in files:
            key = _key(file)
            if key not in given:
                raise MfftoolsError(
                    f"--name {model}: {file} is not one of the result files given; "
                    "add it to RESULTS or leave it out of --name"
                )
            if key in chosen:
                raise MfftoolsError(
                    f"--name: {file} is named twice ({chosen[key]} and {model}); "
                    "name each file once"
                )
            chosen[key] = model
    return chosen


def load_result(path, model=None):
    """Read one result JSON and check every key the specification requires. Its model is `model`
    when given, else the JSON's "model" field when it is a non-empty string, else the file stem."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MfftoolsError(f"{path}: no such result file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise MfftoolsError(f"{path}: not a readable JSON file ({error})") from None
    return result_file(data, path, model)


def result_file(data, path, model=None):
    """The ResultFile of a results dict, every key the specification requires checked (errors
    name `path`, the file or what stands for it). Its model is `model` when given, else the
    dict's "model" field when it is a non-empty string, else the stem of `path`."""
    path = Path(path)
    if not isinstance(data, dict):
        raise MfftoolsError(f"{path}: expected a JSON object at the top level")
    protocol = data.get("protocol")
    if protocol not in PROTOCOLS:
        raise MfftoolsError(
            f"{path}: key 'protocol' must be one of "
            f"{', '.join(repr(name) for name in PROTOCOLS)}, not {protocol!r}"
        )
    from mfftools.reporting.template import check_template

    check = {"instance": _check_instance, "pair": _check_pair,
             "identification": _check_identification, "template": check_template,
             "calibration": _check_calibration}[protocol]
    check(_Checker(path), data)
    if model is None:
        model = data.get("model")
    if not isinstance(model, str) or not model.strip():
        model = path.stem
    return ResultFile(path=path, protocol=protocol, model=model.strip(), data=data)


class _Checker:
    """Key and type checks that name the file and the key path on failure."""

    def __init__(self, path):
        self.path = path

    def fail(self, where, what):
        raise MfftoolsError(f"{self.path}: key '{where}' {what}")

    def get(self, mapping, key, where):
        if not isinstance(mapping, dict) or key not in mapping:
            self.fail(f"{where}{key}", "is missing")
        return mapping[key]

    def number(self, mapping, key, where, nullable=False):
        """A number; with `nullable`, null too (a statistic undefined for these data)."""
        value = self.get(mapping, key, where)
        if value is None and nullable:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            self.fail(f"{where}{key}", f"must be a number, not {value!r}")
        return value

    def mapping(self, mapping, key, where):
        value = self.get(mapping, key, where)
        if not isinstance(value, dict):
            self.fail(f"{where}{key}", "must be an object")
        return value

    def matrix(self, value, size, where, kind):
        """A size x size list of lists whose cells pass `kind` (a predicate)."""
        if (not isinstance(value, list) or len(value) != size
                or not all(isinstance(row, list) and len(row) == size and all(map(kind, row))
                           for row in value)):
            self.fail(where, f"must be a {size} x {size} list of lists (one row and one column "
                      "per group)")
        return value

    def group_names(self, data):
        names = self.get(data, "group_names", "")
        if (
            not isinstance(names, list)
            or not names
            or not all(isinstance(name, str) for name in names)
        ):
            self.fail("group_names", "must be a non-empty list of strings")
        return names


def _check_instance(check, data):
    names = check.group_names(data)
    for key in ("n_images", "n_identities", "dim"):
        check.number(data, key, "")
    entries = check.get(data, "results", "")
    if not isinstance(entries, list) or not entries:
        check.fail("results", "must be a non-empty list")
    for k, entry in enumerate(entries):
        where = f"results[{k}]."
        for key in ("target_fpr", "threshold", "fpr"):
            check.number(entry, key, where)
        check.number(entry, "tpr", where, nullable=True)  # null without genuine pairs
        check.get(entry, "method", where)
        instance = check.mapping(entry, "instance", where)
        for key in INSTANCE_STATS:
            check.number(instance, key, where + "instance.", nullable=True)
        groups = check.mapping(entry, "groups", where)
        for name in names:
            group = check.mapping(groups, name, where + "groups.")
            for key in GROUP_STATS:
                check.number(group, key, f"{where}groups.{name}.", nullable=True)
        fairness = check.mapping(entry, "fairness", where)
        for key in FAIRNESS_KEYS:
            check.number(fairness, key, where + "fairness.", nullable=True)
    similarity = check.mapping(data, "similarity", "")
    for name in names:
        group = check.mapping(similarity, name, "similarity.")
        for key in SIMILARITY_STATS:
            check.number(group, key, f"similarity.{name}.", nullable=True)
        for key in MULTI_INTRA_STATS:
            if key in group:
                check.number(group, key, f"similarity.{name}.", nullable=True)
    if "score_distributions" in data:
        _check_score_distributions(check, data["score_distributions"], names)


def _check_score_distributions(check, distributions, names):
    where = "score_distributions."
    if not isinstance(distributions, dict):
        check.fail("score_distributions", "must be an object")
    for kind in ("genuine", "impostor"):
        scores = check.mapping(distributions, kind, where)
        for name in ["all"] + names:
            stats = check.mapping(scores, name, f"{where}{kind}.")
            for key in DISTRIBUTION_STATS:
                check.number(stats, key, f"{where}{kind}.{name}.", nullable=key != "n")
    matrices = check.mapping(distributions, "impostor_matrix", where)
    for key in ("mean", "std"):
        check.matrix(check.get(matrices, key, f"{where}impostor_matrix."), len(names),
                     f"{where}impostor_matrix.{key}", _is_number_or_null)
    shift = check.mapping(distributions, "shift", where)
    for kind in ("genuine", "impostor"):
        shifts = check.mapping(shift, kind, f"{where}shift.")
        for name in names:
            check.number(shifts, name, f"{where}shift.{kind}.", nullable=True)


def _check_pair(check, data):
    names = check.group_names(data)
    groups = check.mapping(data, "groups", "")
    for name in names:
        group = check.mapping(groups, name, "groups.")
        check.number(group, "accuracy", f"groups.{name}.")
        check.number(group, "tar_at_far_1e-3", f"groups.{name}.", nullable=True)
        folds = check.get(group, "fold_accuracies", f"groups.{name}.")
        if not isinstance(folds, list) or not folds:
            check.fail(f"groups.{name}.fold_accuracies", "must be a non-empty list")
    check.number(data, "mean_accuracy", "", nullable=True)  # null over verification sets only
    # STD needs two groups and SER a group with errors: either can be null.
    for key in ("std", "ser"):
        check.number(data, key, "", nullable=True)


def _check_identification(check, data):
    names = check.group_names(data)
    for key in ("n_templates", "n_mated", "n_nonmated", "rank"):
        check.number(data, key, "")
    ranks = check.get(data, "ranks", "")
    if not isinstance(ranks, list) or not ranks or not all(map(_is_rank, ranks)):
        check.fail("ranks", f"must be a non-empty list of integers of at least 1, not {ranks!r}")
    entries = check.get(data, "results", "")
    if not isinstance(entries, list) or not entries:
        check.fail("results", "must be a non-empty list")
    for k, entry in enumerate(entries):
        where = f"results[{k}]."
        for key in ("target_fpir", "threshold") + IDENT_RATES:
            check.number(entry, key, where)
        groups = check.mapping(entry, "groups", where)
        for name in names:
            group = check.mapping(groups, name, where + "groups.")
            for key in IDENT_RATES:  # null for a group without mated or non-mated searches
                check.number(group, key, f"{where}groups.{name}.", nullable=True)
            for key in IDENT_COUNTS:
                check.number(group, key, f"{where}groups.{name}.")
        fairness = check.mapping(entry, "fairness", where)
        for key in IDENT_FAIRNESS_KEYS:
            check.number(fairness, key, where + "fairness.", nullable=True)
        check.matrix(check.get(entry, "false_positive_matrix", where), len(names),
                     where + "false_positive_matrix", _is_count)
    cmc = check.mapping(data, "cmc", "")
    for name in ["all"] + names:
        rates = check.get(cmc, name, "cmc.")
        if (not isinstance(rates, list) or len(rates) != len(ranks)
                or not all(map(_is_number_or_null, rates))):
            check.fail(f"cmc.{name}", f"must be a list of {len(ranks)} rates, one per rank of "
                       "'ranks'")


def _check_calibration(check, data):
    from mfftools.reporting.calibration import check_calibration

    check_calibration(check, data)


def _is_number_or_null(value):
    return value is None or (
        isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value))


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_rank(value):
    return _is_count(value) and value >= 1


def point_of(entry):
    """The operating point of a results entry: (target_fpr, method) of an instance result,
    target_fpir of an identification result."""
    if "target_fpir" in entry:
        return entry["target_fpir"]
    return entry["target_fpr"], entry["method"]


def entry_label(entry):
    """A short name for one operating point, e.g. "FPR 1e-05, bisection" of an instance result,
    "FPIR 1e-02" of an identification result."""
    if "target_fpir" in entry:
        return f"FPIR {entry['target_fpir']:.0e}"
    return f"FPR {entry['target_fpr']:.0e}, {entry['method']}"


def has_multi_intra(result):
    """Whether every group's similarity carries the intra statistics over identities with at least
    two images (older result files have only the ones over all identities)."""
    similarity = result.data["similarity"]
    return all(key in similarity[name] for name in result.group_names for key in MULTI_INTRA_STATS)


def similarity_keys(result):
    """The similarity statistics the report shows for `result`: intra over identities with at
    least two images when the file has it, then inter."""
    if has_multi_intra(result):
        return ("intra_mean_multi", "intra_std_multi", "inter_mean", "inter_std")
    return SIMILARITY_STATS


def folds_label(data):
    """How a pair result's folds were made: "10-fold (contiguous folds)", "5-fold (folds from the
    file)" (a count range when groups differ), or "10-fold" for a file that does not say."""
    counts = sorted({len(group["fold_accuracies"]) for group in data["groups"].values()})
    number = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    source = {"file": " (folds from the file)", "contiguous": " (contiguous folds)"}.get(
        data.get("fold_assignment"), "")
    return f"{number}-fold{source}"


def compared_groups(entry):
    """How many groups the fairness measures of `entry` compare: those with both FMR and FNMR."""
    return sum(
        1 for group in entry["groups"].values()
        if group.get("fmr") is not None and group.get("fnmr") is not None
    )


def group_gap(entry, stat):
    """Highest minus lowest group value of `stat`, or None with fewer than two groups."""
    values = [group[stat] for group in entry["groups"].values() if group[stat] is not None]
    return max(values) - min(values) if len(values) >= 2 else None


def union_group_names(results):
    """The group names of several results, each once, in order of first appearance."""
    names = []
    for result in results:
        names += [name for name in result.group_names if name not in names]
    return names


def per_identity(result, entry):
    """Per-identity columns at one operating point as numpy arrays, or None when absent.

    Reads the entry's `per_identity` columns as the evaluations write them (group indices).
    Returns {"group": int64 group index, "tpr": float (NaN where the identity has no genuine
    pair), "fpr", and "intra"/"inter" when given, and "n_images" when the result's `identities`
    gives it}.
    """
    table = entry.get("per_identity")
    if table is None:
        return None
    if not isinstance(table, dict) or "group" not in table:
        raise MfftoolsError(f"{result.path}: 'per_identity' has no 'group' column")
    names = result.group_names
    groups = table["group"]
    if not all(_is_count(value) for value in groups):
        raise MfftoolsError(f"{result.path}: 'per_identity' group must be group indices")
    columns = {"group": np.asarray(groups, dtype=np.int64)}
    if len(columns["group"]) and not (0 <= columns["group"].min() <= columns["group"].max() < len(names)):
        raise MfftoolsError(f"{result.path}: 'per_identity' has a group index out of range")
    for key in ("tpr", "fpr", "intra", "inter"):
        if key in table:
            column = as_floats(table[key])
            if len(column) != len(columns["group"]):
                raise MfftoolsError(
                    f"{result.path}: 'per_identity' column {key!r} has {len(column)} rows, "
                    f"'group' has {len(columns['group'])}"
                )
            columns[key] = column
    n_images = (result.data.get("identities") or {}).get("n_images")
    if n_images is not None:
        if len(n_images) != len(columns["group"]):
            raise MfftoolsError(
                f"{result.path}: 'identities.n_images' has {len(n_images)} rows, "
                f"'per_identity' has {len(columns['group'])}"
            )
        columns["n_images"] = np.asarray(n_images, dtype=np.int64)
    return columns


def per_identity_rates(result, entry):
    """Per-identity columns that hold both TPR and FPR (what bootstrap and box plots need), or None."""
    columns = per_identity(result, entry)
    if columns is None or "tpr" not in columns or "fpr" not in columns:
        return None
    return columns


def roc_curves(result):
    """Per-group ROC points {group: (fpr array, tpr array)}, or None when the result has none.

    Reads {"<group>": {"fpr": [...], "tpr": [...]}} (or "far"/"tar", the pair protocol's
    names).
    """
    roc = result.data.get("roc")
    if not isinstance(roc, dict):
        return None
    curves = {}
    for name in result.group_names:
        points = roc.get(name)
        if isinstance(points, dict) and "fpr" in points and "tpr" in points:
            fpr, tpr = as_floats(points["fpr"]), as_floats(points["tpr"])
        elif isinstance(points, dict) and "far" in points and "tar" in points:
            fpr, tpr = as_floats(points["far"]), as_floats(points["tar"])
        else:
            continue
        if len(fpr) != len(tpr):
            raise MfftoolsError(f"{result.path}: 'roc' of {name} has {len(fpr)} FPR and "
                                f"{len(tpr)} TPR values")
        defined = ~(np.isnan(fpr) | np.isnan(tpr))
        if defined.any():
            curves[name] = (fpr[defined], tpr[defined])
    return curves or None


def fmr_matrix(result, entry):
    """The group x group FMR matrix of one operating point as a numpy array, or None."""
    matrix = entry.get("group_fmr_matrix")
    if matrix is None:
        return None
    array = as_floats(matrix) if len(matrix) else np.zeros((0, 0))
    size = len(result.group_names)
    if array.shape != (size, size):
        raise MfftoolsError(
            f"{result.path}: 'group_fmr_matrix' has shape {array.shape}, expected ({size}, {size})"
        )
    return array


def score_distributions(result):
    """The instance result's `score_distributions` (checked on load), or None when absent."""
    return result.data.get("score_distributions")


# The axes of DET points by protocol: (false positive rate, false negative rate).
DET_RATES = {"identification": ("fpir", "fnir"), "instance": ("fmr", "fnmr"),
             "pair": ("fmr", "fnmr")}


def det_curves(result):
    """The result's DET points without undefined ones, or None when it has no `det`:
    identification, FNIR against FPIR {"all" and each group: (fpir, fnir)}; instance and pair,
    FNMR against matched FMR {group: (fmr, fnmr)}."""
    det = result.data.get("det")
    if not isinstance(det, dict):
        return None
    positive, negative = DET_RATES[result.protocol]
    curves = {}
    for name in ["all"] + result.group_names:
        points = det.get(name)
        if not isinstance(points, dict) or positive not in points or negative not in points:
            continue
        false_positive, false_negative = as_floats(points[positive]), as_floats(points[negative])
        if false_positive.shape != false_negative.shape:
            raise MfftoolsError(f"{result.path}: 'det' of {name} has {len(false_positive)} "
                                f"{positive.upper()} and {len(false_negative)} "
                                f"{negative.upper()} values")
        defined = ~(np.isnan(false_positive) | np.isnan(false_negative))
        if defined.any():
            curves[name] = (false_positive[defined], false_negative[defined])
    return curves or None


def equal_error_rates(result):
    """{group: EER or None} of an instance or pair result's `eer`, or None when it has none."""
    eer = result.data.get("eer")
    if not isinstance(eer, dict):
        return None
    found = {}
    for name in result.group_names:
        value = eer.get(name)
        found[name] = value if _is_number_or_null(value) else None
    return found


def images_of(result):
    """What the result was computed on (its `images` entry), or None when the file does not say:
    {"n", "paths_sha256", "identities_sha256"} or, of pair results, {"n", "labels_sha256"}."""
    images = result.data.get("images")
    return images if isinstance(images, dict) else None


def skipped_counts(result):
    """(n_skipped_images, n_dropped_pairs) of a result file, each None when it does not say."""
    counts = []
    for key in ("n_skipped_images", "n_dropped_pairs"):
        value = result.data.get(key)
        counts.append(value if _is_count(value) else None)
    return tuple(counts)


def ladder_of(result, entry):
    """The entry's FPR ladder as a `bootstrap.Ladder` (levels in increasing FPR), or None when
    the entry has no ladder, it is empty, or the result lacks each identity's pair counts."""
    ladder = entry.get("ladder")
    identities = result.data.get("identities") or {}
    if not isinstance(ladder, dict) or not ladder.get("target_fpr"):
        return None
    if "n_genuine_pairs" not in identities or "n_impostor_pairs" not in identities:
        return None
    genuine = as_floats(identities["n_genuine_pairs"])
    impostor = as_floats(identities["n_impostor_pairs"])
    levels = as_floats(ladder["target_fpr"])
    counts = {}
    for key in ("identity_tp", "identity_fp"):
        try:
            table = as_floats(ladder.get(key, []))
        except (TypeError, ValueError):
            table = np.zeros(0)
        if table.shape != (len(levels), len(genuine)):
            raise MfftoolsError(
                f"{result.path}: 'ladder.{key}' of the entry at {entry_label(entry)} has shape "
                f"{table.shape}, expected ({len(levels)}, {len(genuine)}): one list per level, "
                "one count per identity")
        counts[key] = table.T
    order = np.argsort(levels, kind="stable")
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = np.where(genuine[:, None] > 0, counts["identity_tp"] / genuine[:, None], np.nan)
        fpr = np.where(impostor[:, None] > 0, counts["identity_fp"] / impostor[:, None], np.nan)
    return Ladder(target=float(entry["target_fpr"]), levels=levels[order], tpr=tpr[:, order],
                  fpr=fpr[:, order], impostor_accepted=counts["identity_fp"][:, order],
                  impostor_pairs=impostor)


def as_floats(values):
    """JSON numbers (a list, nested lists, or one number) as float64, null (undefined) as NaN,
    which numpy's statistics and matplotlib skip."""
    return np.array(values, dtype=np.float64)
