"""Process-wide matmul settings cannot change the results: the screening products set exactly
the precision they claim for their own duration and restore the caller's settings, and a guard
refuses products that break their bound."""
import json

import numpy as np
import pytest
import torch

from instance_data import evaluate_file, make_data
from mfftools.errors import MfftoolsError
from mfftools.evaluation.engine import scoring
from mfftools.evaluation.engine.blocks import GUARD_CELLS, Scorer
from mfftools.evaluation.engine.scoring import PRECISIONS, ScreeningProduct
from mfftools.evaluation.engine.tiles import plan_triangle


def _settings():
    """Every setting that could change a product's arithmetic, as the caller sees it."""
    matmul = torch.backends.cuda.matmul
    return (matmul.fp32_precision, torch.backends.mkldnn.matmul.fp32_precision,
            matmul.allow_fp16_reduced_precision_reduction,
            matmul.allow_bf16_reduced_precision_reduction)


def _legacy_medium():
    torch.set_float32_matmul_precision("medium")


def _mkldnn_bf16():
    torch.backends.mkldnn.matmul.fp32_precision = "bf16"


def _cuda_tf32():
    torch.backends.cuda.matmul.fp32_precision = "tf32"


@pytest.fixture
def restore_settings():
    matmul = torch.backends.cuda.matmul
    saved = _settings()
    yield
    matmul.fp32_precision, torch.backends.mkldnn.matmul.fp32_precision = saved[:2]
    matmul.allow_fp16_reduced_precision_reduction = saved[2]
    matmul.allow_bf16_reduced_precision_reduction = saved[3]


def _without_engine(result):
    return json.dumps({key: value for key, value in result.items() if key != "engine"})


@pytest.mark.parametrize("setting", [_legacy_medium, _mkldnn_bf16, _cuda_tf32])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_results_do_not_depend_on_the_callers_matmul_settings(tmp_path, rng, restore_settings,
                                                               setting, precision):
    emb, identity, group = make_data(rng, 60, 5, 64)
    clean = evaluate_file(tmp_path, emb, identity, group, targets=(1e-2,), tile=50,
                          device="cpu", precision=precision)
    setting()
    before = _settings()
    seen = []
    real_mm = torch.mm

    def spying_mm(*args, **kwargs):
        seen.append(_settings())
        return real_mm(*args, **kwargs)

    torch.mm = spying_mm
    try:
        result = evaluate_file(tmp_path, emb, identity, group, targets=(1e-2,), tile=50,
                               device="cpu", precision=precision, name="again.h5")
    finally:
        torch.mm = real_mm
    assert _without_engine(result) == _without_engine(clean)
    assert _settings() == before  # the caller's settings, restored
    # every screening product ran with IEEE float32 and no reduced-precision reductions
    assert seen and all(found == ("ieee", "ieee", False, False) for found in seen)


def test_the_settings_are_restored_when_a_product_fails(restore_settings):
    _cuda_tf32()
    before = _settings()
    product = ScreeningProduct(torch.ones(4, 3), torch.ones(4, 3), PRECISIONS["fp32"], 16)
    with pytest.raises(RuntimeError):
        product(type("Tile", (), {"shape": (4, 5), "row_start": 0, "row_stop": 4,
                                  "col_start": 0, "col_stop": 5})())  # 5 columns of 4 rows
    assert _settings() == before


def test_products_that_break_their_bound_are_refused(rng, monkeypatch):
    """A product rounded to bf16 while claiming fp32: errors of about 1e-3, far beyond fp32's
    E = 6e-5. The guard sees it on the first tile and refuses, naming the likely settings."""
    rows = scoring.normalise_rows_(torch.from_numpy(
        rng.standard_normal((300, 512)).astype(np.float32)))
    real_call = ScreeningProduct.__call__

    def lossy(self, tile):
        out = real_call(self, tile)
        out.copy_(out.to(torch.bfloat16))
        return out

    monkeypatch.setattr(ScreeningProduct, "__call__", lossy)
    tiles = plan_triangle(len(rows), 100)
    scorer = Scorer(rows, rows, PRECISIONS["fp32"], tiles)
    with pytest.raises(MfftoolsError, match="more than their proven bound E = 6.11e-05: "
                       "something changes the arithmetic of matrix products"):
        next(scorer.blocks(tiles))


@pytest.mark.parametrize("data", ["random", "coarse"])
def test_the_guard_passes_honest_products_and_costs_a_few_rescored_pairs(rng, data):
    """Honest products pass, also coarse rows (entries -2..2, scores near +-1) on which bf16's
    own rounding comes closest to E."""
    if data == "coarse":
        emb = rng.integers(-2, 3, size=(300, 6)).astype(np.float32) + np.eye(300, 6,
                                                                              dtype=np.float32)
    else:
        emb = rng.standard_normal((300, 512)).astype(np.float32)
    rows = scoring.normalise_rows_(torch.from_numpy(emb))
    for name in ("fp32", "bf16", "fp16"):
        tiles = plan_triangle(len(rows), 100)
        scorer = Scorer(rows, rows, PRECISIONS[name], tiles)
        assert len(list(scorer.blocks(tiles))) == len(tiles)
        assert scorer.guarded and scorer.n_rescored == 0  # the guard's pairs are not counted
    assert GUARD_CELLS <= 128
