"""Dense references of the calibration methods and measures, pair by pair from their definitions
(FairCal's paper and code, Terhörst et al., Linghu et al.); small data only."""
import math
from fractions import Fraction

import numpy as np

from mfftools.calibration.calibrators import CalibratorBank, fit_calibrator


def threshold(impostor, target):
    """The smallest impostor score t with #(impostor > t) <= floor(target x #impostor)."""
    impostor = [float(s) for s in impostor]
    if not impostor:
        return None
    allowed = math.floor(Fraction(target) * len(impostor))
    return min(t for t in impostor if sum(s > t for s in impostor) <= allowed)


def calibrator(kind, scores, labels, lo=-1.0, hi=1.0, bins=25):
    """A one-score function of the calibrator fitted on these pairs."""
    bank = CalibratorBank.of(kind, [fit_calibrator(kind, np.asarray(scores), np.asarray(labels),
                                                   lo, hi, n_bins=bins)], [(lo, hi)])
    return lambda s: float(bank.predict(np.array([s]), 0)[0])


def both(labels):
    return any(labels) and not all(labels)


def faircal(cal, test, kind, n_keys):
    """(confidences, fallback pairs, fallbacks) of the test pairs (scores, labels, key_a, key_b): each cluster's calibrator fitted on the
    calibration pairs with an image in it; p = (n_a C_a(s) + n_b C_b(s)) / (n_a + n_b)."""
    scores, labels, key_a, key_b = cal
    overall = calibrator(kind, scores, labels)
    fitted, counts, fell_back = {}, {}, set()
    for k in range(n_keys):
        members = [i for i in range(len(scores)) if key_a[i] == k or key_b[i] == k]
        counts[k] = len(members)
        if both([labels[i] for i in members]):
            fitted[k] = calibrator(kind, [scores[i] for i in members],
                                   [labels[i] for i in members])
        else:
            fitted[k] = overall
            fell_back.add(k)
    out, fallback = [], []
    for s, _, a, b in zip(*test):
        total = counts[a] + counts[b]
        if total == 0:
            out.append(overall(s))
        else:
            out.append((counts[a] * fitted[a](s) + counts[b] * fitted[b](s)) / total)
        fallback.append(a in fell_back or b in fell_back)
    return np.array(out), np.array(fallback), len(fell_back)


def oracle(cal, test, kind, n_keys):
    scores, labels, key_a, key_b = cal
    overall = calibrator(kind, scores, labels)
    fitted, fell_back = {}, set()
    for g in range(n_keys):
        members = [i for i in range(len(scores)) if key_a[i] == g and key_b[i] == g]
        if both([labels[i] for i in members]):
            fitted[g] = calibrator(kind, [scores[i] for i in members],
                                   [labels[i] for i in members])
        else:
            fell_back.add(g)
    out, fallback = [], []
    for s, _, a, b in zip(*test):
        within = a == b and a in fitted
        out.append(fitted[a](s) if within else overall(s))
        fallback.append(not within)
    return np.array(out), np.array(fallback), len(fell_back)


def _shifted(cal, test, kind, shift_of, pair_shift, target, cross_in_range):
    scores, labels, key_a, key_b = cal
    values = list(shift_of.values()) + ([0.0] if cross_in_range else [])
    lo, hi = -1.0 - max(values), 1.0 - min(values)
    shifted = [s - pair_shift(a, b) for s, a, b in zip(scores, key_a, key_b)]
    mapping = calibrator(kind, shifted, labels, lo, hi)
    decision = np.array([s - pair_shift(a, b) for s, _, a, b in zip(*test)])
    return np.array([mapping(s) for s in decision]), decision


def _threshold_shifts(cal, n_keys, target, member):
    """d_k = thr(impostors of the pairs `member(a, b, k)` selects) - thr(all impostors), 0 for a
    key without any (a fallback)."""
    scores, labels, key_a, key_b = cal
    overall = threshold([s for s, y in zip(scores, labels) if not y], target)
    shift, fell_back = {}, set()
    for k in range(n_keys):
        impostor = [scores[i] for i in range(len(scores))
                    if member(key_a[i], key_b[i], k) and not labels[i]]
        if impostor:
            shift[k] = threshold(impostor, target) - overall
        else:
            shift[k], _ = 0.0, fell_back.add(k)
    return shift, fell_back


def fsn(cal, test, kind, n_keys, target):
    shift, fell_back = _threshold_shifts(cal, n_keys, target, lambda a, b, k: k in (a, b))
    confidence, decision = _shifted(cal, test, kind, shift,
                                    lambda a, b: (shift[a] + shift[b]) / 2, target, False)
    fallback = np.array([a in fell_back or b in fell_back for _, _, a, b in zip(*test)])
    return confidence, decision, fallback, len(fell_back)


def gst(cal, test, kind, n_keys, target):
    shift, fell_back = _threshold_shifts(cal, n_keys, target, lambda a, b, g: a == b == g)
    cross = any(a != b for a, b in zip(cal[2], cal[3]))

    def pair_shift(a, b):
        return shift.get(a, 0.0) if a == b else 0.0

    confidence, decision = _shifted(cal, test, kind, shift, pair_shift, target, cross)
    fallback = np.array([a == b and (a in fell_back or a not in shift)
                         for _, _, a, b in zip(*test)])
    return confidence, decision, fallback, len(fell_back)


def group_norm(cal, test, kind, n_keys):
    scores, labels, key_a, key_b = cal
    impostor = np.array([s for s, y in zip(scores, labels) if not y])
    stats, fell_back = {}, set()
    for g in range(n_keys):
        own = np.array([scores[i] for i in range(len(scores))
                        if key_a[i] == g and key_b[i] == g and not labels[i]])
        if len(own) >= 2 and own.std() > 0:
            stats[g] = (own.mean(), own.std(ddof=1))
        else:
            fell_back.add(g)
    everyone = (impostor.mean(), impostor.std(ddof=1))

    def of(key):
        return stats.get(key, everyone)

    def normalised(s, a, b):
        (mean_a, std_a), (mean_b, std_b) = of(a), of(b)
        return (s - (mean_a + mean_b) / 2) / ((std_a + std_b) / 2)

    keys = list(range(n_keys)) + [-1]
    lo = min(normalised(-1.0, a, b) for a in keys for b in keys)
    hi = max(normalised(1.0, a, b) for a in keys for b in keys)
    mapping = calibrator(kind, [normalised(s, a, b) for s, a, b in zip(scores, key_a, key_b)],
                         labels, lo, hi)
    decision = np.array([normalised(s, a, b) for s, _, a, b in zip(*test)])
    fallback = np.array([of(a) is everyone or of(b) is everyone for _, _, a, b in zip(*test)])
    return np.array([mapping(s) for s in decision]), decision, fallback, len(fell_back)
