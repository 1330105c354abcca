"""Benchmark of the instance protocol: inst-eval against the GEMM floor and the dense original way.

For each N (D = 512 by default, synthetic clustered identities of RFW-like sizes written to an
embeddings file) it measures, each in a fresh process so that peak memory is its own:
  * inst-eval: `evaluate_instance` on the file (reading, the pass, thresholds, statistics);
  * the GEMM floor: the bare fp32 matrix products of the same tiles on the same device;
  * the dense reference, where it fits: the original's way (full N x N matrix, 70 bisection scans,
    per-row counts from full masks).
and prints one table (wall seconds, peak RSS, ratios).

    python benchmarks/bench_inst_eval.py                 # N = 4k, 8k, 40k, 100k
    python benchmarks/bench_inst_eval.py --quick         # N = 2k, 4k: a check that it runs
    python benchmarks/bench_inst_eval.py --sizes 8000 --dense-max 8000 --device cuda
"""
import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mfftools.embeddings import EmbeddingsWriter, open_embeddings  # noqa: E402
from mfftools.evaluation.instance import evaluate_instance  # noqa: E402
from mfftools.evaluation.engine.tiles import plan_triangle as plan_tiles  # noqa: E402

GROUPS = ["African", "Asian", "Caucasian", "Indian"]


def synthesize(path, n_rows, dim, seed=0, device="cpu"):
    """Clustered identities of 1..6 images (mean about 3.5), four groups, written as float32."""
    generator = np.random.default_rng(seed)
    sizes = generator.integers(1, 7, size=n_rows)
    sizes = sizes[: np.searchsorted(np.cumsum(sizes), n_rows) + 1]
    sizes[-1] -= sizes.sum() - n_rows
    identity = np.repeat(np.arange(len(sizes)), sizes)
    group = np.repeat(np.arange(len(sizes)) % len(GROUPS), sizes)
    torch_gen = torch.Generator(device=device).manual_seed(seed)
    with EmbeddingsWriter.create(path, layout="images", dim=dim, group_names=GROUPS) as writer:
        block = 65536
        for first in range(0, n_rows, block):
            last = min(first + block, n_rows)
            rows = identity[first:last]
            centres = torch.randn(int(rows.max()) + 1 - int(rows.min()), dim,
                                  generator=torch_gen, device=device)
            noise = torch.randn(last - first, dim, generator=torch_gen, device=device)
            emb = centres[torch.as_tensor(rows - rows.min(), device=device)] + 1.2 * noise
            writer.append(emb.cpu().numpy(), identity=rows, group=group[first:last],
                          path=[""] * (last - first))
    return path


def gemm_floor(path, tile, device):
    """Seconds of the bare fp32 products of the tiles inst-eval scores, nothing else."""
    rows = torch.nn.functional.normalize(torch.from_numpy(open_embeddings(path).read()), dim=1)
    rows = rows.to(device)
    tiles = plan_tiles(len(rows), tile)
    largest = max(t.shape[0] * t.shape[1] for t in tiles)
    buffer = torch.empty(largest, device=device)
    with exact_matmul():
        _sync(device)
        start = time.perf_counter()
        for t in tiles:
            out = buffer[: t.shape[0] * t.shape[1]].view(*t.shape)
            torch.mm(rows[t.row_start : t.row_stop], rows[t.col_start : t.col_stop].T, out=out)
        _sync(device)
    return time.perf_counter() - start


