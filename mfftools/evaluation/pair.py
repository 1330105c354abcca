"""The pair protocol (RFW `.bin` files, insightface verification), exact and vectorised.

Per group, pairs keep their file order and are cut into 10 contiguous, unshuffled folds
(scikit-learn's `KFold(10)`: the first P % 10 folds hold one extra pair), unless the file assigns
folds (its `fold` dataset: BFW-style pair lists), which are then used as they are. In each fold
the threshold of the grid with the best accuracy on the other folds (first best on ties) is
applied to the fold; a pair is predicted "same" when its squared L2 distance is strictly below
the threshold. The group accuracy is the mean over folds. Two grids (GRIDS): MixFairFace's RFW
script's `numpy.arange(0, 10, 0.001)`, and insightface's `verification.py`'s
`numpy.arange(0, 4, 0.01)`, on which published LFW, CFP and AgeDB accuracies were computed; the
default is insightface's for the sets insightface names (VERIFICATION_SETS) and MixFairFace's for
everything else. Those verification sets are unrelated benchmarks, not the demographic groups of
one: the mean, STD and SER are taken over the groups only.

TAR at FAR = 1e-3 chooses its threshold on the other folds' impostor pairs, whose FAR moves in
steps of 1 / (their number): with fewer than 1,000 such pairs 1e-3 cannot be resolved, and the
result says so (`tar_at_far_resolvable`), beside the FAR the threshold actually gives.

insightface counts, for each of the 10,000 thresholds, the pairs below it with a Python loop.
Here each fold's distances are sorted once and `searchsorted` counts the accepted genuine and
impostor pairs of every fold at every threshold; training counts are the group's counts minus the
test fold's. Counts are integers and the comparisons are the same float64 `<`, so the results are
identical, ties on grid values included.

Distances are computed in float64 from the stored (float32 or float16) embeddings, as insightface's
`arcface_torch` does (it holds embeddings in float64 and normalises them with scikit-learn).
"""
import logging
from dataclasses import dataclass

import numpy as np

from mfftools.data.groups import select_groups
from mfftools.errors import MfftoolsError
from mfftools.evaluation import sanity, threshold as search
from mfftools.evaluation.fairness import ser
from mfftools.evaluation.skipped import check_folds, skipped_counts
from mfftools.fingerprint import images_fingerprint

logger = logging.getLogger(__name__)

N_FOLDS = 10
GRIDS = {"mixfairface": np.arange(0, 10, 0.001), "insightface": np.arange(0, 4, 0.01)}
ACCURACY_THRESHOLDS = GRIDS["mixfairface"]
# insightface's verification sets, by the names of their .bin files.
VERIFICATION_SETS = ("lfw", "cfp_fp", "cfp_ff", "agedb_30", "calfw", "cplfw", "vgg2_fp")
# insightface's `calculate_val` searches the FAR threshold on this shorter grid.
TAR_THRESHOLDS = np.arange(0, 4, 0.001)
FAR_TARGET = 1e-3
# FAR levels at which each group's ROC (over all its pairs) is sampled for the results file.
ROC_FAR_LEVELS = np.logspace(-4, 0, 81)
_BLOCK_PAIRS = 4096


@dataclass
class TarAtFar:
    """TAR at a FAR target, averaged over folds: `far` is the mean test FAR at the chosen
    thresholds, `folds` the folds averaged, `far_resolution` the smallest FAR step of the
    training FARs the thresholds are chosen on (1 / the fewest impostor pairs of a training
    part); the target is resolvable when that step is not above it."""

    tar: float
    far: float
    folds: int
    far_resolution: float
    far_target: float = FAR_TARGET

    @property
    def resolvable(self):
        return bool(self.far_resolution <= self.far_target)


@dataclass
class GroupVerification:
    """The pair protocol's results for one group."""

    n_pairs: int
    n_genuine: int
    n_impostor: int
    fold_accuracies: np.ndarray
    fold_thresholds: np.ndarray
    tar_at_far: TarAtFar
    roc_far: np.ndarray
    roc_tar: np.ndarray
    grid: str
    det: dict

    @property
    def accuracy(self):
        return float(np.mean(self.fold_accuracies))


