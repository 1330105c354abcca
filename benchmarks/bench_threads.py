"""How the engine's memory-bound work between the products scales with CPU threads.

The screening pass of inst-eval does, per tile, a product (every thread) and then memory-bound
work: masking, the run maxima and the scan for candidates, rescoring and the top set
(`PairCollector.add`). This script times that work alone on the same screened tiles, with
`torch.set_num_threads(w)` as the control for each width w from 1 to the machine's cores, and
with the engine's own policy (`engine.threads.for_work`: a thread per 8M cells, at most what the
caller has), and prints one table (seconds per tile, speed-up over one thread).

    python benchmarks/bench_threads.py                 # 8192 x 8192 tiles, D = 512
    python benchmarks/bench_threads.py --tile 4096 --repeats 5
"""
import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def cpu_model():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def scan_seconds(rows, tile, repeats, threads):
    """Seconds per tile of the memory-bound work of the screening pass, at `threads` threads
    (None: the engine's own policy with every thread available)."""
    import torch

    from mfftools.evaluation.engine import threads as policy
    from mfftools.evaluation.engine.blocks import ScoredBlock, Scorer
    from mfftools.evaluation.engine.scoring import PRECISIONS
    from mfftools.evaluation.engine.tiles import Tile
    from mfftools.evaluation.engine.topset import PairCollector, PairTopSet

    block_tile = Tile(0, tile, tile, 2 * tile)
    scorer = Scorer(rows, rows, PRECISIONS["fp32"], [block_tile])
    screened = scorer.product(block_tile).clone()
    available = os.cpu_count() if threads is None else threads
    saved = torch.get_num_threads()
    torch.set_num_threads(available)
    cells_per_thread = policy.CELLS_PER_THREAD
    if threads is not None:  # the control: the width is exactly `threads`
        policy.CELLS_PER_THREAD = 1
    try:
        best = float("inf")
        for _ in range(repeats):
            collector = PairCollector(PairTopSet(20000), scorer)
            scores = screened.clone()
            start = time.perf_counter()
            collector.add(ScoredBlock(block_tile, scores))
            best = min(best, time.perf_counter() - start)
    finally:
        policy.CELLS_PER_THREAD = cells_per_thread
        torch.set_num_threads(saved)
        scorer.close()
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tile", type=int, default=8192)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch

    from mfftools.evaluation.engine.scoring import normalise_rows_

    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(args.tile // 2, args.dim, generator=generator)
    rows = centres.repeat_interleave(4, dim=0)[: 2 * args.tile]
    rows = normalise_rows_(rows + 1.2 * torch.randn(rows.shape, generator=generator))
    cores = os.cpu_count()
    print(f"machine: {cpu_model()}, {cores} cores, torch {torch.__version__}")
    print(f"memory-bound work of the screening pass on one {args.tile} x {args.tile} tile "
          f"(D = {args.dim}), best of {args.repeats}")
    print("| threads | seconds per tile | speed-up over 1 |")
    print("|---|---|---|")
    one = scan_seconds(rows, args.tile, args.repeats, 1)
    print(f"| 1 | {one:.3f} | 1.00 |")
    for width in range(2, cores + 1):
        seconds = scan_seconds(rows, args.tile, args.repeats, width)
        print(f"| {width} | {seconds:.3f} | {one / seconds:.2f} |")
    policy = scan_seconds(rows, args.tile, args.repeats, None)
    print(f"| engine policy (all {cores} available) | {policy:.3f} | {one / policy:.2f} |")


if __name__ == "__main__":
    main()
