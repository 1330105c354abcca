"""GPU part of benchmarks/gpu_check.sh: CUDA equals CPU, then inst-eval against the GEMM floor.

1. Equality: a small file whose scores are exact in fp32 whatever the summation order (every
   embedding has 16 entries of +-1, so normalised entries are +-1/4 and products are multiples of
   1/16) is evaluated on CPU and on CUDA; every threshold, count and rate must be identical, the
   similarity statistics equal to 1e-6. A random file is compared too (reported, to 1e-6).
2. Timing: for each N, synthetic clustered embeddings are generated on the GPU and written to an
   embeddings file; inst-eval on CUDA (reading the file included) is timed against the GEMM floor,
   the bare fp32 products of the same tiles from GPU-resident rows.

    PYTHONPATH=. python benchmarks/gpu_inst_eval.py --sizes 40000,200000,1000000 --tile 32768
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mfftools.embeddings import EmbeddingsWriter, open_embeddings  # noqa: E402
from mfftools.evaluation.instance import evaluate_instance, exact_matmul  # noqa: E402
from mfftools.evaluation.tiles import plan_tiles  # noqa: E402

GROUPS = ["African", "Asian", "Caucasian", "Indian"]
SUMMARY_KEYS = ("threshold", "tpr", "fpr", "converged", "instance", "groups", "fairness",
                "n_accepted_genuine", "n_accepted_impostor", "group_fmr_matrix")


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


def lattice_file(path, n_rows=3000, dim=64, seed=0):
    """Rows with 16 entries of +-1 (norm 4): every score is exact in fp32."""
    generator = np.random.default_rng(seed)
    identity, group = _labels(n_rows, seed)
    emb = np.zeros((n_rows, dim), dtype=np.float32)
    for row in range(n_rows):
        # identities share most of their pattern, so genuine scores are high
        base = np.random.default_rng(int(identity[row])).permutation(dim)[:16]
        own = generator.permutation(dim)[:16]
        cols = np.where(generator.random(16) < 0.7, base, own)
        cols = np.unique(cols)
        extra = [c for c in generator.permutation(dim) if c not in cols][: 16 - len(cols)]
        cols = np.concatenate([cols, extra]).astype(int)
        signs = np.where(np.random.default_rng(int(identity[row]) + 7).random(dim) < 0.5, -1, 1)
        emb[row, cols] = signs[cols]
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


def compare(path, tile, exact):
    kwargs = dict(targets=(1e-3, 1e-4), methods=("bisection", "exact"), tile=tile, progress=False)
    on_cpu = evaluate_instance(open_embeddings(path), device="cpu", **kwargs)
    on_cuda = evaluate_instance(open_embeddings(path), device="cuda", **kwargs)
    problems = []
    for a, b in zip(on_cpu["results"], on_cuda["results"]):
        for key in SUMMARY_KEYS:
            if a[key] != b[key] and (exact or not _close(a[key], b[key])):
                problems.append(f"{a['target_fpr']:g}/{a['method']} {key}: cpu {a[key]} cuda {b[key]}")
    for name, stats in on_cpu["similarity"].items():
        for key, value in stats.items():
            other = on_cuda["similarity"][name][key]
            if not _close(value, other):
                problems.append(f"similarity {name} {key}: cpu {value} cuda {other}")
    return problems


def _close(a, b, tol=1e-6):
    if isinstance(a, dict):
        return all(_close(a[k], b[k], tol) for k in a)
    if isinstance(a, list):
        return all(_close(x, y, tol) for x, y in zip(a, b))
    if a is None or b is None or isinstance(a, bool):
        return a == b
    return abs(a - b) <= tol * max(1.0, abs(a))


def gemm_floor(path, tile):
    rows = torch.from_numpy(open_embeddings(path).read()).cuda()
    rows = torch.nn.functional.normalize(rows, dim=1)
    tiles = plan_tiles(len(rows), tile)
    buffer = torch.empty(max(t.shape[0] * t.shape[1] for t in tiles), device="cuda")
    with exact_matmul():
        torch.cuda.synchronize()
        start = time.perf_counter()
        for t in tiles:
            out = buffer[: t.shape[0] * t.shape[1]].view(*t.shape)
            torch.mm(rows[t.row_start : t.row_stop], rows[t.col_start : t.col_stop].T, out=out)
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--sizes", default="40000,200000,1000000")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--tile", type=int, default=32768)
    parser.add_argument("--fpr", type=float, default=1e-5)
    parser.add_argument("--quick", action="store_true", help="N = 20000 only, after the checks")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("gpu_inst_eval: CUDA is not available")
    card = torch.cuda.get_device_name()
    failed = False
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        for label, path, exact in (
            ("lattice (exact scores)", lattice_file(folder / "lattice.h5"), True),
            ("random", random_file(folder / "random.h5", 4000, 128), False),
        ):
            problems = compare(path, 1000, exact)
            print(f"CUDA vs CPU, {label}: {'identical' if not problems else 'DIFFERENT'}")
            for line in problems[:20]:
                print("   ", line)
            failed |= bool(problems) and exact
        print(f"\ninst-eval on {card}: D={args.dim}, tile={args.tile}, target FPR {args.fpr:g}")
        print(f"{'N':>9} {'inst-eval s':>12} {'GEMM floor s':>13} {'ratio':>6} {'GPU peak GB':>12}")
        sizes = [20000] if args.quick else [int(s) for s in args.sizes.split(",")]
        for n in sizes:
            path = random_file(folder / f"emb_{n}.h5", n, args.dim)
            floor = gemm_floor(path, args.tile)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            evaluate_instance(open_embeddings(path), targets=(args.fpr,), tile=args.tile,
                              device="cuda", progress=False)
            torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            peak = torch.cuda.max_memory_allocated() / 2**30
            print(f"{n:>9} {seconds:>12.2f} {floor:>13.2f} {seconds / floor:>6.2f} {peak:>12.1f}",
                  flush=True)
            path.unlink()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
