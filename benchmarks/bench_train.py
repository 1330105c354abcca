"""Training throughput: the trainer's optimisation step against a bare forward + backward.

Both run the same network, head and loss on the same device-resident batch; the trainer's step
adds what the loop does per batch (flips and MixFair partners drawn, AMP loss scaling,
zero_grad, the SGD step, the running loss). Prints images/s of each and their ratio (goal >= 0.85).
Data loading is not included: it runs in worker processes alongside the GPU.

    PYTHONPATH=. python benchmarks/bench_train.py --arch r34 --device cuda --batch-size 128
    PYTHONPATH=. python benchmarks/bench_train.py --quick
"""
import argparse
import time

import torch

from mfftools.dist import resolve_device
from mfftools.train.config import ModelConfig, OptimConfig
from mfftools.train.step import BatchRandomness, TrainingModule, build_network
from mfftools.train.trainer import optimisation_step


def _synchronise(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(run_once, steps, warmup, device):
    for _ in range(warmup):
        run_once()
    _synchronise(device)
    started = time.perf_counter()
    for _ in range(steps):
        run_once()
    _synchronise(device)
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny batch and few steps (a smoke run)")
    parser.add_argument("--arch", default="r34", choices=["r18", "r34", "r50", "r100"])
    parser.add_argument("--head", default="mixfair", choices=["mixfair", "cosface", "arcface"])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--batch-size", type=int, default=None, help="default 128 (quick: 4)")
    parser.add_argument("--classes", type=int, default=None, help="identities; default 7000 (quick: 50)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps; default 30 (quick: 2)")
    parser.add_argument("--no-amp", action="store_true", help="float32 on CUDA too")
    args = parser.parse_args()
    batch = args.batch_size or (4 if args.quick else 128)
    classes = args.classes or (50 if args.quick else 7000)
    steps = args.steps or (2 if args.quick else 30)
    warmup = 1 if args.quick else 5
    device = resolve_device(args.device)
    amp = device.type == "cuda" and not args.no_amp
    torch.backends.cudnn.benchmark = True

    torch.manual_seed(0)
    model_type = "mixfair" if args.head == "mixfair" else "iresnet"
    network, head = build_network(ModelConfig(type=model_type, arch=args.arch, head=args.head), classes)
    module = TrainingModule(network, head).to(device).train()
    images = torch.randn(batch, 3, 112, 112, device=device)
    labels = torch.randint(0, classes, (batch,), device=device)
    permutation = torch.randperm(batch, device=device) if module.mixfair else None

    def bare():
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            loss = module(images, labels, permutation)
        loss.backward()
        module.zero_grad(set_to_none=True)

    optim = OptimConfig()
    optimizer = torch.optim.SGD([p for p in module.parameters() if p.requires_grad], lr=optim.lr,
                                momentum=optim.momentum, weight_decay=optim.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    randomness = BatchRandomness(seed=0, epoch=0, rank=0, flip=True)
    running_loss = torch.zeros((), device=device)

    def trainer_step():
        nonlocal running_loss
        flipped = randomness.apply_flip(images)
        partners = randomness.permutation(batch, device) if module.mixfair else None
        running_loss += optimisation_step(module, optimizer, scaler, flipped, labels, partners, amp)

    bare_seconds = _timed(bare, steps, warmup, device)
    train_seconds = _timed(trainer_step, steps, warmup, device)
    bare_rate, train_rate = batch * steps / bare_seconds, batch * steps / train_seconds
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{torch.get_num_threads()} threads"
    print(f"device: {name}; arch {args.arch}, head {args.head}, batch {batch}, {classes} classes, "
          f"amp {amp}, {steps} timed steps")
    print(f"{'bare forward+backward':<26}{bare_rate:>10.1f} images/s")
    print(f"{'trainer step':<26}{train_rate:>10.1f} images/s")
    print(f"{'ratio':<26}{train_rate / bare_rate:>10.3f}   (goal >= 0.85)")


if __name__ == "__main__":
    main()
