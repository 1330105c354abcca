"""Canonical rows and scores, the screening bounds (checked against what the products do), and
the choice of precision."""
import math

import numpy as np
import pytest
import torch
from numpy.testing import assert_array_equal

from dense import canonical_matrix, canonical_rows
from mfftools.evaluation.engine import scoring
from mfftools.evaluation.engine.scoring import (
    PRECISIONS, ScreeningProduct, canonical_means, canonical_scores, normalise_rows_,
    resolve_precision, round_down, round_up)
from mfftools.evaluation.engine.tiles import Tile
from mfftools.errors import MfftoolsError


def test_canonical_rows_and_scores_equal_the_reference(rng, device):
    emb = (rng.standard_normal((300, 77)) * rng.uniform(0.01, 100, (300, 1))).astype(np.float32)
    rows = normalise_rows_(torch.from_numpy(emb.copy()).to(device))
    assert_array_equal(rows.cpu().numpy(), canonical_rows(emb))
    i = torch.from_numpy(rng.integers(0, 300, 5000)).to(device)
    j = torch.from_numpy(rng.integers(0, 300, 5000)).to(device)
    dense = canonical_matrix(canonical_rows(emb), canonical_rows(emb))
    assert_array_equal(canonical_scores(rows, rows, i, j).cpu().numpy(),
                       dense[i.cpu().numpy(), j.cpu().numpy()])


def test_canonical_scores_do_not_depend_on_the_batch(rng, monkeypatch):
    rows = normalise_rows_(torch.from_numpy(rng.standard_normal((50, 512)).astype(np.float32)))
    i, j = torch.from_numpy(rng.integers(0, 50, 999)), torch.from_numpy(rng.integers(0, 50, 999))
    whole = canonical_scores(rows, rows, i, j)
    monkeypatch.setattr(scoring, "_RESCORE_PAIRS", 7)
    assert torch.equal(canonical_scores(rows, rows, i, j), whole)


def test_canonical_means_sum_in_row_order_and_keep_zero(rng):
    rows = normalise_rows_(torch.from_numpy(rng.standard_normal((9, 16)).astype(np.float32)))
    rows[5] = -rows[4]  # run 2 cancels out
    means = canonical_means(rows, [0, 3, 4], [3, 1, 2], block=2)
    expected = rows[:3].double().sum(0)
    expected = (expected / expected.norm()).float()
    assert torch.allclose(means[0], expected, atol=1e-7)
    assert torch.equal(means[1], rows[3])
    assert not means[2].any()


def adversarial_rows(rng, dim):
    """Unit rows whose entries sit just off the input formats' rounding points, all of one sign,
    so that every product's rounding error adds up; plus random rows and near-duplicates."""
    flat = np.full((1, dim), 1 / math.sqrt(dim))
    halfway = 1 + 2.0**-9 * rng.uniform(0.9, 1.0, (64, dim))  # near bf16 midpoints
    tiny = np.concatenate([np.full((8, 1), 1.0), np.full((8, dim - 1), 1e-6)], axis=1)
    random = rng.standard_normal((192, dim))
    close = random[:32] + 1e-4 * rng.standard_normal((32, dim))
    return np.concatenate([flat, flat * halfway, tiny, random, close]).astype(np.float32)


@pytest.mark.parametrize("dim", [16, 512])
@pytest.mark.parametrize("name", ["fp32", "bf16", "fp16"])
def test_observed_screening_error_is_within_the_bound(rng, device, name, dim):
    rows = normalise_rows_(torch.from_numpy(adversarial_rows(rng, dim)).to(device))
    tile = Tile(0, len(rows), 0, len(rows))
    product = ScreeningProduct(rows, rows, PRECISIONS[name], len(rows) ** 2)
    screened = product(tile).double().cpu().numpy()
    product.close()
    canonical = canonical_matrix(rows.cpu().numpy(), rows.cpu().numpy()).astype(np.float64)
    error = np.abs(np.clip(screened, -1, 1) - canonical).max()
    bound = PRECISIONS[name].bound(dim)
    assert error <= bound
    assert error > bound / 1000  # the bound is not absurdly loose: it is what the format allows


def test_bounds_grow_with_dimension_and_coarser_formats():
    for precision in PRECISIONS.values():
        assert precision.bound(1024) > precision.bound(16)
    assert (PRECISIONS["fp32"].bound(512) < PRECISIONS["tf32"].bound(512)
            < PRECISIONS["fp16"].bound(512) < PRECISIONS["bf16"].bound(512))
    assert PRECISIONS["bf16"].bound(512) == pytest.approx(2**-7 + 2**-8, rel=0.05)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_rounding_to_a_format_goes_the_asked_way(rng, dtype):
    for value in list(rng.uniform(-1.1, 1.1, 200)) + [0.0, -1.0, 1.0, 0.3008]:
        down, up = round_down(value, dtype), round_up(value, dtype)
        assert down <= value <= up
        assert float(torch.tensor(down, dtype=dtype)) == down  # representable
        assert float(torch.tensor(up, dtype=dtype)) == up
        step = torch.nextafter(torch.tensor(down, dtype=dtype), torch.tensor(math.inf, dtype=dtype))
        assert float(step) > value or down == value  # no value of dtype lies between


def test_auto_precision_follows_the_cpu_flags():
    assert resolve_precision("auto", "cpu", flags={"avx512f", "avx512_bf16"}).name == "bf16"
    assert resolve_precision("auto", "cpu", flags={"amx_bf16"}).name == "bf16"
    assert resolve_precision("auto", "cpu", flags={"avx2", "fma"}).name == "fp32"
    assert resolve_precision("fp16", "cpu").name == "fp16"
    with pytest.raises(MfftoolsError, match="tf32 runs on CUDA"):
        resolve_precision("tf32", "cpu")


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16\n\nflags\t: fpu\n")
    assert scoring.cpu_flags(info) == {"fpu", "avx512f", "avx512_bf16"}
    assert scoring.cpu_flags(tmp_path / "missing") == set()
