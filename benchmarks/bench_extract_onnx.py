"""Extraction throughput with an ONNX model: `mfftools.extract` against onnxruntime's bare `run`.

Exports a randomly initialised IResNet with `torch.onnx.export` (dynamic batch), writes an
RFW-layout zip of synthetic 112x112 JPEG faces, and measures images/s of
- the bare run: `session.run` of the same model (a session made as extraction makes it), on the
  same batches (decoded from the zip, flip included: 2B images a call) already in memory;
- extract: zip -> decoding workers -> onnxruntime -> HDF5 file, end to end (model loading and
  worker start-up included) and in steady state (first to last written batch).
A ratio near 1 means decoding, batching and writing are hidden behind the model.

Full run: `PYTHONPATH=. python benchmarks/bench_extract_onnx.py` (CPU, r18, batch 32, 2 workers,
256 images); smoke run: add `--quick`.
"""
import argparse
import tempfile
import time
import warnings
from pathlib import Path

import torch

from bench_extract import extract_rates, machine, write_checkpoint, write_zip
from mfftools.data.images import decode_image
from mfftools.data.rfw import RfwInstanceZip
from mfftools.models.onnx import OnnxEmbedder


def export(model, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notice that a newer one exists
        torch.onnx.export(model.eval(), (torch.zeros(2, 3, 112, 112),), str(path), dynamo=False,
                          input_names=["input"], output_names=["embedding"],
                          dynamic_axes={"input": {0: "batch"}, "embedding": {0: "batch"}})
    return path


def flipped_batches(zip_path, batch_size):
    """The zip's images as extraction feeds them: [x, flip(x)] of each batch, float32 numpy."""
    archive = RfwInstanceZip(zip_path)
    images = torch.stack([decode_image(archive.encoded(k), str(k)) for k in range(len(archive))])
    return [torch.cat([batch, torch.flip(batch, dims=[3])]).numpy()
            for batch in torch.split(images, batch_size)]


def bare_run_rate(onnx_path, batches):
    """Images/s of session.run alone on the batches (each holds 2B images: B faces, flipped)."""
    embedder = OnnxEmbedder(onnx_path, device="cpu")
    run = embedder.session.run
    for batch in batches[:2]:  # warm-up
        run([embedder.output_name], {embedder.input_name: batch})
    started = time.perf_counter()
    for batch in batches:
        run([embedder.output_name], {embedder.input_name: batch})
    return sum(len(batch) // 2 for batch in batches) / (time.perf_counter() - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few batches only (smoke test)")
    parser.add_argument("--arch", default="r18", choices=["r10-mini", "r18", "r34", "r50"])
    parser.add_argument("--batch-size", type=int, default=None, help="default 32 (8 with --quick)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--images", type=int, default=None, help="default 256 (16 with --quick)")
    args = parser.parse_args()
    batch_size = args.batch_size or (8 if args.quick else 32)
    n_images = args.images or (16 if args.quick else 256)

    with tempfile.TemporaryDirectory(prefix="bench-extract-onnx-") as folder:
        folder = Path(folder)
        zip_path = write_zip(folder / "ValInstData.zip", n_images)
        onnx_path = export(write_checkpoint(folder / "backbone.pth", args.arch),
                           folder / "backbone.onnx")
        batches = flipped_batches(zip_path, batch_size)
        # The bare run is timed before and after extraction, against drifting machine load.
        bare_before = bare_run_rate(onnx_path, batches)
        end_to_end, steady, extracted, startup = extract_rates(
            zip_path, onnx_path, folder / "emb.h5", torch.device("cpu"), batch_size,
            args.workers, amp=False,
        )
        bare_after = bare_run_rate(onnx_path, batches)
        bare = 2.0 / (1.0 / bare_before + 1.0 / bare_after)

    import onnxruntime

    print(f"extract benchmark, ONNX: {args.arch}, cpu ({machine(torch.device('cpu'))}), "
          f"onnxruntime {onnxruntime.__version__}")
    print(f"batch {batch_size}, workers {args.workers}, flip on, {extracted} images"
          f"{' (quick)' if args.quick else ''}")
    print(f"{'measure':<24} {'images/s':>10} {'ratio':>7}")
    print(f"{'bare session.run':<24} {bare:>10.1f} {1.0:>7.2f}   "
          f"(before {bare_before:.1f}, after {bare_after:.1f})")
    print(f"{'extract (steady state)':<24} {steady:>10.1f} {steady / bare:>7.2f}")
    print(f"{'extract (end to end)':<24} {end_to_end:>10.1f} {end_to_end / bare:>7.2f}")
    print(f"fixed start-up: {startup:.1f} s (end to end less the images at the steady rate)")


if __name__ == "__main__":
    main()
