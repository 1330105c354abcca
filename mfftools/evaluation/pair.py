"""The pair protocol (RFW `.bin` files, insightface verification), exact and vectorised.

Per group, pairs keep their file order and are cut into 10 contiguous, unshuffled folds
(scikit-learn's `KFold(10)`: the first P % 10 folds hold one extra pair). In each fold the
threshold of the grid `numpy.arange(0, 10, 0.001)` with the best training accuracy (first best on
ties) is applied to the test fold; a pair is predicted "same" when its squared L2 distance is
strictly below the threshold. The group accuracy is the mean over folds.

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

from mfftools.errors import MfftoolsError
from mfftools.evaluation.fairness import ser

logger = logging.getLogger(__name__)

N_FOLDS = 10
ACCURACY_THRESHOLDS = np.arange(0, 10, 0.001)
# insightface's `calculate_val` searches the FAR threshold on this shorter grid.
TAR_THRESHOLDS = np.arange(0, 4, 0.001)
FAR_TARGET = 1e-3
# FAR levels at which each group's ROC (over all its pairs) is sampled for the results file.
ROC_FAR_LEVELS = np.logspace(-4, 0, 81)
_BLOCK_PAIRS = 4096


@dataclass
class GroupVerification:
    """The pair protocol's results for one group."""

    n_pairs: int
    n_genuine: int
    n_impostor: int
    fold_accuracies: np.ndarray
    fold_thresholds: np.ndarray
    tar_at_far: float
    far_at_tar_threshold: float
    tar_folds: int
    roc_far: np.ndarray
    roc_tar: np.ndarray

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


def _accepted_per_fold(dist, issame, folds, thresholds):
    """Accepted (dist < t) genuine and impostor pairs of each fold at each threshold, [F, T]."""
    genuine = np.empty((len(folds), len(thresholds)), dtype=np.int64)
    impostor = np.empty_like(genuine)
    for fold, (start, stop) in enumerate(folds):
        fold_dist, fold_same = dist[start:stop], issame[start:stop]
        # side="left" counts the sorted values strictly below each threshold.
        genuine[fold] = np.searchsorted(np.sort(fold_dist[fold_same]), thresholds, side="left")
        impostor[fold] = np.searchsorted(np.sort(fold_dist[~fold_same]), thresholds, side="left")
    return genuine, impostor


def _fold_sizes(issame, folds):
    n_genuine = np.array([int(issame[start:stop].sum()) for start, stop in folds])
    n_pairs = np.array([stop - start for start, stop in folds])
    return n_genuine, n_pairs - n_genuine


def verification_accuracy(dist, issame, thresholds=ACCURACY_THRESHOLDS, n_folds=N_FOLDS):
    """insightface's 10-fold accuracy for one group: (fold accuracies, chosen thresholds).

    Correct predictions = accepted genuine + rejected impostor; the best training threshold is the
    first maximum of the correct count (the same as the first maximum of insightface's accuracy,
    which is that count over a fixed number of pairs).
    """
    dist, issame = np.asarray(dist, dtype=np.float64), np.asarray(issame, dtype=bool)
    folds = kfold_bounds(len(dist), n_folds)
    accepted_genuine, accepted_impostor = _accepted_per_fold(dist, issame, folds, thresholds)
    n_genuine, n_impostor = _fold_sizes(issame, folds)
    correct_test = accepted_genuine + (n_impostor[:, np.newaxis] - accepted_impostor)
    correct_train = correct_test.sum(axis=0) - correct_test
    best = np.argmax(correct_train, axis=1)
    fold_rows = np.arange(len(folds))
    fold_accuracies = correct_test[fold_rows, best] / (n_genuine + n_impostor)
    return fold_accuracies.astype(np.float64), thresholds[best]


def tar_at_far(dist, issame, far_target=FAR_TARGET, thresholds=TAR_THRESHOLDS, n_folds=N_FOLDS):
    """TAR at a FAR target, insightface's `calculate_val` without its interpolation failure.

    In each fold, the training FAR is computed at every grid threshold (a non-decreasing step
    function); the threshold is where the straight line between the two adjacent grid points
    at which the training FAR first reaches the target crosses it (0 if it never does, as in
    insightface). That equals scipy's linear interpolation wherever FAR values do not repeat,
    and stays defined where they do. TAR and FAR are then measured on the test fold.
    Returns (mean TAR, mean test FAR, number of folds used): a fold whose test part has no
    genuine pairs, or whose training part has no impostor pairs, is left out.
    """
    dist, issame = np.asarray(dist, dtype=np.float64), np.asarray(issame, dtype=bool)
    folds = kfold_bounds(len(dist), n_folds)
    _, accepted_impostor = _accepted_per_fold(dist, issame, folds, thresholds)
    n_genuine, n_impostor = _fold_sizes(issame, folds)
    train_accepted = accepted_impostor.sum(axis=0) - accepted_impostor
    train_impostor = n_impostor.sum() - n_impostor
    tars, fars = [], []
    for fold, (start, stop) in enumerate(folds):
        if n_genuine[fold] == 0 or train_impostor[fold] == 0:
            continue
        train_far = train_accepted[fold] / float(train_impostor[fold])
        threshold = _interpolate_threshold(train_far, thresholds, far_target)
        test_dist, test_same = dist[start:stop], issame[start:stop]
        accepted = test_dist < threshold
        tars.append(np.sum(accepted & test_same) / float(n_genuine[fold]))
        fars.append(np.sum(accepted & ~test_same) / float(max(n_impostor[fold], 1)))
    if not tars:
        return float("nan"), float("nan"), 0
    return float(np.mean(tars)), float(np.mean(fars)), len(tars)


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
    """TAR over all pairs at the largest grid threshold whose FAR does not exceed each level."""
    dist, issame = np.asarray(dist, dtype=np.float64), np.asarray(issame, dtype=bool)
    genuine = np.searchsorted(np.sort(dist[issame]), thresholds, side="left")
    impostor = np.searchsorted(np.sort(dist[~issame]), thresholds, side="left")
    far = impostor / max(int((~issame).sum()), 1)
    tar = genuine / max(int(issame.sum()), 1)
    # far is non-decreasing and far[0] = 0 (nothing is below a threshold of 0).
    last = np.searchsorted(far, far_levels, side="right") - 1
    return np.asarray(far_levels, dtype=np.float64), tar[last]


