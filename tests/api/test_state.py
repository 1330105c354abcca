"""Calling the API changes nothing process-wide and prints nothing: the caller's torch threads,
matmul precision settings, random states and logging are as they were, whatever they were."""
import logging
import random

import numpy as np
import pytest
import torch

import mfftools

from .conftest import GROUPS


def _state(legacy):
    """Everything process-wide an evaluation could touch, as the caller sees it (the matmul
    precision through the API the caller set it with: torch refuses the legacy reading once
    the per-backend settings were used)."""
    backends = torch.backends
    precision = (torch.get_float32_matmul_precision() if legacy else
                 (backends.cuda.matmul.fp32_precision, backends.mkldnn.matmul.fp32_precision))
    return {
        "threads": torch.get_num_threads(),
        "interop threads": torch.get_num_interop_threads(),
        "matmul precision": precision,
        "fp16 reduction": backends.cuda.matmul.allow_fp16_reduced_precision_reduction,
        "bf16 reduction": backends.cuda.matmul.allow_bf16_reduced_precision_reduction,
        "cudnn": (backends.cudnn.benchmark, backends.cudnn.deterministic),
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "torch rng": torch.get_rng_state(),
        "numpy rng": np.random.get_state()[1].copy(),
        "python rng": random.getstate(),
        "handlers": [(name, list(logging.getLogger(name).handlers))
                     for name in ("", "mfftools", "mfftools.evaluation.instance")],
        "levels": [logging.getLogger(name).level for name in ("", "mfftools")],
        "grad": torch.is_grad_enabled(),
        "default dtype": torch.get_default_dtype(),
    }


def _same(before, after):
    for key, value in before.items():
        other = after[key]
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, other), key
        elif isinstance(value, np.ndarray):
            np.testing.assert_array_equal(value, other, err_msg=key)
        else:
            assert value == other, key


@pytest.fixture(params=["legacy", "per backend"])
def unusual_settings(request):
    """Settings a caller may have chosen, none of them the engine's own, through torch's legacy
    matmul precision or its per-backend settings: the calls must leave them as they are (and
    restore them where they change them for a while). Returns whether they are the legacy
    ones."""
    matmul, mkldnn = torch.backends.cuda.matmul, torch.backends.mkldnn.matmul
    threads = torch.get_num_threads()
    legacy = request.param == "legacy"
    saved = torch.get_float32_matmul_precision() if legacy else (matmul.fp32_precision,
                                                                 mkldnn.fp32_precision)
    torch.set_num_threads(2)  # above one: the engine narrows it for small work, then restores
    if legacy:
        torch.set_float32_matmul_precision("medium")
    else:
        matmul.fp32_precision, mkldnn.fp32_precision = "tf32", "bf16"
    torch.manual_seed(1234)
    np.random.seed(1234)
    random.seed(1234)
    yield legacy
    torch.set_num_threads(threads)
    if legacy:
        torch.set_float32_matmul_precision(saved)
    else:
        matmul.fp32_precision, mkldnn.fp32_precision = saved


def _calls(tmp_path, faces, pairs, ijb):
    rows, identity, group = faces
    first, second, issame, names = pairs
    folder = ijb["folder"]
    calibration = mfftools.calibrate(first, second, issame, names, method="faircal",
                                     clusters=4)
    instance = mfftools.instance(rows, identity, group, group_names=GROUPS, fpr=1e-2,
                                 device="cpu")
    return {
        "instance": lambda: mfftools.instance(torch.from_numpy(rows), identity, group,
                                              fpr=(1e-2, 1e-3), method="both", device="cpu"),
        "calibrated instance": lambda: mfftools.instance(
            rows, identity, group, group_names=GROUPS, fpr=1e-2, device="cpu",
            calibration=calibration),
        "pairs": lambda: mfftools.pairs(first, second, issame, names),
        "identification": lambda: mfftools.identification(rows, identity, group, fpir=0.1,
                                                          device="cpu", precision="bf16"),
        "template": lambda: mfftools.template(ijb["file"], pairs=folder / "pairs.txt"),
        "calibrate": lambda: mfftools.calibrate(first, second, issame, names,
                                                method="faircal", clusters=4),
        "cross_validate": lambda: mfftools.cross_validate(first, second, issame, names,
                                                          methods=["faircal", "gst"],
                                                          clusters=4, n_folds=3),
        "apply": lambda: calibration.apply(first, second, issame, names),
        "save": lambda: mfftools.save(tmp_path / "e.h5", rows, identity, group),
        "load": lambda: mfftools.load(tmp_path / "e.h5"),
        "report": lambda: mfftools.report([instance], tmp_path / "report", bootstrap=10,
                                          permutations=19),
    }


def test_no_call_changes_process_state_or_prints(tmp_path, faces, pairs, ijb,
                                                 unusual_settings, capfd):
    calls = _calls(tmp_path, faces, pairs, ijb)
    capfd.readouterr()
    for name, call in calls.items():
        before = _state(unusual_settings)
        call()
        _same(before, _state(unusual_settings))
        out, err = capfd.readouterr()
        assert out == "", name
        assert "\r" not in err and "%|" not in err, name  # no progress bar
