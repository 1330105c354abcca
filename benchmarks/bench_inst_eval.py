"""Benchmark of the instance protocol: each screening precision against the fp32 GEMM floor.

For each N (D = 512 by default, synthetic clustered identities of RFW-like sizes written to an
embeddings file) it measures whole processes, Python's start, the imports and the reading of the
file included, each in its own process so that peak memory is its own:
  * the floor: the bare fp32 products of the same upper-triangle tiles into a reused buffer,
    nothing else;
  * inst-eval (`mfftools inst-eval FILE --precision P`) at each precision, checking that every
    precision writes the same results file (apart from its `engine` entry);
  * the dense reference, where it fits: the original's way (full N x N matrix, 70 bisection scans,
    per-row counts from full masks).
and prints one table (wall seconds, peak RSS, ratio to the floor, pairs rescored).

    python benchmarks/bench_inst_eval.py                       # N = 4k, 8k, 40k, 80k
    python benchmarks/bench_inst_eval.py --quick               # N = 2k, 4k: a check that it runs
    python benchmarks/bench_inst_eval.py --sizes 40000 --precisions auto,fp32,bf16
    python benchmarks/bench_inst_eval.py --sizes 200000 --device cuda --precisions auto,fp32,fp16
"""
import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GROUPS = ["African", "Asian", "Caucasian", "Indian"]
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16")


def synthesize(path, n_rows, dim, seed=0, device="cpu"):
    """Clustered identities of 1..6 images (mean about 3.5), four groups, written as float32."""
    import torch

    from mfftools.embeddings import EmbeddingsWriter

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


def read_rows(path, device):
    """The file's rows, normalised (float32), on `device`."""
    import torch

    from mfftools.embeddings import open_embeddings

    rows = torch.from_numpy(open_embeddings(path).read()).to(device)
    return torch.nn.functional.normalize(rows, dim=1)


def tile_products(left, right, tiles):
    """The bare fp32 products of `tiles`, each into one reused buffer: the GEMM floor."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    buffer = torch.empty(max(t.shape[0] * t.shape[1] for t in tiles), device=left.device)
    for t in tiles:
        out = buffer[: t.shape[0] * t.shape[1]].view(*t.shape)
        torch.mm(left[t.row_start : t.row_stop], right[t.col_start : t.col_stop].T, out=out)
    if left.device.type == "cuda":
        torch.cuda.synchronize()


def gemm_floor(path, tile, device):
    """The bare fp32 products of the tiles inst-eval scores, after reading the file."""
    from mfftools.evaluation.engine.tiles import plan_triangle

    rows = read_rows(path, device)
    tile_products(rows, rows, plan_triangle(len(rows), tile))


def inst_eval(path, tile, target, device, precision, out):
    from mfftools.cli import main

    main(["-q", "inst-eval", str(path), "--fpr", str(target), "--tile", str(tile), "--device",
          device, "--precision", precision, "--json", str(out)], standalone_mode=False)


def dense_reference(path, target, device):
    """The original's way: N x N scores and masks, 70 bisection scans, per-row counts."""
    import torch

    from mfftools.embeddings import open_embeddings

    emb = open_embeddings(path)
    feats = torch.nn.functional.normalize(torch.from_numpy(emb.read()), dim=1).to(device)
    identity = torch.from_numpy(emb.identity).to(device)
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


def run_one(args):
    """One measurement in this process; prints its peak memory as a JSON line."""
    mode, path = args.one
    if mode == "gemm":
        gemm_floor(path, args.tile, args.device)
    elif mode == "dense":
        dense_reference(path, args.fpr, args.device)
    else:
        inst_eval(path, args.tile, args.fpr, args.device, mode, args.out)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gpu = None
    if args.device.startswith("cuda"):
        import torch

        gpu = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps({"rss_mb": peak, "gpu_mb": gpu}))


def timed_process(command):
    """Wall seconds of a whole process, and what it printed last as JSON (its peak memory)."""
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        lines = done.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else "failed"}
    return {"seconds": seconds, **json.loads(done.stdout.strip().splitlines()[-1])}


