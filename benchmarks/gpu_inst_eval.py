"""GPU part of benchmarks/gpu_check.sh: the same results everywhere, then the time of each precision.

1. Equality: small files (random clustered rows, and rows of +-1 entries whose scores tie in
   large groups) are evaluated on the CPU (fp32 screening) and on the GPU with every screening
   precision; the results files must be identical apart from their `engine` entry (and the last
   bits of the float64 Gram sums of `score_distributions`).
2. Timing: for each N, synthetic clustered embeddings are generated on the GPU and written to an
   embeddings file; inst-eval (reading the file included) runs with each precision and is timed
   against the GEMM floor, the bare fp32 products of the same tiles from GPU-resident rows. Every
   precision must give the same results file; the table shows the pairs each one rescored.

    PYTHONPATH=. python benchmarks/gpu_inst_eval.py --sizes 40000,200000,1000000 --tile 32768
    PYTHONPATH=. python benchmarks/gpu_inst_eval.py --device cpu --quick   # a dry run on the CPU
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from mfftools.embeddings import EmbeddingsWriter, open_embeddings  # noqa: E402
from mfftools.evaluation.engine.tiles import plan_triangle  # noqa: E402
from mfftools.evaluation.instance import evaluate_instance  # noqa: E402
from bench_inst_eval import read_rows, tile_products  # noqa: E402

GROUPS = ["African", "Asian", "Caucasian", "Indian"]
PRECISIONS = {"cuda": ("fp32", "auto", "tf32", "fp16", "bf16"), "cpu": ("fp32", "auto", "bf16")}


def _labels(n_rows, seed):
    generator = np.random.default_rng(seed)
    sizes = generator.integers(1, 7, size=n_rows)
    sizes = sizes[: np.searchsorted(np.cumsum(sizes), n_rows) + 1]
    sizes[-1] -= sizes.sum() - n_rows
    identity = np.repeat(np.arange(len(sizes)), sizes)
    return identity, identity % len(GROUPS)


def write_file(path, emb_blocks, identity, group, dim):
    with EmbeddingsWriter.create(path, layout="images", dim=dim, group_names=GROUPS) as writer:
        first = 0
        for block in emb_blocks:
            last = first + len(block)
            writer.append(block, identity=identity[first:last], group=group[first:last],
                          path=[""] * (last - first))
            first = last
    return path


def lattice_file(path, n_rows=3000, dim=8, seed=0):
    """Rows of -1, 0 and +1 entries: few distinct scores, each shared by many pairs."""
    generator = np.random.default_rng(seed)
    identity, group = _labels(n_rows, seed)
    emb = generator.integers(-1, 2, size=(n_rows, dim)).astype(np.float32)
    emb[~emb.any(axis=1)] = 1.0
    return write_file(path, [emb], identity, group, dim)


def random_file(path, n_rows, dim, seed=0, device="cuda"):
    """Clustered identities generated on `device`, written in blocks."""
    identity, group = _labels(n_rows, seed)
    generator = torch.Generator(device=device).manual_seed(seed)
    centres = torch.randn(int(identity.max()) + 1, dim, generator=generator, device=device)
    ids = torch.from_numpy(identity).to(device)

    def blocks():
        for first in range(0, n_rows, 131072):
            last = min(first + 131072, n_rows)
            noise = torch.randn(last - first, dim, generator=generator, device=device)
            yield (centres[ids[first:last]] + 1.2 * noise).cpu().numpy()

    return write_file(path, blocks(), identity, group, dim)


def results_text(result):
    """The results file without `engine`, as JSON text (what must be identical); the float64
    Gram sums of `score_distributions` follow each BLAS's order, so they are compared to 12
    significant digits."""
    kept = {key: value for key, value in result.items() if key != "engine"}
    if "score_distributions" in kept:
        kept["score_distributions"] = json.loads(
            json.dumps(kept["score_distributions"]),
            parse_float=lambda text: float(f"{float(text):.12g}"))
    return json.dumps(kept)


def compare(path, tile, device):
    """Names of the precisions on `device` whose results differ from the CPU's fp32 ones."""
    kwargs = dict(targets=(1e-3, 1e-4), methods=("bisection", "exact"), tile=tile, progress=False)
    expected = results_text(evaluate_instance(open_embeddings(path), device="cpu",
                                              precision="fp32", **kwargs))
    return [
        precision for precision in PRECISIONS[device]
        if results_text(evaluate_instance(open_embeddings(path), device=device,
                                          precision=precision, **kwargs)) != expected
    ]


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def gemm_floor(path, tile, device):
    """Seconds of the bare fp32 products of the tiles, from rows already on the device."""
    rows = read_rows(path, device)
    _sync(device)
    start = time.perf_counter()
    tile_products(rows, rows, plan_triangle(len(rows), tile))
    return time.perf_counter() - start


def timed(path, args, precision):
    if args.device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    result = evaluate_instance(open_embeddings(path), targets=(args.fpr,), tile=args.tile,
                               device=args.device, precision=precision, progress=False)
    _sync(args.device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30 if args.device == "cuda" else float("nan")
    return seconds, peak, result


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--sizes", default="40000,200000,1000000")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--tile", type=int, default=32768)
    parser.add_argument("--fpr", type=float, default=1e-5)
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--quick", action="store_true", help="N = 20000 only, after the checks")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_inst_eval: CUDA is not available")
    card = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    failed = False
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for label, path in (
            ("tied scores", lattice_file(folder / "lattice.h5")),
            ("random", random_file(folder / "random.h5", 4000, 128, device=args.device)),
        ):
            different = compare(path, 1000, args.device)
            print(f"{card} ({', '.join(PRECISIONS[args.device])}) vs CPU fp32, {label}: "
                  + ("identical" if not different else f"DIFFERENT for {', '.join(different)}"))
            failed |= bool(different)
        print(f"\ninst-eval on {card}: D={args.dim}, tile={args.tile}, target FPR {args.fpr:g}")
        print(f"{'N':>9} {'what':>12} {'seconds':>8} {'x floor':>8} {'fp32/this':>10} "
              f"{'rescored':>11} {'peak GB':>8} {'same':>5}")
        sizes = [20000] if args.quick else [int(s) for s in args.sizes.split(",")]
        for n in sizes:
            path = random_file(folder / f"emb_{n}.h5", n, args.dim, device=args.device)
            floor = gemm_floor(path, args.tile, args.device)
            print(f"{n:>9} {'GEMM floor':>12} {floor:>8.2f}", flush=True)
            texts, fp32_seconds = set(), None
            for precision in PRECISIONS[args.device]:
                seconds, peak, result = timed(path, args, precision)
                texts.add(results_text(result))
                name = result["engine"]["precision"]
                if precision == "fp32":
                    fp32_seconds = seconds
                speed_up = f"{fp32_seconds / seconds:.2f}" if fp32_seconds else ""
                print(f"{n:>9} {precision if precision != 'auto' else 'auto ' + name:>12} "
                      f"{seconds:>8.2f} {seconds / floor:>8.2f} {speed_up:>10} "
                      f"{result['engine']['n_rescored_pairs']:>11} {peak:>8.1f} "
                      f"{'yes' if len(texts) == 1 else 'NO':>5}", flush=True)
            failed |= len(texts) != 1
            path.unlink()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