def pair_distances(first, second):
    """Squared L2 distances between L2-normalised rows, in float64 (insightface's arithmetic)."""
    first = _normalise(np.asarray(first, dtype=np.float64))
    second = _normalise(np.asarray(second, dtype=np.float64))
    return np.sum(np.square(np.subtract(first, second)), 1)


def _normalise(rows):
    # The same operations as scikit-learn's `normalize(rows)`, so the bits match.
    norms = np.sqrt(np.einsum("ij,ij->i", rows, rows))
    return rows / norms[:, np.newaxis]


def kfold_bounds(n_pairs, n_folds=N_FOLDS):
    """(start, stop) of each fold: contiguous, the first n_pairs % n_folds folds one longer."""
    sizes = np.full(n_folds, n_pairs // n_folds)
    sizes[: n_pairs % n_folds] += 1
    stops = np.cumsum(sizes)
    return [(int(stop - size), int(stop)) for stop, size in zip(stops, sizes)]


def fold_members(n_pairs, fold=None):
    """The pair indices of each fold: 10 contiguous folds (`kfold_bounds`), or, given each pair's
    fold index (`fold`), the pairs of each index present, in index order."""
    if fold is None:
        return [np.arange(start, stop) for start, stop in kfold_bounds(n_pairs)]
    fold = np.asarray(fold, dtype=np.int64)
    return [np.flatnonzero(fold == index) for index in np.unique(fold)]


def _accepted_per_fold(dist, issame, folds, thresholds):
    """Accepted (dist < t) genuine and impostor pairs of each fold at each threshold, [F, T]."""
    genuine = np.empty((len(folds), len(thresholds)), dtype=np.int64)
    impostor = np.empty_like(genuine)
    for fold, members in enumerate(folds):
        fold_dist, fold_same = dist[members], issame[members]
        # side="left" counts the sorted values strictly below each threshold.
        genuine[fold] = np.searchsorted(np.sort(fold_dist[fold_same]), thresholds, side="left")
        impostor[fold] = np.searchsorted(np.sort(fold_dist[~fold_same]), thresholds, side="left")
    return genuine, impostor


def _fold_sizes(issame, folds):
    n_genuine = np.array([int(issame[members].sum()) for members in folds])
    n_pairs = np.array([len(members) for members in folds])
    return n_genuine, n_pairs - n_genuine


def verification_accuracy(dist, issame, thresholds=ACCURACY_THRESHOLDS, fold=None):
    """insightface's 10-fold accuracy for one group: (fold accuracies, chosen thresholds).

    Correct predictions = accepted genuine + rejected impostor; the best training threshold is the
    first maximum of the correct count (the same as the first maximum of insightface's accuracy,
    which is that count over a fixed number of pairs). `fold`: each pair's fold index, when the
    file assigns folds (see `fold_members`).
    """
    dist, issame = np.asarray(dist, dtype=np.float64), np.asarray(issame, dtype=bool)
    folds = fold_members(len(dist), fold)
    accepted_genuine, accepted_impostor = _accepted_per_fold(dist, issame, folds, thresholds)
    n_genuine, n_impostor = _fold_sizes(issame, folds)
    correct_test = accepted_genuine + (n_impostor[:, np.newaxis] - accepted_impostor)
    correct_train = correct_test.sum(axis=0) - correct_test
    best = np.argmax(correct_train, axis=1)
    fold_rows = np.arange(len(folds))
    fold_accuracies = correct_test[fold_rows, best] / (n_genuine + n_impostor)
    return fold_accuracies.astype(np.float64), thresholds[best]


def tar_at_far(dist, issame, far_target=FAR_TARGET, thresholds=TAR_THRESHOLDS, fold=None):
    """TAR at a FAR target, insightface's `calculate_val` without its interpolation failure.

    In each fold, the training FAR is computed at every grid threshold (a non-decreasing step
    function); the threshold is where the straight line between the two adjacent grid points
    at which the training FAR first reaches the target crosses it (0 if it never does, as in
    insightface). That equals scipy's linear interpolation wherever FAR values do not repeat,
    and stays defined where they do. TAR and FAR are then measured on the test fold.
    Returns a TarAtFar: a fold whose test part has no genuine pairs, or whose training part has
    no impostor pairs, is left out.
    """
    dist, issame = np.asarray(dist, dtype=np.float64), np.asarray(issame, dtype=bool)
    folds = fold_members(len(dist), fold)
    _, accepted_impostor = _accepted_per_fold(dist, issame, folds, thresholds)
    n_genuine, n_impostor = _fold_sizes(issame, folds)
    train_accepted = accepted_impostor.sum(axis=0) - accepted_impostor
    train_impostor = n_impostor.sum() - n_impostor
    tars, fars, used = [], [], []
    for index, members in enumerate(folds):
        if n_genuine[index] == 0 or train_impostor[index] == 0:
            continue
        train_far = train_accepted[index] / float(train_impostor[index])
        threshold = _interpolate_threshold(train_far, thresholds, far_target)
        test_dist, test_same = dist[members], issame[members]
        accepted = test_dist < threshold
        tars.append(np.sum(accepted & test_same) / float(n_genuine[index]))
        fars.append(np.sum(accepted & ~test_same) / float(max(n_impostor[index], 1)))
        used.append(index)
    if not tars:
        return TarAtFar(float("nan"), float("nan"), 0, float("nan"), far_target)
    resolution = 1.0 / float(train_impostor[used].min())
    return TarAtFar(float(np.mean(tars)), float(np.mean(fars)), len(tars), resolution, far_target)


def _interpolate_threshold(far, thresholds, far_target):
    if np.max(far) < far_target:
        return 0.0
    upper = int(np.argmax(far >= far_target))
    if upper == 0:
        return float(thresholds[0])
    lower = upper - 1
    slope = (thresholds[upper] - thresholds[lower]) / (far[upper] - far[lower])
    return float(slope * (far_target - far[lower]) + thresholds[lower])


def roc_at_far_levels(dist, issame, far_levels=ROC_FAR_LEVELS, thresholds=ACCURACY_THRESHOLDS):
    """TAR over all pairs at the largest grid threshold whose FAR does not exceed each level,
    for the levels the pairs resolve: those not below 1 / (number of impostor pairs)."""
    dist, issame = np.asarray(dist, dtype=np.float64), np.asarray(issame, dtype=bool)
    n_impostor = max(int((~issame).sum()), 1)
    genuine = np.searchsorted(np.sort(dist[issame]), thresholds, side="left")
    impostor = np.searchsorted(np.sort(dist[~issame]), thresholds, side="left")
    far = impostor / n_impostor
    tar = genuine / max(int(issame.sum()), 1)
    far_levels = np.asarray(far_levels, dtype=np.float64)
    far_levels = far_levels[far_levels * n_impostor >= 1]
    # far is non-decreasing and far[0] = 0 (nothing is below a threshold of 0).
    last = np.searchsorted(far, far_levels, side="right") - 1
    return far_levels, tar[last]


def grid_for(name, requested=None):
    """The accuracy grid of a group or set: `requested`, else insightface's for insightface's
    verification sets and MixFairFace's for everything else."""
    if requested is not None:
        if requested not in GRIDS:
            raise MfftoolsError(f"unknown grid {requested!r}: use one of {', '.join(GRIDS)}")
        return requested
    return "insightface" if name.lower() in VERIFICATION_SETS else "mixfairface"


def is_verification_set(name):
    """Whether `name` is one of insightface's verification sets (a benchmark of its own, not a
    demographic group)."""
    return name.lower() in VERIFICATION_SETS


def verify_group(dist, issame, name="group", fold=None, grid=None):
    """All pair-protocol results for one group's distances, in file order; `fold`: each pair's
    fold index when the file assigns folds, else 10 contiguous folds; `grid`: see `grid_for`."""
    dist, issame = np.asarray(dist, dtype=np.float64), np.asarray(issame, dtype=bool)
    n_genuine = int(issame.sum())
    n_impostor = len(issame) - n_genuine
    if fold is None and len(dist) < N_FOLDS:
        raise MfftoolsError(
            f"group {name!r} has {len(dist)} pairs; the {N_FOLDS}-fold protocol needs "
            f"at least {N_FOLDS}"
        )
    if fold is not None and len(np.unique(fold)) < 2:
        raise MfftoolsError(
            f"group {name!r} has pairs in {len(np.unique(fold))} fold; choosing thresholds on "
            "the other folds needs at least 2"
        )
    if n_genuine == 0 or n_impostor == 0:
        raise MfftoolsError(
            f"group {name!r} has {n_genuine} genuine and {n_impostor} impostor pairs; "
            "the pair protocol needs both"
        )
    grid = grid_for(name, grid)
    fold_accuracies, fold_thresholds = verification_accuracy(dist, issame, GRIDS[grid],
                                                             fold=fold)
    tar = tar_at_far(dist, issame, fold=fold)
    if tar.folds < len(fold_accuracies):
        logger.warning(
            "group %r: TAR@FAR averaged over %d of %d folds (the others lack genuine test "
            "pairs or impostor training pairs)", name, tar.folds, len(fold_accuracies)
        )
    if not tar.resolvable:
        logger.debug(
            "group %r: TAR@FAR=%g is unresolvable: thresholds are chosen on as few as %d "
            "impostor pairs (FAR steps of %.2g); the thresholds found give a FAR of %.2g",
            name, tar.far_target, round(1 / tar.far_resolution), tar.far_resolution, tar.far
        )
    roc_far, roc_tar = roc_at_far_levels(dist, issame)
    # The DET in distances: a pair is accepted when -dist > -t.
    det = search.det_curve(-dist[issame], -dist[~issame])
    det["threshold"] = [-value for value in det["threshold"]]
    return GroupVerification(
        n_pairs=len(dist),
        n_genuine=n_genuine,
        n_impostor=n_impostor,
        fold_accuracies=fold_accuracies,
        fold_thresholds=fold_thresholds,
        tar_at_far=tar,
        roc_far=roc_far,
        roc_tar=roc_tar,
        grid=grid,
        det=det,
    )


def embeddings_distances(embeddings, block_pairs=_BLOCK_PAIRS):
    """Distance of every pair of a pairs-layout file, reading it block by block."""
    if embeddings.layout != "pairs":
        raise MfftoolsError(
            f"{embeddings.path}: the pair protocol needs a 'pairs'-layout embeddings file, "
            f"this one has layout {embeddings.layout!r}"
        )
    dist = np.empty(embeddings.n_rows // 2, dtype=np.float64)
    for first_row, block in embeddings.iter_blocks(block_rows=2 * block_pairs):
        first_pair = first_row // 2
        dist[first_pair : first_pair + len(block) // 2] = pair_distances(block[0::2], block[1::2])
    return dist


def evaluate_pair_distances(dist, issame, pair_group, group_names, fold=None, groups=None,
                            where="pairs", grid=None):
    """The pair protocol's results dict (PROTOCOLS section 6) from pair distances and labels.

    `fold`: each pair's fold index when the source assigns folds (else 10 contiguous folds per
    group). `groups`: the names of the groups to evaluate (default all; `where` names the source
    in the error for a missing one). `grid`: the accuracy grid of every group (default: by name,
    `grid_for`). Groups without pairs are left out (and logged). The mean accuracy, `std`
    (ddof = 1) and `ser` (error = 100 - accuracy %) are over the demographic groups, leaving out
    insightface's verification sets (each its own benchmark): `std` and `ser` are None with fewer
    than two groups, the mean with none; `ser` is also None when a group has no errors.
    """
    dist, issame = np.asarray(dist, dtype=np.float64), np.asarray(issame, dtype=bool)
    pair_group = np.asarray(pair_group, dtype=np.int64)
    fold = None if fold is None else np.asarray(fold, dtype=np.int64)
    chosen = select_groups(group_names, groups, where)
    verified = {}
    for index, name in enumerate(group_names):
        mask = pair_group == index
        if name not in chosen:
            continue
        if not mask.any():
            logger.warning("group %r has no pairs; left out", name)
            continue
        group_fold = None if fold is None else fold[mask]
        verified[name] = verify_group(dist[mask], issame[mask], name, fold=group_fold, grid=grid)
    if not verified:
        raise MfftoolsError("no pairs to evaluate")
    percent = [result.accuracy * 100 for name, result in verified.items()
               if not is_verification_set(name)]
    several = len(percent) > 1
    grids = sorted({result.grid for result in verified.values()})
    return {
        "protocol": "pair",
        "group_names": list(verified),
        "groups": {name: _group_entry(result) for name, result in verified.items()},
        "mean_accuracy": float(np.mean(percent)) if percent else None,
        "std": float(np.std(percent, ddof=1)) if several else None,
        "ser": ser([100 - value for value in percent]) if several else None,
        "grid": grids[0] if len(grids) == 1 else "mixed",
        "verification_sets": [name for name in verified if is_verification_set(name)],
        "det": {name: result.det for name, result in verified.items()},
        "eer": {name: search.eer(result.det["fmr"], result.det["fnmr"])
                for name, result in verified.items()},
        "n_pairs": int(sum(result.n_pairs for result in verified.values())),
        "fold_assignment": "contiguous" if fold is None else "file",
        "far_target": FAR_TARGET,
        "roc": {
            name: {"far": result.roc_far.tolist(), "tar": result.roc_tar.tolist()}
            for name, result in verified.items()
        },
    }


def _group_entry(result):
    tar = result.tar_at_far
    return {
        "accuracy": result.accuracy,
        "fold_accuracies": result.fold_accuracies.tolist(),
        "tar_at_far_1e-3": tar.tar,
        "accuracy_std": float(np.std(result.fold_accuracies)),
        "fold_thresholds": result.fold_thresholds.tolist(),
        "far_at_tar_threshold": tar.far,
        "tar_at_far_resolvable": tar.resolvable,
        "far_resolution": tar.far_resolution,
        "tar_folds": tar.folds,
        "n_pairs": result.n_pairs,
        "n_genuine": result.n_genuine,
        "n_impostor": result.n_impostor,
        "grid": result.grid,
    }


def evaluate_pairs(embeddings, groups=None, grid=None, allow_dropped_pairs=False,
                   allow_degenerate=False):
    """Run the pair protocol on an opened pairs-layout embeddings file (see `open_embeddings`),
    on its own folds when it has a `fold` dataset; `groups`: the group names to evaluate;
    `grid`: the accuracy grid (default by name, `grid_for`). A file that lost pairs at
    extraction is refused unless it has its own folds or `allow_dropped_pairs`; degenerate
    embeddings unless `allow_degenerate` (see `sanity`)."""
    check_folds(embeddings, allow_dropped_pairs)
    return file_results(embeddings, embeddings_distances(embeddings), embeddings.issame,
                        embeddings.pair_group, embeddings.fold, groups, grid, allow_degenerate)


def file_results(embeddings, dist, issame, pair_group, fold, groups=None, grid=None,
                 allow_degenerate=False, evaluated=None, extra=None):
    """The results dict of an embeddings file's pairs: their distances `dist` (the embeddings'
    own, which the degenerate check reads), labels `issame`, `pair_group` and `fold`, evaluated
    on `evaluated` when given (calibrated distances) instead of `dist`; `extra` keys (a
    calibration's record) come before the file's fingerprint and counts."""
    degenerate = sanity.check_pair_scores(dist, issame, str(embeddings.path), allow_degenerate)
    results = evaluate_pair_distances(
        dist if evaluated is None else evaluated, issame, pair_group, embeddings.group_names,
        fold=fold, groups=groups, where=str(embeddings.path), grid=grid,
    )
    results["dim"] = embeddings.dim
    results["source"] = str(embeddings.path)
    results.update(extra or {})
    results["images"] = images_fingerprint(embeddings)
    results.update(skipped_counts(embeddings), degenerate=degenerate)
    return results