def verify_group(dist, issame, name="group"):
    """All pair-protocol results for one group's distances, in file order."""
    dist, issame = np.asarray(dist, dtype=np.float64), np.asarray(issame, dtype=bool)
    n_genuine = int(issame.sum())
    n_impostor = len(issame) - n_genuine
    if len(dist) < N_FOLDS:
        raise MfftoolsError(
            f"group {name!r} has {len(dist)} pairs; the {N_FOLDS}-fold protocol needs "
            f"at least {N_FOLDS}"
        )
    if n_genuine == 0 or n_impostor == 0:
        raise MfftoolsError(
            f"group {name!r} has {n_genuine} genuine and {n_impostor} impostor pairs; "
            "the pair protocol needs both"
        )
    fold_accuracies, fold_thresholds = verification_accuracy(dist, issame)
    tar, far, tar_folds = tar_at_far(dist, issame)
    if tar_folds < N_FOLDS:
        logger.warning(
            "group %r: TAR@FAR averaged over %d of %d folds (the others lack genuine test "
            "pairs or impostor training pairs)", name, tar_folds, N_FOLDS
        )
    roc_far, roc_tar = roc_at_far_levels(dist, issame)
    return GroupVerification(
        n_pairs=len(dist),
        n_genuine=n_genuine,
        n_impostor=n_impostor,
        fold_accuracies=fold_accuracies,
        fold_thresholds=fold_thresholds,
        tar_at_far=tar,
        far_at_tar_threshold=far,
        tar_folds=tar_folds,
        roc_far=roc_far,
        roc_tar=roc_tar,
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


def evaluate_pair_distances(dist, issame, pair_group, group_names):
    """The pair protocol's results dict (PROTOCOLS section 6) from pair distances and labels.

    Groups without pairs are left out (and logged). `std` (ddof = 1 over groups) is None with a
    single group; `ser` (error = 100 - accuracy %) is None when a group has no errors.
    """
    dist, issame = np.asarray(dist, dtype=np.float64), np.asarray(issame, dtype=bool)
    pair_group = np.asarray(pair_group, dtype=np.int64)
    verified = {}
    for index, name in enumerate(group_names):
        mask = pair_group == index
        if not mask.any():
            logger.warning("group %r has no pairs; left out", name)
            continue
        verified[name] = verify_group(dist[mask], issame[mask], name)
    if not verified:
        raise MfftoolsError("no pairs to evaluate")
    percent = [result.accuracy * 100 for result in verified.values()]
    std = float(np.std(percent, ddof=1)) if len(percent) > 1 else None
    return {
        "protocol": "pair",
        "group_names": list(verified),
        "groups": {name: _group_entry(result) for name, result in verified.items()},
        "mean_accuracy": float(np.mean(percent)),
        "std": std,
        "ser": ser([100 - value for value in percent]),
        "n_pairs": int(len(dist)),
        "far_target": FAR_TARGET,
        "roc": {
            name: {"far": result.roc_far.tolist(), "tar": result.roc_tar.tolist()}
            for name, result in verified.items()
        },
    }


def _group_entry(result):
    return {
        "accuracy": result.accuracy,
        "fold_accuracies": result.fold_accuracies.tolist(),
        "tar_at_far_1e-3": result.tar_at_far,
        "accuracy_std": float(np.std(result.fold_accuracies)),
        "fold_thresholds": result.fold_thresholds.tolist(),
        "far_at_tar_threshold": result.far_at_tar_threshold,
        "tar_folds": result.tar_folds,
        "n_pairs": result.n_pairs,
        "n_genuine": result.n_genuine,
        "n_impostor": result.n_impostor,
    }


def evaluate_pairs(embeddings):
    """Run the pair protocol on an opened pairs-layout embeddings file (see `open_embeddings`)."""
    dist = embeddings_distances(embeddings)
    results = evaluate_pair_distances(
        dist, embeddings.issame, embeddings.pair_group, embeddings.group_names
    )
    results["dim"] = embeddings.dim
    results["source"] = str(embeddings.path)
    return results
