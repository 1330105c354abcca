"""Calibrators: maps from a comparison score to the probability that a pair is genuine.

Each is fitted on the scores and labels of calibration pairs, and on a score range [lo, hi] (the
scores a method can produce: [-1, 1] for cosine scores). The beta and isotonic maps never
decrease; the binning map need not increase from one bin to the next (as in FairCal).

beta (Kull, Silva Filho and Flach, AISTATS 2017; FairCal's default)
    x = (s - lo) / (hi - lo), clipped to [eps, 1 - eps] (eps = float64's machine epsilon);
    p = sigmoid(c + a ln x - b ln(1 - x)): a logistic regression on the features
    [ln x, -ln(1 - x)] with an intercept, fitted by maximum likelihood with scikit-learn's L2
    term ||(a, b)||^2 / (2C), C = 1e11 (as FairCal sets it: in effect unpenalised, but finite when
    the classes are separable). If a < 0 the fit is redone on -ln(1 - x) alone (a = 0); else if
    b < 0, on ln x alone (b = 0). If that single coefficient is negative too, only the intercept
    is kept (p = the genuine fraction): a map never decreases.
isotonic (scikit-learn's IsotonicRegression with out_of_bounds="clip", as FairCal uses it)
    labels of equal scores are pooled (their mean, weighted by their number); the non-decreasing
    least-squares fit by pool-adjacent-violators; p is linear between the fitted points and
    constant beyond the first and last.
binning (equal mass; FairCal's histogram binning, 25 bins on BFW, 10 on RFW)
    the sorted scores v_0 <= ... <= v_{n-1} are cut before positions floor(j (n - 1) / B) + 1,
    j = 1 .. B - 1, at the midpoint of the two scores there; a cut between equal scores is
    dropped, so equal scores share a bin (and there may be fewer than B bins). The edges are lo,
    the cuts, hi; a score s falls in bin i when edge_i < s <= edge_{i+1} (the first bin also
    takes s <= lo, the last s > hi) and p is the genuine fraction of the calibration scores in
    its bin.

A `CalibratorBank` holds many calibrators of one kind (one per cluster or group, the global one
first) as flat arrays, predicts for every pair with the calibrator it names, and is stored in the
calibration file without pickle.
"""
import math
from dataclasses import dataclass

import numpy as np

KINDS = ("beta", "isotonic", "binning")
DEFAULT_BINS = 25
BETA_C = 1e11
_EPS = np.finfo(np.float64).eps
_NEWTON_ITERATIONS = 100
_WARM_START_PAIRS = 50_000
_CHUNK = 1 << 18  # pairs of the likelihood computed at a time
_LOGIT_TOLERANCE = 1e-12
# A predicted decrease below this fraction of the objective is beyond what float64 resolves.
_RESOLVED = 1e-12


def _sigmoid(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0, e) / (1.0 + e)


def beta_features(scores, lo, hi):
    """[ln x, -ln(1 - x)] of scores mapped from [lo, hi] to x in [eps, 1 - eps], float64 [n, 2]."""
    x = (np.asarray(scores, dtype=np.float64) - lo) / (hi - lo)
    x = np.clip(x, _EPS, 1.0 - _EPS)
    return np.stack([np.log(x), -np.log1p(-x)], axis=1)


