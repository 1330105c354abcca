"""Benchmark of `mfftools.instance` called every epoch from a plain PyTorch training loop.

A linear embedding head (D -> D) is trained on fixed backbone features; after each epoch it
embeds N validation images (synthetic clustered identities of RFW-like sizes, four groups) and
`mfftools.instance` evaluates the tensor at FPR 1e-5 in the same process. Measured in this
process (no start-up, no imports: a training loop has paid them), per epoch:
  * the head's epoch of training (for scale);
  * `mfftools.instance` on the tensor (arrays in, results out; nothing written);
  * the way without the API: the tensor written to an embeddings file (`mfftools.save`) and
    that file evaluated (`inst-eval`'s function);
  * the floor: the bare fp32 products of the same upper-triangle tiles into a reused buffer.
The table gives seconds and the ratio to the floor, checks that the API and the file give the
same numbers, and that torch's thread count and matmul precision are the caller's after each
call. The machine's load average is printed: timings on a shared machine are only indicative.

    python benchmarks/bench_api_epoch.py                      # N = 40,000, D = 512, 3 epochs
    python benchmarks/bench_api_epoch.py --quick              # N = 4,000, 2 epochs: it runs
    python benchmarks/bench_api_epoch.py --device cuda        # the loop on a GPU (gpu_check.sh)
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import mfftools  # noqa: E402
from bench_inst_eval import machine, tile_products  # noqa: E402
from mfftools.api.evaluations import instance_results  # noqa: E402
from mfftools.evaluation.engine.tiles import plan_triangle  # noqa: E402

GROUPS = ["African", "Asian", "Caucasian", "Indian"]


def validation_set(n_rows, dim, seed=0):
    """Backbone features of N images of clustered identities (1..6 images each) and their
    identity and group labels."""
    generator = np.random.default_rng(seed)
    sizes = generator.integers(1, 7, size=n_rows)
    sizes = sizes[: np.searchsorted(np.cumsum(sizes), n_rows) + 1]
    sizes[-1] -= sizes.sum() - n_rows
    identity = np.repeat(np.arange(len(sizes)), sizes)
    group = np.array(GROUPS)[np.repeat(np.arange(len(sizes)) % len(GROUPS), sizes)]
    centres = torch.from_numpy(generator.standard_normal((len(sizes), dim)).astype(np.float32))
    noise = torch.from_numpy(generator.standard_normal((n_rows, dim)).astype(np.float32))
    return centres[torch.from_numpy(identity)] + 1.2 * noise, identity, group


def train_epoch(head, optimiser, features, labels, batch=512):
    """One epoch of a softmax-trained head on (features, labels)."""
    classifier = torch.nn.functional.normalize
    for first in range(0, len(features), batch):
        embedded = head(features[first : first + batch])
        logits = 16.0 * classifier(embedded, dim=1) @ classifier(head.weight, dim=1).T
        loss = torch.nn.functional.cross_entropy(logits, labels[first : first + batch])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()


def timed(function):
    """(seconds, value) of `function()`, the GPU's queued work included."""
    synchronize = torch.cuda.synchronize if torch.cuda.is_initialized() else (lambda: None)
    synchronize()
    start = time.perf_counter()
    value = function()
    synchronize()
    return time.perf_counter() - start, value


def caller_settings():
    return torch.get_num_threads(), torch.get_float32_matmul_precision()


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--size", type=int, default=40000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--fpr", type=float, default=1e-5)
    parser.add_argument("--device", default="cpu", help="where the loop runs: cpu or cuda")
    parser.add_argument("--quick", action="store_true", help="N = 4,000, 2 epochs")
    args = parser.parse_args()
    if args.quick:
        args.size, args.epochs, args.fpr = 4000, 2, 1e-3
    torch.manual_seed(0)
    device = torch.device(args.device)
    features, identity, group = validation_set(args.size, args.dim)
    features = features.to(device)
    train_features = features[: min(len(features), 20000)]
    train_labels = torch.randint(0, args.dim, (len(train_features),)).to(device)
    head = torch.nn.Linear(args.dim, args.dim, bias=False).to(device)
    optimiser = torch.optim.SGD(head.parameters(), lr=0.1)
    print(f"mfftools.instance every epoch: N={args.size}, D={args.dim}, target FPR {args.fpr:g}, "
          f"{args.device}: {machine(args.device)}, load average {os.getloadavg()[0]:.1f}")
    print("in-process seconds (a training loop has started Python and imported everything); "
          "ratio = time / fp32 GEMM floor")
    print(f"{'epoch':>5} {'what':>28} {'seconds':>8} {'ratio':>6}")
    settings = caller_settings()
    tiles = plan_triangle(args.size, 8192)
    with tempfile.TemporaryDirectory() as folder:
        for epoch in range(1, args.epochs + 1):
            head.train()
            seconds, _ = timed(lambda: train_epoch(head, optimiser, train_features,
                                                   train_labels))
            head.eval()
            with torch.no_grad():
                embeddings = head(features)
            floor, _ = timed(lambda: tile_products(
                *(2 * [torch.nn.functional.normalize(embeddings, dim=1)]), tiles))
            api, result = timed(lambda: mfftools.instance(
                embeddings, identity, group, fpr=args.fpr,
                device="auto" if device.type == "cuda" else "cpu"))  # auto: the tensor's GPU
            assert caller_settings() == settings, "the call changed the caller's settings"
            path = Path(folder) / f"epoch{epoch}.h5"
            written, _ = timed(lambda: mfftools.save(path, embeddings, identity, group))
            from_file, file_result = timed(lambda: instance_results(path, fpr=args.fpr,
                                                                    device=args.device))
            same = _numbers(result.data) == _numbers(file_result)
            entry = result.data["results"][0]
            rows = [("train the head (one epoch)", seconds), ("fp32 GEMM floor", floor),
                    ("mfftools.instance(tensor)", api), ("save the file", written),
                    ("evaluate the file", from_file), ("save + evaluate", written + from_file)]
            for what, value in rows:
                print(f"{epoch:>5} {what:>28} {value:>8.2f} {value / floor:>6.2f}", flush=True)
            print(f"{epoch:>5} {'':>28} TPR {entry['tpr']:.4f}, instance TPR mean "
                  f"{entry['instance']['tpr_mean']:.4f}; same numbers by file: "
                  f"{'yes' if same else 'NO'}", flush=True)
            path.unlink()


def _numbers(data):
    """What both ways compute (not where the rows came from)."""
    return {key: value for key, value in data.items() if key not in ("images", "source")}


if __name__ == "__main__":
    main()
