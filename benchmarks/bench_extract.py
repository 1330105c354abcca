"""Extraction throughput: `mfftools.extract` against the bare model forward, flip included.

Writes an RFW-layout zip of synthetic 112x112 JPEG faces and a randomly initialised IResNet
checkpoint, then measures images/s of
- the bare forward: the same model, batch size and device, on one batch already in memory,
  f(x) + f(flip x) as extraction computes it;
- extract: zip -> decoding workers -> model -> HDF5 file, end to end (checkpoint loading and
  worker start-up included) and in steady state (first to last written batch).
A ratio near 1 means decoding and writing are hidden behind the model. The fixed start-up is
the end-to-end time less the time the images take at the steady rate: loading the model,
starting the workers, the first batch's latency and the first forward pass's one-time costs.
It does not depend on the machine's load as the rates do.

Full runs: `python benchmarks/bench_extract.py` (CPU, r18) and
`python benchmarks/bench_extract.py --device cuda --arch r50` (run from the checkout with
PYTHONPATH=. or the package installed); smoke run: add `--quick`.
"""
import argparse
import logging
import os
import platform
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import torch

from mfftools.data.faces import synthetic_faces
from mfftools.data.images import encode_image
from mfftools.dist import resolve_device
from mfftools.errors import MfftoolsError
from mfftools.extract import embed_batch, extract
from mfftools.models.iresnet import iresnet

IMAGES_PER_PERSON = 8
RENDERED_FACES = 128  # distinct faces rendered; the zip cycles through their JPEG files


def write_zip(path, n_images, seed=0):
    """An RFW instance zip of n_images synthetic JPEG faces, two groups, up to 8 images per person
    (at least one person per group)."""
    pixels, _ = synthetic_faces(RENDERED_FACES // IMAGES_PER_PERSON, IMAGES_PER_PERSON, seed=seed)
    encoded = [encode_image(face) for face in pixels]
    per_person = max(1, min(IMAGES_PER_PERSON, n_images // 2))
    people = {"GroupA": [], "GroupB": []}
    with zipfile.ZipFile(path, "w") as archive:
        for index in range(n_images):
            person = index // per_person
            group = "GroupA" if person % 2 == 0 else "GroupB"
            person_id = f"m.{person:05d}"
            if index % per_person == 0:
                people[group].append(person_id)
            number = index % per_person + 1
            member = f"data/data/{group}/{person_id}/{person_id}_{number:04d}.jpg"
            archive.writestr(member, encoded[index % len(encoded)])
        for group, ids in people.items():
            archive.writestr(f"data/txts/{group}/{group}_people.txt", "".join(f"{p}\t1\n" for p in ids))
    return path


def write_checkpoint(path, arch):
    """A random IResNet with variance-preserving conv weights (no overflow at any depth)."""
    torch.manual_seed(0)
    model = iresnet(arch)
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            fan_in = module.weight[0].numel()
            torch.nn.init.normal_(module.weight, 0.0, (1.0 / fan_in) ** 0.5)
    torch.save(model.state_dict(), path)
    return model


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_forward_rate(model, device, batch_size, n_images, amp):
    """Images/s of the model alone: one resident batch, flip TTA, results kept on the device."""
    model = model.to(device).eval()
    images = torch.randn(batch_size, 3, 112, 112, device=device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    n_batches = max(1, n_images // batch_size)
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=amp):
        for _ in range(2):
            embed_batch(model, images, flip=True)
        synchronize(device)
        started = time.perf_counter()
        for _ in range(n_batches):
            embed_batch(model, images, flip=True).float()
        synchronize(device)
    return n_batches * batch_size / (time.perf_counter() - started)


class _WriteTimes(logging.Handler):
    """Collects the time of each batch write that extract logs."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.times, self.rows = [], []

    def emit(self, record):
        if record.getMessage().startswith("wrote rows"):
            self.times.append(time.perf_counter())
            self.rows.append(int(record.getMessage().split("-")[-1]) + 1)


def extract_rates(zip_path, checkpoint, out_path, device, batch_size, workers, amp):
    """(end-to-end images/s, steady-state images/s, images, fixed start-up seconds) of one
    extract run."""
    handler = _WriteTimes()
    logger = logging.getLogger("mfftools.extract")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        started = time.perf_counter()
        extract(zip_path, checkpoint, out_path, batch_size=batch_size, workers=workers,
                device=device.type, amp=amp, progress=False)
        total = time.perf_counter() - started
    finally:
        logger.removeHandler(handler)
    n_images = handler.rows[-1]
    if len(handler.times) < 2:
        return n_images / total, n_images / total, n_images, 0.0
    steady = (n_images - handler.rows[0]) / (handler.times[-1] - handler.times[0])
    return n_images / total, steady, n_images, total - n_images / steady


def machine(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model_name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model_name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model_name}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few batches only (smoke test)")
    parser.add_argument("--arch", default="r18", choices=["r18", "r34", "r50"])
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--batch-size", type=int, default=None, help="default 32 on CPU (8 with --quick), 256 on CUDA")
    parser.add_argument("--workers", type=int, default=None, help="default 2 on CPU, 8 on CUDA")
    parser.add_argument("--images", type=int, default=None, help="images to extract")
    parser.add_argument("--amp", action="store_true", help="float16 autocast (CUDA)")
    args = parser.parse_args()

    try:
        device = resolve_device(args.device)
    except MfftoolsError as error:
        sys.exit(f"error: {error}")
    cuda = device.type == "cuda"
    batch_size = args.batch_size or (256 if cuda else 8 if args.quick else 32)
    workers = args.workers if args.workers is not None else (min(8, os.cpu_count() or 1) if cuda else 2)
    n_images = args.images or ((2048 if cuda else 16) if args.quick else (32768 if cuda else 256))
    amp = args.amp and cuda

    with tempfile.TemporaryDirectory(prefix="bench-extract-") as folder:
        folder = Path(folder)
        zip_path = write_zip(folder / "ValInstData.zip", n_images)
        model = write_checkpoint(folder / "backbone.pth", args.arch)
        # The bare forward is timed before and after extraction, against drifting machine load.
        bare_before = bare_forward_rate(model, device, batch_size, n_images, amp)
        end_to_end, steady, extracted, startup = extract_rates(
            zip_path, folder / "backbone.pth", folder / "emb.h5", device, batch_size, workers, amp,
        )
        bare_after = bare_forward_rate(model, device, batch_size, n_images, amp)
        bare = 2.0 / (1.0 / bare_before + 1.0 / bare_after)  # images/s of the mean time per image

    print(f"extract benchmark: {args.arch}, {device.type} ({machine(device)}), torch {torch.__version__}")
    print(f"batch {batch_size}, workers {workers}, flip on, amp {'on' if amp else 'off'}, "
          f"{extracted} images{' (quick)' if args.quick else ''}")
    print(f"{'measure':<24} {'images/s':>10} {'ratio':>7}")
    print(f"{'bare forward':<24} {bare:>10.1f} {1.0:>7.2f}   (before {bare_before:.1f}, after {bare_after:.1f})")
    print(f"{'extract (steady state)':<24} {steady:>10.1f} {steady / bare:>7.2f}")
    print(f"{'extract (end to end)':<24} {end_to_end:>10.1f} {end_to_end / bare:>7.2f}")
    print(f"fixed start-up: {startup:.1f} s (end to end less the images at the steady rate)")


if __name__ == "__main__":
    main()
