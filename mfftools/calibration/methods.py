"""Calibration and fairness-mitigation methods, fitted on calibration pairs, applied to any pair.

A pair is its raw score s (the canonical cosine score) and one key per image: its k-means cluster
(faircal, fsn) or its group (gst, oracle, group-norm); the calibrated score of a pair depends on
nothing else. Every method gives a confidence p in [0, 1] (the probability that the pair is
genuine) and a decision score, the score thresholds are set on (FairCal's measures use the same):
s for the baselines, the shifted or normalised s' for fsn, gst and group-norm (a global calibrator
on s' does not change its order), p for faircal and oracle. C_0 is a global calibrator fitted on
every calibration pair; thr(X) is the exact threshold at the target FPR `fit_fpr` (1e-3) over the
impostor scores X: the (K+1)-th largest, K = floor(fit_fpr x |X|), so that FPR = (scores > thr)/|X|
<= fit_fpr, the instance protocol's exact threshold.

baseline (beta, isotonic, binning: the same with that calibrator)
    p = C_0(s). Needs no labels beyond genuine/impostor.
faircal (Salvador et al., ICLR 2022)
    one calibrator C_k per cluster, fitted on the calibration pairs with at least one image in k
    (n_k of them); p = (n_a C_a(s) + n_b C_b(s)) / (n_a + n_b). No demographic labels.
fsn (Terhörst et al. 2020, as FairCal implements it)
    d_k = thr(impostor pairs with an image in k) - thr(all impostor pairs);
    s' = s - (d_a + d_b) / 2; p = C'(s'), C' a global calibrator fitted on s' over
    [-1 - max d, 1 - min d]. No demographic labels.
gst (group-specific thresholds)
    d_g = thr(impostor pairs with both images in g) - thr(all impostor pairs); s' = s - d_g for a
    pair with both images in g, s' = s otherwise; p = C'(s') over [-1 - max d, 1 - min d]
    (d = 0 included when some calibration pair is cross-group). Needs group labels.
oracle
    one calibrator C_g per group, fitted on the pairs with both images in g; p = C_g(s) for such
    pairs, C_0(s) for cross-group pairs. Needs group labels.
group-norm (Linghu et al., IJCB 2024: per-group impostor normalisation, their M3)
    mu_g, sigma_g: mean and standard deviation (ddof 1) of the impostor scores with both images in
    g; s' = (s - (mu_a + mu_b) / 2) / ((sigma_a + sigma_b) / 2), which is (s - mu_g) / sigma_g
    for a pair within g; p = C'(s') over the range those maps give [-1, 1]. Needs group labels.

Fallbacks (counted, never silent): a calibrator needs at least one genuine and one impostor
pair, else that cluster or group uses C_0 (faircal keeps its weight n_k); a cluster or group
without impostor pairs gets d = 0; a group with fewer than two impostor scores (or all equal)
is normalised with the statistics of all impostor pairs; an image whose group the calibration
never saw is treated as in such a group.
"""
import numbers
from dataclasses import dataclass, field

import numpy as np

from mfftools.calibration.calibrators import DEFAULT_BINS, KINDS, CalibratorBank, fit_calibrator
from mfftools.errors import MfftoolsError
from mfftools.evaluation.threshold import exact_threshold

BASELINES = ("baseline", "beta", "isotonic", "binning")
CLUSTER_METHODS = ("faircal", "fsn")
GROUP_METHODS = ("gst", "oracle", "group-norm")
METHODS = BASELINES + CLUSTER_METHODS + GROUP_METHODS
DEFAULT_CLUSTERS = 100
DEFAULT_FIT_FPR = 1e-3
SCORE_RANGE = (-1.0, 1.0)


