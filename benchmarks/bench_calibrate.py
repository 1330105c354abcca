"""Benchmark of `mfftools calibrate` at the sizes the fairness papers use.

  * BFW-sized cross-validation: 20,000 images (8 subgroups x 250 identities x 10 images), 923,200
    pairs in 5 identity-disjoint folds, D = 512; `calibrate cross-val` with every method
    (baseline, faircal, fsn, gst, oracle, group-norm), K = 100 clusters. Goal: under 60 s on 2 cores.
  * IJB-C-sized FairCal: 468,000 images (12 groups x 300 identities x 130 images), 15,660,000 pairs
    (0.125% genuine, as IJB-C's 19,557 of 15.66M), D = 512; `calibrate fit --method faircal`
    then `calibrate apply` of the file it wrote. Goal: fit + apply under 5 minutes, peak memory
    under 3 GB.
  * Calibrated instance protocol: 40,000 images (8 subgroups x 500 identities x 10 images,
    RFW's scale), D = 512; `inst-eval --fpr 1e-5` with and without `--calibration` of a faircal
    fit (K = 100) and of an fsn fit on the same file. Goal: at most 1.3x the uncalibrated run.
The data are `mfftools.data.synthetic_embeddings.biased_pairs` (one group's impostor scores
sitting higher), written as images-layout files with their pair lists. Every measurement is a
whole process (Python's start, imports and the reading of the file included), each in its own
process so that its peak RSS is its own.

    python benchmarks/bench_calibrate.py                 # both, full size
    python benchmarks/bench_calibrate.py --scale 0.05    # a quick check that it runs
"""
import argparse
import json
import resource
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_inst_eval import machine, timed_process  # noqa: E402

METHODS = ("baseline", "faircal", "fsn", "gst", "oracle", "group-norm")
BFW = {"groups": 8, "identities_per_group": 250, "images_per_identity": 10,
       "pairs_per_group": 115_400, "genuine_fraction": 0.3}
IJBC = {"groups": 12, "identities_per_group": 300, "images_per_identity": 130,
        "pairs_per_group": 1_305_000, "genuine_fraction": 0.00125}
INSTANCE = {"groups": 8, "identities_per_group": 500, "images_per_identity": 10,
            "pairs_per_group": 20_000, "genuine_fraction": 0.3}


def synthesize(path, sizes, scale, dim, seed=0):
    """Write a biased pair set of these sizes (identities and pairs scaled by `scale`)."""
    from mfftools.data.synthetic_embeddings import biased_pairs, write_biased_pairs

    identities = max(10, int(sizes["identities_per_group"] * scale))
    pairs = biased_pairs(
        group_names=[f"group{k:02d}" for k in range(sizes["groups"])],
        identities_per_group=identities, images_per_identity=sizes["images_per_identity"],
        pairs_per_group=max(100, int(sizes["pairs_per_group"] * scale)), dim=dim, bias=0.1,
        genuine_fraction=sizes["genuine_fraction"], seed=seed)
    write_biased_pairs(path, pairs, model="synthetic")
    return len(pairs.embeddings), len(pairs.pair_index)


def run_one(command):
    """One `mfftools` command in this process; prints its peak memory as a JSON line."""
    from mfftools.cli import main

    try:
        main(["-q", *command], standalone_mode=False)
    finally:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"rss_mb": peak}))


def measure(command):
    return timed_process([sys.executable, __file__, "--one", *map(str, command)])


def _instance(folder, args):
    """inst-eval at RFW's scale, plain and calibrated (faircal, fsn)."""
    path = folder / "instance.h5"
    n_images, _ = synthesize(path, INSTANCE, args.scale, args.dim)
    n_pairs = n_images * (n_images - 1) // 2  # the instance protocol compares them all
    plain = measure(["inst-eval", path, "--fpr", "1e-5", "--json", folder / "plain.json"])
    rows = [("inst-eval, uncalibrated", n_images, n_pairs, plain, None)]
    for method in ("faircal", "fsn"):
        measure(["calibrate", "fit", path, "--method", method, "--clusters", args.clusters,
                 "--out", folder / f"{method}.npz"])
        found = measure(["inst-eval", path, "--fpr", "1e-5", "--calibration",
                         folder / f"{method}.npz", "--json", folder / f"{method}.json"])
        if "seconds" in found and "seconds" in plain:
            found["ratio"] = found["seconds"] / plain["seconds"]
            rescored = json.loads((folder / f"{method}.json").read_text())["engine"]
            found["rescored"] = rescored["n_rescored_pairs"]
        rows.append((f"inst-eval --calibration ({method})", n_images, n_pairs, found, None))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0,
                        help="fraction of the identities and pairs (1: full size)")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--clusters", type=int, default=100)
    parser.add_argument("--only", choices=["bfw", "ijbc", "inst"], help="run one part")
    parser.add_argument("--one", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        run_one(args.one)
        return
    print(f"machine: {machine('cpu')}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-calibrate-") as folder:
        folder = Path(folder)
        if args.only in (None, "bfw"):
            path = folder / "bfw.h5"
            n_images, n_pairs = synthesize(path, BFW, args.scale, args.dim)
            methods = [part for method in METHODS for part in ("--method", method)]
            found = measure(["calibrate", "cross-val", path, *methods, "--clusters",
                             args.clusters, "--json", folder / "cv.json"])
            rows.append((f"BFW-sized cross-val, {len(METHODS)} methods, 5 folds", n_images,
                         n_pairs, found, 60))
            path.unlink()
        if args.only in (None, "ijbc"):
            path = folder / "ijbc.h5"
            n_images, n_pairs = synthesize(path, IJBC, args.scale, args.dim)
            fit = measure(["calibrate", "fit", path, "--method", "faircal", "--clusters",
                           args.clusters, "--out", folder / "cal.npz"])
            applied = measure(["calibrate", "apply", folder / "cal.npz", path, "--out",
                               folder / "scores.npz"])
            rows.append(("IJB-C-sized faircal fit", n_images, n_pairs, fit, None))
            rows.append(("IJB-C-sized faircal apply", n_images, n_pairs, applied, None))
            if "seconds" in fit and "seconds" in applied:
                total = {"seconds": fit["seconds"] + applied["seconds"],
                         "rss_mb": max(fit["rss_mb"], applied["rss_mb"])}
                rows.append(("IJB-C-sized faircal fit + apply", n_images, n_pairs, total, 300))
        if args.only in (None, "inst"):
            rows += _instance(folder, args)
    print(f"D = {args.dim}, K = {args.clusters}, scale {args.scale:g}")
    print("| what | images | pairs | seconds | peak MB | goal (s) |")
    print("|---|---|---|---|---|---|")
    for what, n_images, n_pairs, found, goal in rows:
        if "error" in found:
            print(f"| {what} | {n_images:,} | {n_pairs:,} | failed: {found['error']} | | |")
            continue
        goal_text = "" if goal is None else f"{goal}"
        if "ratio" in found:
            goal_text = (f"{found['ratio']:.2f}x the uncalibrated run (goal 1.3x), "
                         f"{found['rescored']:,} pairs rescored")
        print(f"| {what} | {n_images:,} | {n_pairs:,} | {found['seconds']:.1f} | "
              f"{found['rss_mb']:,.0f} | {goal_text} |")


if __name__ == "__main__":
    main()
