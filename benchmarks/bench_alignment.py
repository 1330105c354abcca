"""What 5-point alignment adds to extraction: the same loose crops, aligned or not.

Writes synthetic loose crops (faces rotated, scaled and shifted in 170-340 pixel JPEGs, as
`mfftools synth` writes IJB-C's) with a manifest carrying their landmarks, a randomly initialised
IResNet checkpoint, and the aligned 112x112 faces as JPEGs, then times `extract` (whole calls,
model loading and worker start-up included) on:
  * the aligned 112x112 faces (decoding only: the floor);
  * the loose crops resized to 112x112 (bicubic, no landmarks: what an unaligned run decodes);
  * the loose crops aligned by their landmarks (OpenCV's warp instead of the resize).
The ratio of the aligned run to the resized one is what the warp costs over the resize; to the
floor, what loose crops and their alignment cost together.

    python benchmarks/bench_alignment.py                 # r18 on the CPU, 512 images
    python benchmarks/bench_alignment.py --images 64     # a quick check
"""
import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_extract import machine, write_checkpoint  # noqa: E402


def write_sources(folder, n_images, seed=0):
    """(manifest of aligned faces, manifest of loose crops, the same with landmark columns)."""
    from mfftools.data.faces import synthetic_faces
    from mfftools.data.images import encode_image
    from mfftools.data.synthetic_shipped import loosen

    faces, identity = synthetic_faces(max(n_images // 4, 2), 4, seed=seed)
    faces, identity = faces[:n_images], identity[:n_images]
    crops, points = loosen(faces, np.random.default_rng(seed))
    header = ["path", "identity", "group"]
    landmarks = [f"{axis}{k}" for k in range(1, 6) for axis in "xy"]
    rows = {"aligned": [], "loose": [], "landmarks": []}
    for k, (face, crop, point) in enumerate(zip(faces, crops, points)):
        (folder / f"face_{k}.jpg").write_bytes(encode_image(face))
        (folder / f"loose_{k}.jpg").write_bytes(encode_image(crop))
        rows["aligned"].append([f"face_{k}.jpg", identity[k], "g"])
        rows["loose"].append([f"loose_{k}.jpg", identity[k], "g"])
        rows["landmarks"].append([f"loose_{k}.jpg", identity[k], "g", *point.reshape(-1)])
    paths = {}
    for name, table in rows.items():
        paths[name] = folder / f"{name}.csv"
        with paths[name].open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header + (landmarks if name == "landmarks" else []))
            writer.writerows(table)
    return paths


def timed_extract(manifest, checkpoint, out, batch_size, workers, aligned):
    from mfftools.extract import extract
    from mfftools.sources import SourceOptions, open_source

    started = time.perf_counter()
    source = open_source(manifest, SourceOptions(aligned=aligned))
    extract(source, checkpoint, out, batch_size=batch_size, workers=workers, device="cpu",
            progress=False)
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--arch", default="r18", choices=["r18", "r34", "r50"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    import torch

    with tempfile.TemporaryDirectory(prefix="bench-align-") as folder:
        folder = Path(folder)
        paths = write_sources(folder, args.images)
        write_checkpoint(folder / "backbone.pth", args.arch)
        runs = {}
        # Each run twice, in turns, against drifting machine load; the faster of the two counts.
        for _ in range(2):
            for name, manifest, aligned in (("aligned 112x112 faces", paths["aligned"], False),
                                            ("loose crops, resized", paths["loose"], False),
                                            ("loose crops, aligned", paths["landmarks"], False)):
                seconds = timed_extract(manifest, folder / "backbone.pth", folder / "out.h5",
                                        args.batch_size, args.workers, aligned)
                runs[name] = min(runs.get(name, seconds), seconds)
    print(f"alignment benchmark: {args.arch}, cpu ({machine(torch.device('cpu'))}), "
          f"{args.images} images, batch {args.batch_size}, workers {args.workers}, flip on")
    floor, resized = runs["aligned 112x112 faces"], runs["loose crops, resized"]
    print(f"{'extract of':<24} {'seconds':>8} {'/ resized':>10} {'/ floor':>8}")
    for name, seconds in runs.items():
        print(f"{name:<24} {seconds:>8.2f} {seconds / resized:>10.2f} {seconds / floor:>8.2f}")


if __name__ == "__main__":
    main()
