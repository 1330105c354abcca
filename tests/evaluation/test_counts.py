"""Exact counts above thresholds, per row and group, from screened blocks, against dense ones."""
import numpy as np
import pytest
import torch
from numpy.testing import assert_array_equal

from dense import canonical_matrix, canonical_rows
from instance_data import lattice_data, make_data
from mfftools.evaluation.engine.blocks import Scorer
from mfftools.evaluation.engine.counts import RowCounter, ThresholdCounter
from mfftools.evaluation.engine.scoring import PRECISIONS, normalise_rows_
from mfftools.evaluation.engine.tiles import plan_rectangle, plan_triangle
from mfftools.evaluation.identities import build_layout


@pytest.mark.parametrize("data", ["random", "lattice"])
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_counts_equal_dense_counts(rng, device, data, precision):
    emb, identity, group = lattice_data(rng, 200) if data == "lattice" else make_data(rng, 60, 5, 8)
    layout = build_layout(identity, group, 3)
    rows = normalise_rows_(torch.from_numpy(emb[layout.order].copy())).to(device)
    feats = canonical_rows(emb)[layout.order]
    scores = canonical_matrix(feats, feats)
    impostor = layout.identity[:, None] != layout.identity[None, :]
    thresholds = [float(np.quantile(scores[impostor], q)) for q in (0.5, 0.9, 0.99)] + [0.3]
    tiles = plan_triangle(len(rows), 37)
    scorer = Scorer(rows, rows, PRECISIONS[precision], tiles)
    counter = ThresholdCounter(thresholds, torch.from_numpy(layout.group).to(device), 3, scorer)
    for block in scorer.blocks(tiles, mask=layout.mask_genuine):
        counter.add(block)
    scorer.close()
    for k, t in enumerate(thresholds):
        accepted = (torch.from_numpy(scores) > t).numpy() & impostor
        expected = np.stack([(accepted & (layout.group == g)[None, :]).sum(1) for g in range(3)], 1)
        assert_array_equal(counter.counts[k].cpu().numpy(), expected)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_row_counts_equal_dense_counts_and_list_only_the_band(rng, monkeypatch, precision):
    """Rows whose threshold is low (a badly scored mated search) have most cells above it: they
    are counted without listing them, a bounded chunk at a time."""
    left = normalise_rows_(torch.from_numpy(rng.standard_normal((90, 16)).astype(np.float32)))
    right = normalise_rows_(torch.from_numpy(rng.standard_normal((70, 16)).astype(np.float32)))
    scores = canonical_matrix(left.numpy(), right.numpy())
    thresholds = torch.from_numpy(scores[np.arange(90), rng.integers(0, 70, 90)].copy())
    thresholds[:30] = -0.9  # nearly every cell above
    monkeypatch.setattr(RowCounter, "CHUNK_CELLS", 200)
    listed = []
    real_nonzero = torch.nonzero
    monkeypatch.setattr(torch, "nonzero", lambda mask, **kw: listed.append(mask.numel())
                        or real_nonzero(mask, **kw))
    tiles = plan_rectangle(90, 70, 64)
    scorer = Scorer(left, right, PRECISIONS[precision], tiles)
    counter = RowCounter(thresholds, scorer)
    for block in scorer.blocks(tiles):
        counter.add(block)
    scorer.close()
    assert_array_equal(counter.counts.numpy(), (scores > thresholds.numpy()[:, None]).sum(1))
    assert max(listed) <= 200  # no mask larger than one chunk is listed
    assert scorer.n_rescored < (scores > -0.9).sum() / 4
