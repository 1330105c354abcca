"""Benchmark of open-set identification: ident-eval against the fp32 GEMM floor of its products.

A gallery file (one image per identity: the templates) and a probe file (half of the images of
enrolled identities: mated searches; half of others: non-mated), synthetic clustered embeddings,
D = 512. Whole processes are timed (Python's start, the imports and the reading of the files
included), each in its own process so that peak memory is its own:
  * the floor: the bare fp32 products of every search with every template, tile by tile into a
    reused buffer, after reading both files;
  * ident-eval (`mfftools ident-eval --gallery G --probes P --precision P`) at each precision,
    checking that every precision writes the same results (apart from `engine`).
The dense way's memory (the searches x templates float32 score matrix alone) is printed beside.

    python benchmarks/bench_ident_eval.py                          # 100k searches x 30k templates
    python benchmarks/bench_ident_eval.py --searches 20000 --templates 6000    # a quick check
"""
import argparse
import json
import resource
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_inst_eval import (  # noqa: E402
    machine, read_rows, same_results, tile_products, timed_process)

GROUPS = ["African", "Asian", "Caucasian", "Indian"]


def synthesize(folder, n_searches, n_templates, dim, seed=0):
    """Gallery and probe files: templates' identities 0..T-1; mated probes of them, non-mated
    probes of identities T.. (each search image its own draw around its identity's centre)."""
    import torch

    from mfftools.embeddings import EmbeddingsWriter

    generator = torch.Generator().manual_seed(seed)
    n_mated = n_searches // 2
    n_others = n_searches - n_mated
    centres = torch.randn(n_templates + n_others, dim, generator=generator)
    rng = np.random.default_rng(seed)
    probe_identity = np.concatenate([rng.integers(0, n_templates, n_mated),
                                     n_templates + np.arange(n_others)])

    def write(path, identity):
        group = identity % len(GROUPS)
        with EmbeddingsWriter.create(path, layout="images", dim=dim, group_names=GROUPS) as writer:
            for first in range(0, len(identity), 65536):
                ids = identity[first : first + 65536]
                noise = torch.randn(len(ids), dim, generator=generator)
                writer.append((centres[torch.from_numpy(ids)] + 1.2 * noise).numpy(),
                              identity=ids, group=group[first : first + 65536],
                              path=[""] * len(ids))
        return path

    return (write(folder / "gallery.h5", np.arange(n_templates)),
            write(folder / "probes.h5", probe_identity))


def gemm_floor(gallery, probes, tile):
    """The bare fp32 products of every search with every template, after reading both files."""
    from mfftools.evaluation.engine.tiles import plan_rectangle

    templates, searches = read_rows(gallery, "cpu"), read_rows(probes, "cpu")
    tile_products(searches, templates, plan_rectangle(len(searches), len(templates), tile))


def run_one(args):
    mode, gallery, probes = args.one
    if mode == "gemm":
        gemm_floor(gallery, probes, args.tile)
    else:
        from mfftools.cli import main

        main(["-q", "ident-eval", "--gallery", gallery, "--probes", probes, "--fpir", "1e-3",
              "--tile", str(args.tile), "--device", "cpu", "--precision", mode,
              "--json", args.out], standalone_mode=False)
    print(json.dumps({"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def measure(mode, gallery, probes, args, out=None):
    command = [sys.executable, __file__, "--one", mode, str(gallery), str(probes),
               "--tile", str(args.tile)]
    return timed_process(command + (["--out", str(out)] if out else []))


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--searches", type=int, default=100000)
    parser.add_argument("--templates", type=int, default=30000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--tile", type=int, default=8192)
    parser.add_argument("--precisions", default="auto,fp32,bf16")
    parser.add_argument("--one", nargs=3, metavar=("MODE", "GALLERY", "PROBES"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return run_one(args)
    dense_gb = args.searches * args.templates * 4 / 2**30
    print(f"ident-eval benchmark: {args.searches} searches x {args.templates} templates, "
          f"D={args.dim}, tile={args.tile}: {machine('cpu')}")
    print(f"whole processes (start, imports, reading the files included); ratio = time / floor; "
          f"the dense score matrix alone would take {dense_gb:.1f} GB")
    print(f"{'what':>16} {'seconds':>8} {'peak MB':>8} {'ratio':>6} {'rescored':>10}")
    with tempfile.TemporaryDirectory() as folder:
        gallery, probes = synthesize(Path(folder), args.searches, args.templates, args.dim)
        floor = measure("gemm", gallery, probes, args)
        print(f"{'fp32 GEMM floor':>16} {floor['seconds']:>8.2f} {floor['rss_mb']:>8.0f} "
              f"{1.0:>6.2f}", flush=True)
        outputs = []
        for precision in args.precisions.split(","):
            out = Path(folder) / f"ident_{precision}.json"
            ours = measure(precision, gallery, probes, args, out)
            if "error" in ours:
                print(f"{precision:>16} failed: {ours['error']}", flush=True)
                continue
            engine = json.loads(out.read_text())["engine"]
            label = f"auto ({engine['precision']})" if precision == "auto" else precision
            print(f"{label:>16} {ours['seconds']:>8.2f} {ours['rss_mb']:>8.0f} "
                  f"{ours['seconds'] / floor['seconds']:>6.2f} {engine['n_rescored_pairs']:>10}",
                  flush=True)
            outputs.append(out)
        if len(outputs) > 1:
            print(f"same results at every precision: {'yes' if same_results(outputs) else 'NO'}")


if __name__ == "__main__":
    main()