def dense_reference(path, target, device):
    """The original's way: N x N scores and masks, 70 bisection scans, per-row counts."""
    emb = open_embeddings(path)
    feats = torch.nn.functional.normalize(torch.from_numpy(emb.read()), dim=1).to(device)
    identity = torch.from_numpy(emb.identity).to(device)
    start = time.perf_counter()
    scores = (feats @ feats.T).clamp(-1, 1)
    same = identity[:, None] == identity[None, :]
    impostor = ~same
    n_impostor = impostor.sum()
    lo, hi, tol = -1.0, 1.0, target / 10
    for _ in range(70):
        thr = (lo + hi) / 2
        accepted = scores > thr
        fpr = (accepted & impostor).sum() / n_impostor
        error = fpr - target
        if error < tol and error > 0:
            break
        lo, hi = (thr, hi) if fpr > target else (lo, thr)
    accepted = scores > thr
    ((accepted & same).sum(-1) - 1, (accepted & impostor).sum(-1))
    _sync(device)
    return time.perf_counter() - start


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _peak_mb(device):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if torch.device(device).type == "cuda":
        return peak, torch.cuda.max_memory_allocated() / 2**20
    return peak, None


def run_one(mode, path, tile, target, device):
    """One measurement in this process; prints a JSON line."""
    if mode == "inst-eval":
        start = time.perf_counter()
        evaluate_instance(open_embeddings(path), targets=(target,), tile=tile, device=device,
                          progress=False)
        seconds = time.perf_counter() - start
    elif mode == "gemm":
        seconds = gemm_floor(path, tile, device)
    else:
        seconds = dense_reference(path, target, device)
    rss, gpu = _peak_mb(device)
    print(json.dumps({"seconds": seconds, "rss_mb": rss, "gpu_mb": gpu}))


def measure(mode, path, args):
    command = [sys.executable, __file__, "--one", mode, str(path), "--tile", str(args.tile),
               "--fpr", str(args.fpr), "--device", args.device]
    out = subprocess.run(command, capture_output=True, text=True)
    if out.returncode:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--sizes", default="4000,8000,40000,100000")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--tile", type=int, default=8192)
    parser.add_argument("--fpr", type=float, default=1e-5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dense-max", type=int, default=8000,
                        help="largest N for the dense reference (it needs about 8 N^2 bytes)")
    parser.add_argument("--quick", action="store_true", help="N = 2000, 4000 only")
    parser.add_argument("--one", nargs=2, metavar=("MODE", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return run_one(args.one[0], args.one[1], args.tile, args.fpr, args.device)
    sizes = [2000, 4000] if args.quick else [int(s) for s in args.sizes.split(",")]
    name = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU x{torch.get_num_threads()}"
    print(f"inst-eval benchmark: D={args.dim}, tile={args.tile}, target FPR {args.fpr:g}, {name}")
    header = (f"{'N':>8} {'inst-eval s':>12} {'peak MB':>9} {'GEMM floor s':>13} {'ratio':>6} "
              f"{'dense s':>9} {'dense MB':>9} {'speed-up':>9}")
    print(header)
    with tempfile.TemporaryDirectory() as folder:
        for n in sizes:
            path = synthesize(Path(folder) / f"emb_{n}.h5", n, args.dim)
            ours = measure("inst-eval", path, args)
            floor = measure("gemm", path, args)
            dense = measure("dense", path, args) if n <= args.dense_max else None
            if "error" in ours:
                print(f"{n:>8} inst-eval failed: {ours['error']}")
                continue
            mem = ours["gpu_mb"] if ours["gpu_mb"] is not None else ours["rss_mb"]
            ratio = ours["seconds"] / floor["seconds"] if "seconds" in floor else float("nan")
            dense_s = dense_mb = speedup = "-"
            if dense is not None and "seconds" in dense:
                dense_s = f"{dense['seconds']:.2f}"
                dense_mb = f"{dense['gpu_mb'] or dense['rss_mb']:.0f}"
                speedup = f"{dense['seconds'] / ours['seconds']:.1f}x"
            elif dense is not None:
                dense_s = "failed"
            print(f"{n:>8} {ours['seconds']:>12.2f} {mem:>9.0f} {floor.get('seconds', float('nan')):>13.2f} "
                  f"{ratio:>6.2f} {dense_s:>9} {dense_mb:>9} {speedup:>9}", flush=True)
            path.unlink()


if __name__ == "__main__":
    main()