@dataclass(frozen=True)
class Settings:
    """How methods are fitted: the calibrator kind, k-means clusters and seed, bins of the
    binning calibrator (and of ECE), the target FPR of fsn's and gst's thresholds."""

    calibrator: str = "beta"
    clusters: int = DEFAULT_CLUSTERS
    bins: int = DEFAULT_BINS
    fit_fpr: float = DEFAULT_FIT_FPR
    seed: int = 0

    def __post_init__(self):
        if self.calibrator not in KINDS:
            raise MfftoolsError(f"--calibrator must be one of {', '.join(KINDS)}, got "
                                f"{self.calibrator!r}")
        for name, value in (("clusters", self.clusters), ("bins", self.bins)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise MfftoolsError(f"--{name} must be an integer of at least 1, got {value!r}")
        if not isinstance(self.fit_fpr, numbers.Real) or not 0 < self.fit_fpr < 1:
            raise MfftoolsError(f"--fit-fpr must be between 0 and 1, got {self.fit_fpr!r}")


def key_kind(method):
    """What a method needs per image: "cluster", "group" or None."""
    if method in CLUSTER_METHODS:
        return "cluster"
    if method in GROUP_METHODS:
        return "group"
    return None


def calibrator_kind(method, settings):
    return method if method in ("beta", "isotonic", "binning") else settings.calibrator


@dataclass
class PairKeys:
    """Pairs as the methods see them: raw scores (float64), labels (None when applying) and the
    key of each image (cluster or group index; -1 for a group the calibration never saw)."""

    scores: np.ndarray
    key_a: np.ndarray
    key_b: np.ndarray
    issame: np.ndarray = None

    def __post_init__(self):
        self.scores = np.asarray(self.scores, dtype=np.float64)
        self.key_a = np.asarray(self.key_a, dtype=np.int64)
        self.key_b = np.asarray(self.key_b, dtype=np.int64)
        if self.issame is not None:
            self.issame = np.asarray(self.issame, dtype=bool)

    def subset(self, chosen):
        return PairKeys(self.scores[chosen], self.key_a[chosen], self.key_b[chosen],
                        None if self.issame is None else self.issame[chosen])


@dataclass
class Fitted:
    """A fitted method. `tables` hold one value per key plus one for an unknown key (last);
    `bank` member 0 is the global calibrator. `fallback` marks the keys that fell back."""

    method: str
    calibrator: str
    n_keys: int
    bank: CalibratorBank
    tables: dict = field(default_factory=dict)
    fallback: np.ndarray = None

    @property
    def n_fallbacks(self):
        """Clusters or groups (of the calibration) that fell back to the global fit."""
        return 0 if self.fallback is None else int(self.fallback[: self.n_keys].sum())


@dataclass
class Applied:
    """A method's output for pairs: `confidence` (p), `decision` (the score thresholds are set
    on) and `fallback` (pairs that met a fallback)."""

    confidence: np.ndarray
    decision: np.ndarray
    fallback: np.ndarray


def threshold_at(impostor_scores, target):
    """The exact threshold at FPR `target` over these impostor scores (None without any)."""
    negated = -np.asarray(impostor_scores, dtype=np.float64)
    if len(negated) == 0:
        return None
    # The (rank+1)-th largest score, by a partial sort.
    return float(exact_threshold(target, len(negated),
                                 lambda rank: -np.partition(negated, rank)[rank]))


def _both_classes(issame):
    return bool(issame.any()) and not bool(issame.all())


def _slot(keys, n_keys):
    """Key -> row of a table: -1 (unknown) -> the last row."""
    return np.where(keys < 0, n_keys, keys)


def _pairs_by_key(pairs, n_keys):
    """For each key, in turn, the indices of the pairs with at least one image of that key (a
    pair whose two images share it counted once). One key's at a time: memory stays one mask
    and one list, whatever the number of pairs (IJB-C's 15.66M)."""
    for key in range(n_keys):
        yield np.flatnonzero((pairs.key_a == key) | (pairs.key_b == key))


def _same_group_pairs(pairs, n_keys):
    """For each group, in turn, the indices of the pairs with both images in it."""
    for group in range(n_keys):
        yield np.flatnonzero((pairs.key_a == group) & (pairs.key_b == group))


def _global_fit(kind, pairs, settings, scores=None, score_range=SCORE_RANGE, cache=None,
                near=None):
    """A calibrator fitted on every pair; C_0 (on the raw scores) is kept in `cache` by kind,
    for the other methods fitted on the same pairs. `near`: a related fit to start from."""
    if scores is None and cache is not None:
        if kind not in cache:
            cache[kind] = _global_fit(kind, pairs, settings)
        return cache[kind]
    scores = pairs.scores if scores is None else scores
    return fit_calibrator(kind, scores, pairs.issame, *score_range, n_bins=settings.bins,
                          near=near)


def _check_calibration_pairs(pairs, method):
    if not _both_classes(pairs.issame):
        raise MfftoolsError(
            f"{method}: the calibration pairs have {int(pairs.issame.sum())} genuine and "
            f"{int((~pairs.issame).sum())} impostor pairs; calibrating needs both"
        )


def fit_method(method, pairs, n_keys, settings=Settings(), cache=None):
    """Fit `method` on calibration pairs (PairKeys with labels); `n_keys`: the number of
    clusters or groups the keys index (0 for the baselines). `cache`: a dict shared by the
    methods fitted on the same pairs, so that their common global calibrator is fitted once."""
    if method not in METHODS:
        raise MfftoolsError(f"unknown method {method!r}; the methods are {', '.join(METHODS)}")
    _check_calibration_pairs(pairs, method)
    kind = calibrator_kind(method, settings)
    if method in BASELINES:
        bank = CalibratorBank.of(kind, [_global_fit(kind, pairs, settings, cache=cache)],
                                 [SCORE_RANGE])
        return Fitted(method, kind, 0, bank)
    if method in ("faircal", "oracle"):
        members_of = (_pairs_by_key(pairs, n_keys) if method == "faircal"
                      else _same_group_pairs(pairs, n_keys))
        return _fit_per_key(method, kind, pairs, n_keys, settings, members_of, cache)
    if method == "group-norm":
        return _fit_group_norm(method, kind, pairs, n_keys, settings)
    near = _global_fit(kind, pairs, settings, cache=cache) if cache is not None else None
    fit = {"fsn": _fit_fsn, "gst": _fit_gst}[method]
    return fit(method, kind, pairs, n_keys, settings, near)


def _fit_per_key(method, kind, pairs, n_keys, settings, members_of, cache):
    """One calibrator per key on the pairs `members_of` gives it (C_0 where they lack a class)."""
    overall = _global_fit(kind, pairs, settings, cache=cache)
    fitted = [overall]
    member = np.zeros(n_keys + 1, dtype=np.int64)
    weight = np.zeros(n_keys + 1, dtype=np.float64)
    fallback = np.ones(n_keys + 1, dtype=bool)
    for key, chosen in enumerate(members_of):
        weight[key] = len(chosen)
        if _both_classes(pairs.issame[chosen]):
            fitted.append(fit_calibrator(kind, pairs.scores[chosen], pairs.issame[chosen],
                                         *SCORE_RANGE, n_bins=settings.bins, near=overall))
            member[key] = len(fitted) - 1
            fallback[key] = False
    bank = CalibratorBank.of(kind, fitted, [SCORE_RANGE] * len(fitted))
    return Fitted(method, kind, n_keys, bank, {"member": member, "weight": weight}, fallback)


def _shifts(pairs, members_of, n_keys, target):
    """d_k = thr(impostors of key k's pairs) - thr(all impostors); 0 (a fallback) without any."""
    global_threshold = threshold_at(pairs.scores[~pairs.issame], target)
    shift = np.zeros(n_keys + 1, dtype=np.float64)
    fallback = np.ones(n_keys + 1, dtype=bool)
    for key, chosen in enumerate(members_of):
        local = threshold_at(pairs.scores[chosen][~pairs.issame[chosen]], target)
        if local is not None:
            shift[key] = local - global_threshold
            fallback[key] = False
    return shift, fallback, global_threshold


def _fit_shifted(method, kind, pairs, n_keys, settings, shift, fallback, near,
                 extra_range=()):
    fitted = Fitted(method, kind, n_keys, None, {"shift": shift}, fallback)
    shifted = _shifted_scores(fitted, pairs)
    values = np.concatenate([shift[:n_keys], extra_range])
    score_range = (SCORE_RANGE[0] - values.max(), SCORE_RANGE[1] - values.min())
    fitted.bank = CalibratorBank.of(
        kind, [_global_fit(kind, pairs, settings, shifted, score_range, near=near)],
        [score_range],
    )
    return fitted


def _fit_fsn(method, kind, pairs, n_keys, settings, near):
    shift, fallback, _ = _shifts(pairs, _pairs_by_key(pairs, n_keys), n_keys, settings.fit_fpr)
    return _fit_shifted(method, kind, pairs, n_keys, settings, shift, fallback, near)


def _fit_gst(method, kind, pairs, n_keys, settings, near):
    shift, fallback, _ = _shifts(pairs, _same_group_pairs(pairs, n_keys), n_keys,
                                 settings.fit_fpr)
    cross = bool(np.any(pairs.key_a != pairs.key_b))
    return _fit_shifted(method, kind, pairs, n_keys, settings, shift, fallback, near,
                        extra_range=[0.0] if cross else [])


def _fit_group_norm(method, kind, pairs, n_keys, settings):
    impostor = pairs.scores[~pairs.issame]
    if len(impostor) < 2 or np.std(impostor) == 0:
        raise MfftoolsError("group-norm: the calibration pairs need at least two different "
                            "impostor scores")
    mean = np.full(n_keys + 1, impostor.mean())
    std = np.full(n_keys + 1, impostor.std(ddof=1))
    fallback = np.ones(n_keys + 1, dtype=bool)
    for group, chosen in enumerate(_same_group_pairs(pairs, n_keys)):
        scores = pairs.scores[chosen][~pairs.issame[chosen]]
        if len(scores) >= 2 and np.std(scores) > 0:
            mean[group], std[group] = scores.mean(), scores.std(ddof=1)
            fallback[group] = False
    fitted = Fitted(method, kind, n_keys, None, {"mean": mean, "std": std}, fallback)
    centre = (mean[:, None] + mean[None, :]) / 2
    spread = (std[:, None] + std[None, :]) / 2
    score_range = (float(((SCORE_RANGE[0] - centre) / spread).min()),
                   float(((SCORE_RANGE[1] - centre) / spread).max()))
    normalised = _normalised_scores(fitted, pairs)
    fitted.bank = CalibratorBank.of(
        kind, [_global_fit(kind, pairs, settings, normalised, score_range)], [score_range]
    )
    return fitted


def _shifted_scores(fitted, pairs):
    slot_a, slot_b = _slot(pairs.key_a, fitted.n_keys), _slot(pairs.key_b, fitted.n_keys)
    shift = fitted.tables["shift"]
    if fitted.method == "fsn":
        return pairs.scores - (shift[slot_a] + shift[slot_b]) / 2.0
    within = pairs.key_a == pairs.key_b
    return pairs.scores - np.where(within, shift[slot_a], 0.0)


def _normalised_scores(fitted, pairs):
    slot_a, slot_b = _slot(pairs.key_a, fitted.n_keys), _slot(pairs.key_b, fitted.n_keys)
    mean, std = fitted.tables["mean"], fitted.tables["std"]
    return (pairs.scores - (mean[slot_a] + mean[slot_b]) / 2.0) / ((std[slot_a] + std[slot_b]) / 2.0)


def apply_method(fitted, pairs):
    """The method's output (Applied) for pairs (PairKeys; labels not needed)."""
    method, n_keys = fitted.method, fitted.n_keys
    if method in BASELINES:
        confidence = fitted.bank.predict(pairs.scores, 0)
        return Applied(confidence, pairs.scores, np.zeros(len(pairs.scores), dtype=bool))
    slot_a, slot_b = _slot(pairs.key_a, n_keys), _slot(pairs.key_b, n_keys)
    fallback = fitted.fallback[slot_a] | fitted.fallback[slot_b]
    if method in ("fsn", "gst", "group-norm"):
        decision = (_normalised_scores(fitted, pairs) if method == "group-norm"
                    else _shifted_scores(fitted, pairs))
        if method == "gst":
            fallback = fallback & (pairs.key_a == pairs.key_b)
        return Applied(fitted.bank.predict(decision, 0), decision, fallback)
    member, weight = fitted.tables["member"], fitted.tables["weight"]
    if method == "oracle":
        within = pairs.key_a == pairs.key_b
        chosen = np.where(within, member[slot_a], 0)
        confidence = fitted.bank.predict(pairs.scores, chosen)
        return Applied(confidence, confidence, fallback | ~within)
    confidence = _faircal_confidence(fitted.bank, pairs.scores, member[slot_a], member[slot_b],
                                     weight[slot_a], weight[slot_b])
    return Applied(confidence, confidence, fallback)


def _faircal_confidence(bank, scores, member_a, member_b, weight_a, weight_b):
    """(n_a C_a(s) + n_b C_b(s)) / (n_a + n_b), C_0(s) where n_a + n_b = 0."""
    first = bank.predict(scores, member_a)
    second = first.copy()
    differ = member_b != member_a
    second[differ] = bank.predict(scores[differ], member_b[differ])
    total = weight_a + weight_b
    confidence = np.empty_like(first)
    weighted = total > 0
    confidence[weighted] = ((weight_a * first + weight_b * second)[weighted] / total[weighted])
    if not weighted.all():
        confidence[~weighted] = bank.predict(scores[~weighted], 0)
    return confidence
