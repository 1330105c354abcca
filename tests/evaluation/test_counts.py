"""Exact counts above thresholds, per row and group, from screened blocks, against dense ones."""
import numpy as np
import pytest
import torch
from numpy.testing import assert_array_equal

from dense import canonical_matrix, canonical_rows
from instance_data import lattice_data, make_data
from mfftools.evaluation.engine.blocks import Scorer
from mfftools.evaluation.engine.counts import ThresholdCounter
from mfftools.evaluation.engine.scoring import PRECISIONS, normalise_rows_
from mfftools.evaluation.engine.tiles import plan_triangle
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