def measure(mode, path, args, out=None):
    """Wall seconds of a whole process doing `mode`, and its peak memory."""
    command = [sys.executable, __file__, "--one", mode, str(path), "--tile", str(args.tile),
               "--fpr", str(args.fpr), "--device", args.device]
    return timed_process(command + (["--out", str(out)] if out is not None else []))


def machine(device):
    """The machine in words: CPU model, the flags that matter, cores; or the GPU."""
    import torch

    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name()}, torch {torch.__version__}"
    model, flags = platform.processor() or "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model == (platform.processor() or "unknown CPU"):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    present = ", ".join(flag for flag in CPU_FLAGS if flag in flags) or "none of " + ", ".join(CPU_FLAGS)
    return f"{model} ({present}), {os.cpu_count()} cores, torch {torch.__version__}"


def same_results(paths):
    """True when every results file is the same apart from its `engine` entry."""
    texts = set()
    for path in paths:
        data = json.loads(Path(path).read_text())
        data.pop("engine")
        texts.add(json.dumps(data, sort_keys=True))
    return len(texts) == 1


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--sizes", default="4000,8000,40000,80000")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--tile", type=int, default=8192)
    parser.add_argument("--fpr", type=float, default=1e-5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precisions", default="auto,fp32,bf16")
    parser.add_argument("--dense-max", type=int, default=8000,
                        help="largest N for the dense reference (it needs about 8 N^2 bytes)")
    parser.add_argument("--quick", action="store_true", help="N = 2000, 4000 only")
    parser.add_argument("--one", nargs=2, metavar=("MODE", "FILE"), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return run_one(args)
    sizes = [2000, 4000] if args.quick else [int(s) for s in args.sizes.split(",")]
    precisions = args.precisions.split(",")
    print(f"inst-eval benchmark: D={args.dim}, tile={args.tile}, target FPR {args.fpr:g}, "
          f"{args.device}: {machine(args.device)}")
    print("whole processes (start, imports, reading the file included); ratio = time / floor")
    print(f"{'N':>8} {'what':>15} {'seconds':>8} {'peak MB':>8} {'ratio':>6} {'rescored':>10}"
          f" {'same results':>13}")
    with tempfile.TemporaryDirectory() as folder:
        for n in sizes:
            path = synthesize(Path(folder) / f"emb_{n}.h5", n, args.dim)
            floor = measure("gemm", path, args)
            print(_row(n, "fp32 GEMM floor", floor, floor), flush=True)
            outputs = []
            for precision in precisions:
                out = Path(folder) / f"result_{n}_{precision}.json"
                ours = measure(precision, path, args, out)
                if "error" not in ours:
                    engine = json.loads(out.read_text())["engine"]
                    ours["rescored"] = engine["n_rescored_pairs"]
                    ours["what"] = f"{precision} ({engine['precision']})" if precision == "auto" \
                        else precision
                    outputs.append(out)
                print(_row(n, ours.get("what", precision), ours, floor), flush=True)
            if len(outputs) > 1:
                print(f"{n:>8} {'':>15} {'':>8} {'':>8} {'':>6} {'':>10} "
                      f"{'yes' if same_results(outputs) else 'NO':>13}", flush=True)
            if n <= args.dense_max:
                print(_row(n, "dense (original)", measure("dense", path, args), floor), flush=True)
            path.unlink()


def _row(n, what, measured, floor):
    if "error" in measured:
        return f"{n:>8} {what:>15} failed: {measured['error']}"
    memory = measured["gpu_mb"] if measured["gpu_mb"] is not None else measured["rss_mb"]
    ratio = measured["seconds"] / floor["seconds"] if "seconds" in floor else float("nan")
    rescored = measured.get("rescored", "")
    return (f"{n:>8} {what:>15} {measured['seconds']:>8.2f} {memory:>8.0f} {ratio:>6.2f} "
            f"{rescored:>10}")


if __name__ == "__main__":
    main()
