"""Calibration of the pairs of an embeddings file: fit on all of them, apply to others, or
cross-validate over folds (`mfftools calibrate fit | apply | cross-val`).

Scores are canonical cosine scores (mfftools.pair_data.pair_scores), so a calibration fitted
here means the same on the scores the instance and identification protocols compare. Clusters
are fitted on the canonical rows of the distinct images of the calibration pairs (FairCal: "the
unique images of the calibration set") and every image is given its nearest centroid.
"""
import logging
from dataclasses import dataclass

import numpy as np

from mfftools.calibration.calibrators import DEFAULT_BINS
from mfftools.calibration.kmeans import assign, fit_centroids
from mfftools.calibration.methods import (
    METHODS,
    Applied,
    PairKeys,
    Settings,
    apply_method,
    fit_method,
    key_kind,
)
from mfftools.calibration.metrics import average, evaluate, target_key
from mfftools.calibration.store import Calibration
from mfftools.errors import MfftoolsError
from mfftools.pair_data import canonical_rows, contiguous_folds, pair_scores

logger = logging.getLogger(__name__)

TARGETS = (1e-3, 1e-2)
DEFAULT_FOLDS = 10


@dataclass
class ScoredPairs:
    """A PairSet with its canonical rows (torch float32; None once released) and canonical
    scores (float32 [P])."""

    pairs: object
    rows: object
    scores: np.ndarray

    @classmethod
    def of(cls, pair_set, in_place=False):
        """Score a PairSet; `in_place`: normalise its rows in place (it no longer gives the pair
        protocol's distances then) instead of a normalised copy."""
        rows = pair_set.normalise_in_place() if in_place else canonical_rows(pair_set.rows)
        return cls(pair_set, rows, pair_scores(rows, pair_set.pair_index))

    def release_rows(self):
        """Let the rows go once every key is taken from them (see PairSet.release_rows)."""
        self.rows = None
        self.pairs.release_rows()

    def clusters(self, images, settings):
        """(centroids, cluster of every image) of k-means on the canonical rows `images`."""
        rows = self.rows.numpy()
        centroids = fit_centroids(rows[images], settings.clusters, settings.seed)
        return centroids, assign(rows, centroids)

    def keys(self, image_keys, chosen=None, labelled=True):
        """PairKeys of the pairs `chosen` (all by default) given each image's key."""
        index = self.pairs.pair_index if chosen is None else self.pairs.pair_index[chosen]
        scores = self.scores if chosen is None else self.scores[chosen]
        issame = None
        if labelled:
            issame = self.pairs.issame if chosen is None else self.pairs.issame[chosen]
        if image_keys is None:
            zeros = np.zeros(len(index), dtype=np.int64)
            return PairKeys(scores, zeros, zeros, issame)
        return PairKeys(scores, image_keys[index[:, 0]], image_keys[index[:, 1]], issame)


def _images_of(pair_set, chosen):
    """The distinct images (ascending) of the pairs `chosen`, without sorting the pair list."""
    used = np.zeros(pair_set.n_images, dtype=bool)
    used[pair_set.pair_index[chosen].ravel()] = True
    return np.flatnonzero(used)


def _check_methods(methods):
    unknown = [method for method in methods if method not in METHODS]
    if unknown:
        raise MfftoolsError(f"unknown method {', '.join(unknown)}; the methods are "
                            f"{', '.join(METHODS)}")
    if not methods:
        raise MfftoolsError("give at least one --method")
    return list(dict.fromkeys(methods))


def _n_keys(method, scored, settings):
    kind = key_kind(method)
    if kind == "cluster":
        return settings.clusters
    if kind == "group":
        return len(scored.pairs.group_names)
    return 0


def fit_calibration(pair_set, method, settings=Settings(), embeddings=None):
    """Fit `method` on every pair of `pair_set` (its rows are normalised in place, then let go:
    the pair set holds no rows after it); returns a Calibration (store.Calibration).

    `embeddings` (the opened file) gives the model attributes the calibration records.
    """
    _check_methods([method])
    scored = ScoredPairs.of(pair_set, in_place=True)
    centroids = cluster_of_image = None
    image_keys = None
    if key_kind(method) == "cluster":
        images = _images_of(pair_set, slice(None))
        centroids, cluster_of_image = scored.clusters(images, settings)
        image_keys = cluster_of_image
    elif key_kind(method) == "group":
        image_keys = pair_set.image_group
    scored.release_rows()
    fitted = fit_method(method, scored.keys(image_keys), _n_keys(method, scored, settings),
                        settings)
    if fitted.n_fallbacks:
        logger.warning("%s: %d %s fell back to the global fit (too few pairs)", method,
                       fitted.n_fallbacks, "clusters" if key_kind(method) == "cluster" else
                       "groups")
    origin = {"source": pair_set.source, "n_pairs": int(pair_set.n_pairs)}
    attrs = {} if embeddings is None else embeddings.attrs
    for name in ("model", "checkpoint_sha256"):
        value = attrs.get(name)
        origin[name] = None if value is None else (
            value.decode() if isinstance(value, bytes) else str(value))
    return Calibration(fitted=fitted, settings=settings, group_names=list(pair_set.group_names),
                       dim=pair_set.dim, data_sha256=pair_set.data_sha256,
                       origin=origin, centroids=centroids, cluster_of_image=cluster_of_image)


