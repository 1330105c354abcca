"""GPU part of benchmarks/gpu_check.sh for the Python API: a CUDA tensor is evaluated on its GPU,
its rows never read to the host by the instance protocol, with the numbers of the same rows
evaluated on the CPU (apart from the `engine` entry, and the last bits of the float64 Gram sums
of `score_distributions`).

    PYTHONPATH=. python benchmarks/gpu_api_check.py
    PYTHONPATH=. python benchmarks/gpu_api_check.py --device cpu   # a dry run on the CPU
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import mfftools  # noqa: E402
from mfftools import arrays  # noqa: E402

GROUPS = ["African", "Asian", "Caucasian", "Indian"]


def data(n_identities=400, dim=128, seed=0):
    generator = np.random.default_rng(seed)
    sizes = generator.integers(1, 7, size=n_identities)
    identity = np.repeat(np.arange(n_identities) * 5 + 3, sizes)
    group = np.array(GROUPS)[np.repeat(np.arange(n_identities) % 4, sizes)]
    rows = np.repeat(generator.standard_normal((n_identities, dim)), sizes, axis=0)
    rows = rows + 1.1 * generator.standard_normal(rows.shape)
    return rows.astype(np.float32), identity, group


def comparable(result):
    found = result.to_dict()
    found.pop("engine")
    found.pop("score_distributions", None)
    return json.dumps(found, sort_keys=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--device", default="cuda")
    device = parser.parse_args().device
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("CUDA is not available")
    precisions = ("auto", "fp32", "tf32", "bf16", "fp16") if device == "cuda" else ("fp32",)
    rows, identity, group = data()
    on_gpu = torch.from_numpy(rows).to(device)
    failures = []

    def never_on_host(*args, **kwargs):
        raise AssertionError("the instance protocol read a CUDA tensor's rows to the host")

    blocks = arrays.ArrayEmbeddings.iter_blocks
    arrays.ArrayEmbeddings.iter_blocks = never_on_host
    try:
        for precision in precisions:
            result = mfftools.instance(on_gpu, identity, group, fpr=(1e-3, 1e-4), method="both",
                                       precision=precision, device="auto" if device == "cuda"
                                       else "cpu")
            if result.data["engine"]["device"] != device:
                failures.append(f"instance ({precision}) ran on {result.data['engine']['device']}")
            expected = mfftools.instance(rows, identity, group, fpr=(1e-3, 1e-4), method="both",
                                         device="cpu")
            if comparable(result) != comparable(expected):
                failures.append(f"instance ({precision}) on CUDA differs from the CPU")
    finally:
        arrays.ArrayEmbeddings.iter_blocks = blocks
    searched = mfftools.identification(on_gpu, identity, group, fpir=0.1,
                                       device="auto" if device == "cuda" else "cpu")
    expected = mfftools.identification(rows, identity, group, fpir=0.1, device="cpu")
    if searched.data["engine"]["device"] != device:
        failures.append(f"identification did not run on {device}")
    if comparable(searched) != comparable(expected):
        failures.append("identification on CUDA differs from the CPU")
    print(f"Python API on {device} tensors:", "; ".join(failures) or "same results as numpy "
          f"arrays on the CPU, evaluated on {device}, rows never read to the host (instance)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