class _Likelihood:
    """The penalised negative log-likelihood of p = sigmoid(w0 + features . w), its gradient and
    Hessian, computed a chunk of pairs at a time (memory: the features, and one chunk)."""

    def __init__(self, features, labels, c):
        self.features = features
        self.y = labels
        self.penalty = np.full(features.shape[1] + 1, 1.0 / c)
        self.penalty[0] = 0.0
        # max |logit change| of a step is at most |s0| + sum_k |s_k| max |feature k|
        self.reach = np.concatenate([[1.0], np.abs(features).max(axis=0, initial=0.0)])

    def __call__(self, w):
        """(objective, gradient, Hessian) at weights w."""
        loss = 0.0
        gradient = np.zeros(len(w))
        hessian = np.zeros((len(w), len(w)))
        for first in range(0, len(self.y), _CHUNK):
            design = np.column_stack([np.ones(min(_CHUNK, len(self.y) - first)),
                                      self.features[first : first + _CHUNK]])
            y = self.y[first : first + _CHUNK]
            z = design @ w
            e = np.exp(-np.abs(z))
            loss += float(np.sum(np.log1p(e) + np.maximum(z, 0.0) - y * z))
            p = np.where(z >= 0, 1.0, e) / (1.0 + e)
            gradient += design.T @ (p - y)
            hessian += (design * (p * (1.0 - p))[:, None]).T @ design
        return (loss + 0.5 * float(np.sum(self.penalty * w * w)), gradient + self.penalty * w,
                hessian + np.diag(self.penalty))

    def move(self, step):
        """A bound on the largest change of a logit by `step`."""
        return float(np.abs(step) @ self.reach)