def image_keys_for(calibration, scored):
    """Each image's key under `calibration`: its recorded cluster when these are the embeddings
    it was fitted on (same data_sha256), else its nearest centroid; its group mapped by name to
    the calibration's groups (-1 for a group it never saw)."""
    kind = key_kind(calibration.method)
    if kind == "cluster":
        pairs = scored.pairs
        same = (pairs.data_sha256 == calibration.data_sha256
                and len(calibration.cluster_of_image) == pairs.n_images)
        if same:
            return np.asarray(calibration.cluster_of_image, dtype=np.int64)
        return assign(scored.rows.numpy(), calibration.centroids)
    if kind == "group":
        position = {name: index for index, name in enumerate(calibration.group_names)}
        mapping = np.array([position.get(name, -1) for name in scored.pairs.group_names],
                           dtype=np.int64)
        unseen = [name for name in scored.pairs.group_names if name not in position]
        if unseen:
            logger.warning("groups %s were not in the calibration data: their images fall back "
                           "to the global fit", ", ".join(unseen))
        return mapping[scored.pairs.image_group]
    return None


def apply_calibration(calibration, scored, release_rows=False, chunk=1 << 20):
    """The calibration's output (methods.Applied) for every pair of `scored` (ScoredPairs), a
    `chunk` of pairs at a time (memory: the pairs' outputs, and one chunk's work);
    `release_rows`: let the rows go once the images' keys are taken."""
    image_keys = image_keys_for(calibration, scored)
    if release_rows:
        scored.release_rows()
    outputs = []
    for first in range(0, scored.pairs.n_pairs, chunk):
        chosen = slice(first, first + chunk)
        outputs.append(apply_method(calibration.fitted,
                                    scored.keys(image_keys, chosen, labelled=False)))
    if not outputs:
        empty = np.empty(0)
        return Applied(empty, empty, np.empty(0, dtype=bool))
    return Applied(*(np.concatenate([getattr(out, name) for out in outputs])
                     for name in ("confidence", "decision", "fallback")))


def calibrated_distances(calibration, scored):
    """(distances, Applied) for the pair protocol on calibrated scores: a confidence p is read as
    the cosine score 2p - 1, whose squared L2 distance is 4 (1 - p), so the protocol's grid of
    distance thresholds spans it as it spans raw scores."""
    applied = apply_calibration(calibration, scored)
    return 4.0 * (1.0 - applied.confidence), applied


def evaluate_applied(applied, scored, targets=TARGETS, n_bins=DEFAULT_BINS):
    """FairCal's measures (metrics.evaluate) of applied scores over every pair of `scored`."""
    pairs = scored.pairs
    return evaluate(applied, pairs.issame, pairs.image_group, pairs.pair_index,
                    pairs.group_names, targets, n_bins)


def fold_of_pairs(pair_set, n_folds=None):
    """(each pair's fold, "file" | "contiguous"): the file's folds, or `n_folds` (10) contiguous
    folds per group (pair_data.contiguous_folds). Asking for a number of folds when the file
    assigns them is an error."""
    if pair_set.fold is not None:
        if n_folds is not None:
            raise MfftoolsError(
                f"{pair_set.source}: the file assigns its pairs to folds; --folds applies only "
                "to files without them"
            )
        return pair_set.fold, "file"
    return contiguous_folds(pair_set.pair_group, n_folds or DEFAULT_FOLDS,
                            pair_set.group_names), "contiguous"


def cross_validate(pair_set, methods, settings=Settings(), n_folds=None, targets=TARGETS,
                   on_fold=None):
    """Each fold in turn is the test set of the methods fitted on all the other folds; the
    results file's dict (docs/calibrate.md), each value the mean over test folds. The pair set's
    rows are normalised in place.

    `on_fold(number, total)` is called as each fold starts.
    """
    methods = _check_methods(methods)
    fold, assignment = fold_of_pairs(pair_set, n_folds)
    folds = np.unique(fold)
    if len(folds) < 2:
        raise MfftoolsError(f"{pair_set.source}: the pairs are in {len(folds)} fold; "
                            "cross-validation needs at least 2")
    scored = ScoredPairs.of(pair_set, in_place=True)
    per_method = {method: [] for method in methods}
    fallbacks = {method: {"fitted": 0, "test_pairs": 0} for method in methods}
    for number, test_fold in enumerate(folds):
        if on_fold is not None:
            on_fold(number + 1, len(folds))
        test = fold == test_fold
        calibration = ~test
        clusters, cache = None, {}
        for method in methods:
            image_keys = None
            if key_kind(method) == "cluster":
                if clusters is None:
                    images = _images_of(pair_set, calibration)
                    _, clusters = scored.clusters(images, settings)
                image_keys = clusters
            elif key_kind(method) == "group":
                image_keys = pair_set.image_group
            try:
                fitted = fit_method(method, scored.keys(image_keys, calibration),
                                    _n_keys(method, scored, settings), settings, cache)
            except MfftoolsError as error:
                raise MfftoolsError(f"fold {number + 1} of {len(folds)}: {error}") from None
            applied = apply_method(fitted, scored.keys(image_keys, test, labelled=False))
            index = pair_set.pair_index[test]
            per_method[method].append(evaluate(
                applied, pair_set.issame[test], pair_set.image_group, index,
                pair_set.group_names, targets, settings.bins))
            fallbacks[method]["fitted"] += fitted.n_fallbacks
            fallbacks[method]["test_pairs"] += int(applied.fallback.sum())
    return {
        "protocol": "calibration",
        "folds": int(len(folds)),
        "fold_assignment": assignment,
        "group_names": list(pair_set.group_names),
        "targets": [target_key(target) for target in targets],
        "n_pairs": int(pair_set.n_pairs),
        "n_images": pair_set.n_images,
        "settings": {"calibrator": settings.calibrator, "clusters": settings.clusters,
                     "bins": settings.bins, "fit_fpr": settings.fit_fpr, "seed": settings.seed},
        "methods": {method: {**average(per_method[method]), "fallbacks": fallbacks[method]}
                    for method in methods},
        "source": pair_set.source,
    }
