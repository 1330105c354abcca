"""Pair-protocol accuracy: mfftools' vectorised folds against insightface's per-threshold loop.

Builds 4 groups of RFW-sized pair sets (6,000 pairs: 10 folds of 300 genuine + 300 impostor)
from random embeddings, a quarter of the distances snapped onto grid thresholds so that ties are
exercised, and times the 10-fold accuracy of both. Fold accuracies and thresholds must be
identical. Full run: `python benchmarks/bench_pair_eval.py`; smoke run: add `--quick`.
"""
import argparse
import platform
import time

import numpy as np

from mfftools.evaluation.pair import ACCURACY_THRESHOLDS, kfold_bounds, pair_distances
from mfftools.evaluation.pair import verification_accuracy, verify_group


def insightface_accuracy(threshold, dist, issame):
    """insightface's `calculate_accuracy`, accuracy part."""
    predict_issame = np.less(dist, threshold)
    tp = np.sum(np.logical_and(predict_issame, issame))
    tn = np.sum(np.logical_and(np.logical_not(predict_issame), np.logical_not(issame)))
    return float(tp + tn) / dist.size


def loop_reference(dist, issame, thresholds=ACCURACY_THRESHOLDS):
    """insightface's `calculate_roc` accuracy: every threshold evaluated on every training set."""
    accuracies, chosen = [], []
    for start, stop in kfold_bounds(len(dist)):
        train = np.r_[0:start, stop : len(dist)]
        train_accuracy = np.array(
            [insightface_accuracy(t, dist[train], issame[train]) for t in thresholds]
        )
        best = int(np.argmax(train_accuracy))
        test_accuracy = insightface_accuracy(thresholds[best], dist[start:stop], issame[start:stop])
        accuracies.append(test_accuracy)
        chosen.append(thresholds[best])
    return np.array(accuracies), np.array(chosen)


def make_group(rng, n_pairs, dim, noise):
    """RFW-like order: each fold 50% genuine pairs; a quarter of the distances set on the grid."""
    issame = np.tile(np.repeat([True, False], n_pairs // 20), 10)[:n_pairs]
    first = rng.normal(size=(n_pairs, dim)).astype(np.float32)
    second = np.where(issame[:, None], first + noise * rng.normal(size=(n_pairs, dim)),
                      rng.normal(size=(n_pairs, dim))).astype(np.float32)
    dist = pair_distances(first, second)
    snapped = rng.random(n_pairs) < 0.25
    dist[snapped] = ACCURACY_THRESHOLDS[np.round(dist[snapped] * 1000).astype(int)]
    return dist, issame


def best_time(function, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="600 pairs per group, for a smoke run")
    parser.add_argument("--pairs", type=int, default=6000, help="pairs per group")
    parser.add_argument("--groups", type=int, default=4)
    parser.add_argument("--dim", type=int, default=128)
    args = parser.parse_args()
    n_pairs = 600 if args.quick else args.pairs
    rng = np.random.default_rng(0)

    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, numpy {np.__version__}")
    print(f"{args.groups} groups x {n_pairs} pairs, grid of {len(ACCURACY_THRESHOLDS)} thresholds")
    print(f"{'group':>5}  {'loop (s)':>9}  {'mfftools (s)':>12}  {'speed-up':>8}  "
          f"{'accuracy':>8}  identical")
    total_loop = total_ours = 0.0
    for group in range(args.groups):
        dist, issame = make_group(rng, n_pairs, args.dim, noise=3.0 + 0.4 * group)
        loop_seconds, (expected, expected_thresholds) = best_time(
            lambda: loop_reference(dist, issame), 1
        )
        ours_seconds, (accuracies, thresholds) = best_time(
            lambda: verification_accuracy(dist, issame), 5
        )
        if not (np.array_equal(accuracies, expected)
                and np.array_equal(thresholds, expected_thresholds)):
            raise SystemExit(f"group {group}: fold accuracies differ from the loop reference")
        total_loop += loop_seconds
        total_ours += ours_seconds
        print(f"{group:>5}  {loop_seconds:>9.3f}  {ours_seconds:>12.4f}  "
              f"{loop_seconds / ours_seconds:>7.0f}x  {np.mean(accuracies):>8.4f}  yes")
    print(f"{'all':>5}  {total_loop:>9.3f}  {total_ours:>12.4f}  {total_loop / total_ours:>7.0f}x")
    full_seconds, _ = best_time(lambda: verify_group(dist, issame), 3)
    print(f"full per-group protocol (accuracy + TAR@FAR + ROC samples): {full_seconds:.4f} s")


if __name__ == "__main__":
    main()