def logistic_fit(features, labels, c=BETA_C, start=None):
    """(intercept, coefficients): maximum likelihood of p = sigmoid(w0 + features . w) with the
    L2 term ||w||^2 / (2c) (the intercept unpenalised), by Newton's method with step halving.

    The objective is strictly convex, so its minimum is unique. Far from it, each Newton step is
    halved until the objective falls; near it (a predicted decrease below 1e-12 of the
    objective, which float64 sums cannot resolve) full steps are taken while they shrink, as
    the gradient still resolves them. It stops when a step would move no logit of the pairs by
    more than 1e-12, or no longer shrinks. It starts
    from `start` (weights near the minimum, e.g. a related fit's) when given; else, on more than
    50,000 pairs, from the fit of every k-th pair (k making about 50,000, C scaled by 1/k); else
    from the intercept alone. Near the minimum Newton's method converges quadratically, so only a
    few steps run over all pairs."""
    features = np.asarray(features, dtype=np.float64).reshape(len(labels), -1)
    y = np.asarray(labels, dtype=np.float64)
    likelihood = _Likelihood(features, y, c)
    weights = np.zeros(features.shape[1] + 1)
    mean = y.mean()
    weights[0] = math.log(mean / (1.0 - mean)) if 0.0 < mean < 1.0 else 0.0
    stride = -(-len(y) // _WARM_START_PAIRS)
    if start is not None:
        weights = np.array(start, dtype=np.float64)
    elif stride > 1 and 0.0 < y[::stride].mean() < 1.0:
        intercept, coefficients = logistic_fit(features[::stride], y[::stride], c / stride)
        weights = np.concatenate([[intercept], coefficients])

    current, gradient, hessian = likelihood(weights)
    previous_move = math.inf
    for _ in range(_NEWTON_ITERATIONS):
        try:
            step = np.linalg.solve(hessian, gradient)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(hessian, gradient, rcond=None)[0]
        move = likelihood.move(step)
        if move <= _LOGIT_TOLERANCE:
            break  # at the minimum, to within the tolerance on every logit
        if 0.5 * float(gradient @ step) > _RESOLVED * max(abs(current), 1.0):
            scale = 1.0  # far from the minimum: halve the step until the objective falls
            while scale > 1e-10:
                candidate = weights - scale * step
                found = likelihood(candidate)
                if found[0] <= current:
                    break
                scale /= 2.0
            else:
                break
        else:
            # Near the minimum the objective no longer resolves a step, but the gradient does:
            # full Newton steps, while they keep shrinking (quadratic convergence).
            if move >= previous_move:
                break
            previous_move = move
            candidate = weights - step
            found = likelihood(candidate)
        weights = candidate
        current, gradient, hessian = found
    return float(weights[0]), weights[1:]


def fit_beta(scores, labels, lo, hi, start=None):
    """(a, b, c) of the beta calibration map, with Kull et al.'s refit rule (module docstring);
    `start`: (a, b, c) of a related map, where Newton's method starts."""
    features = beta_features(scores, lo, hi)
    initial = None if start is None else (start[2], start[0], start[1])
    intercept, (a, b) = logistic_fit(features, labels, start=initial)
    if a < 0:
        intercept, (b,) = logistic_fit(features[:, 1:], labels)
        a = 0.0
    elif b < 0:
        intercept, (a,) = logistic_fit(features[:, :1], labels)
        b = 0.0
    if a < 0 or b < 0:
        intercept, _ = logistic_fit(np.empty((len(features), 0)), labels)
        a = b = 0.0
    return float(a), float(b), float(intercept)


def predict_beta(scores, a, b, c, lo, hi):
    """sigmoid(c + a ln x - b ln(1 - x)); a, b, c, lo, hi scalars or arrays like `scores`."""
    x = (np.asarray(scores, dtype=np.float64) - lo) / (np.asarray(hi) - lo)
    x = np.clip(x, _EPS, 1.0 - _EPS)
    return _sigmoid(c + a * np.log(x) - b * np.log1p(-x))


def fit_isotonic(scores, labels):
    """(knots_x, knots_y): the pooled isotonic fit, one knot at each end of each constant run."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    x, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    genuine = np.bincount(inverse.reshape(-1), weights=labels, minlength=len(x))
    genuine = genuine.astype(np.int64)
    # Pool adjacent violators over the distinct scores; block means compared exactly as
    # genuine_1 / n_1 > genuine_2 / n_2  <=>  genuine_1 n_2 > genuine_2 n_1 (integers).
    sums, sizes, starts = [], [], []
    for index, (g, n) in enumerate(zip(genuine.tolist(), counts.tolist())):
        sums.append(g)
        sizes.append(n)
        starts.append(index)
        while len(sums) > 1 and sums[-2] * sizes[-1] > sums[-1] * sizes[-2]:
            g_last, n_last = sums.pop(), sizes.pop()
            starts.pop()
            sums[-1] += g_last
            sizes[-1] += n_last
    starts.append(len(x))
    knots_x, knots_y = [], []
    for block, (g, n) in enumerate(zip(sums, sizes)):
        first, last = starts[block], starts[block + 1] - 1
        value = g / n
        knots_x.append(x[first])
        knots_y.append(value)
        if last != first:
            knots_x.append(x[last])
            knots_y.append(value)
    return np.array(knots_x, dtype=np.float64), np.array(knots_y, dtype=np.float64)


def predict_isotonic(scores, knots_x, knots_y):
    return np.interp(np.asarray(scores, dtype=np.float64), knots_x, knots_y)


def equal_mass_cuts(sorted_values, n_bins):
    """Cut positions k (a bin starts at k) of equal-mass bins over sorted values, leaving out
    cuts between equal values: floor(j (n - 1) / B) + 1 for j = 1 .. B - 1."""
    n = len(sorted_values)
    n_bins = max(1, min(n_bins, n))
    cuts = np.floor(np.arange(1, n_bins) * (n - 1) / n_bins).astype(np.int64) + 1
    cuts = np.unique(cuts[(cuts > 0) & (cuts < n)])
    return cuts[sorted_values[cuts - 1] < sorted_values[cuts]]


def fit_binning(scores, labels, lo, hi, n_bins=DEFAULT_BINS):
    """(edges [m + 1], values [m]) of equal-mass histogram binning (module docstring)."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    values = np.sort(scores)
    cuts = equal_mass_cuts(values, n_bins)
    inner = (values[cuts - 1] + values[cuts]) / 2.0
    edges = np.concatenate([[lo], inner, [hi]])
    which = _bin_of(scores, edges)
    totals = np.bincount(which, minlength=len(edges) - 1)
    genuine = np.bincount(which, weights=labels, minlength=len(edges) - 1)
    return edges, genuine / totals


def _bin_of(scores, edges):
    """edge_i < s <= edge_{i+1} -> i, clipped to the first and last bins."""
    return np.clip(np.searchsorted(edges, scores, side="left") - 1, 0, len(edges) - 2)


def predict_binning(scores, edges, values):
    return values[_bin_of(np.asarray(scores, dtype=np.float64), edges)]


def fit_calibrator(kind, scores, labels, lo=-1.0, hi=1.0, n_bins=DEFAULT_BINS, near=None):
    """The arrays of one calibrator of `kind`: dict of numpy arrays (see CalibratorBank).
    `near`: a related calibrator of the same kind (a beta fit starts from its parameters)."""
    if kind == "beta":
        start = None if near is None else near["params"]
        return {"params": np.array(fit_beta(scores, labels, lo, hi, start))}
    if kind == "isotonic":
        knots_x, knots_y = fit_isotonic(scores, labels)
        return {"x": knots_x, "y": knots_y}
    if kind == "binning":
        edges, values = fit_binning(scores, labels, lo, hi, n_bins)
        return {"x": edges, "y": values}
    raise ValueError(f"unknown calibrator {kind!r}")


@dataclass
class CalibratorBank:
    """Calibrators of one kind as flat arrays. Calibrator m has the range ranges[m] = (lo, hi);
    beta: params[m] = (a, b, c); isotonic: knots x[offsets[m]:offsets[m+1]] and y likewise;
    binning: edges x[offsets[m]:offsets[m+1]] and values y[offsets[m] - m : offsets[m+1] - m - 1]
    (one value fewer than edges per calibrator)."""

    kind: str
    ranges: np.ndarray
    params: np.ndarray = None
    x: np.ndarray = None
    y: np.ndarray = None
    offsets: np.ndarray = None

    @classmethod
    def of(cls, kind, fitted, ranges):
        """A bank of the `fitted` calibrators (dicts from `fit_calibrator`) with their ranges."""
        ranges = np.asarray(ranges, dtype=np.float64).reshape(len(fitted), 2)
        if kind == "beta":
            params = np.array([item["params"] for item in fitted], dtype=np.float64)
            return cls(kind, ranges, params=params.reshape(len(fitted), 3))
        sizes = [len(item["x"]) for item in fitted]
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        x = np.concatenate([item["x"] for item in fitted]).astype(np.float64)
        y = np.concatenate([item["y"] for item in fitted]).astype(np.float64)
        return cls(kind, ranges, x=x, y=y, offsets=offsets)

    def __len__(self):
        return len(self.ranges)

    def predict(self, scores, which):
        """Probability of each score under calibrator which[i] (float64)."""
        scores = np.asarray(scores, dtype=np.float64)
        which = np.broadcast_to(np.asarray(which, dtype=np.int64), scores.shape)
        if self.kind == "beta":
            a, b, c = self.params[which].T
            lo, hi = self.ranges[which].T
            return predict_beta(scores, a, b, c, lo, hi)
        out = np.empty(len(scores), dtype=np.float64)
        order = np.argsort(which, kind="stable")
        bounds = np.searchsorted(which[order], np.arange(len(self) + 1))
        for member in range(len(self)):
            chosen = order[bounds[member] : bounds[member + 1]]
            if len(chosen):
                out[chosen] = self.predict_one(scores[chosen], member)
        return out

    def predict_one(self, scores, member):
        """Probabilities of `scores` under calibrator `member`."""
        if self.kind == "beta":
            return predict_beta(scores, *self.params[member], *self.ranges[member])
        start, stop = self.offsets[member], self.offsets[member + 1]
        if self.kind == "isotonic":
            return predict_isotonic(scores, self.x[start:stop], self.y[start:stop])
        return predict_binning(scores, self.x[start:stop],
                               self.y[start - member : stop - member - 1])

    def arrays(self):
        """The bank as named arrays, for the calibration file."""
        found = {"kind": np.array(self.kind), "ranges": self.ranges}
        for name in ("params", "x", "y", "offsets"):
            if getattr(self, name) is not None:
                found[name] = getattr(self, name)
        return found

    @classmethod
    def from_arrays(cls, arrays):
        return cls(str(arrays["kind"]), arrays["ranges"],
                   **{name: arrays[name] for name in ("params", "x", "y", "offsets")
                      if name in arrays})
