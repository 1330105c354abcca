"""The k best columns per row from screened blocks, against canonical brute force with ties."""
import numpy as np
import pytest
import torch
from numpy.testing import assert_array_equal

from dense import canonical_matrix, canonical_rows
from mfftools.evaluation.engine.blocks import Scorer
from mfftools.evaluation.engine.scoring import PRECISIONS, normalise_rows_
from mfftools.evaluation.engine.tiles import plan_rectangle, plan_triangle
from mfftools.evaluation.engine.topk import RowTopK


def brute_force(scores, k):
    """Per row: the k best (value descending, column ascending), -inf/-1 padded."""
    values = np.full((len(scores), k), -np.inf, dtype=np.float32)
    cols = np.full((len(scores), k), -1)
    for row, line in enumerate(scores):
        order = np.lexsort((np.arange(len(line)), -line))
        order = order[np.isfinite(line[order])][:k]
        values[row, : len(order)], cols[row, : len(order)] = line[order], order
    return values, cols


def coarse(rng, n, dim=6):
    """Entries in -2..2: many exactly tied scores."""
    return rng.integers(-2, 3, size=(n, dim)).astype(np.float32) + np.eye(n, dim, dtype=np.float32)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("data", ["random", "coarse"])
@pytest.mark.parametrize("tile", [41, 230])  # plain top-k; grouped cells
def test_rectangle_matches_brute_force(rng, device, precision, data, tile):
    make = coarse if data == "coarse" else (lambda r, n: r.standard_normal((n, 24)).astype(np.float32))
    left, right = make(rng, 150), make(rng, 230)
    rows_l = normalise_rows_(torch.from_numpy(left.copy())).to(device)
    rows_r = normalise_rows_(torch.from_numpy(right.copy())).to(device)
    excluded = rng.integers(0, 230, 150)
    tiles = plan_rectangle(150, 230, tile)
    scorer = Scorer(rows_l, rows_r, PRECISIONS[precision], tiles)
    best = RowTopK(150, 20, scorer)  # 230 columns: 28 groups of 8, >= 20

    def mask(tile, scores):
        rows = np.arange(tile.row_start, tile.row_stop)
        inside = (excluded[rows] >= tile.col_start) & (excluded[rows] < tile.col_stop)
        scores[rows[inside] - tile.row_start, excluded[rows[inside]] - tile.col_start] = -np.inf

    for block in scorer.blocks(tiles, mask=mask):
        best.add(block)
    values, cols = best.finalize()
    scorer.close()
    dense = canonical_matrix(canonical_rows(left), canonical_rows(right))
    dense[np.arange(150), excluded] = -np.inf
    expected_values, expected_cols = brute_force(dense, 20)
    assert_array_equal(values.numpy(), expected_values)
    assert_array_equal(cols.numpy(), expected_cols)


@pytest.mark.parametrize("n, k, tile", [
    (300, 50, 64),      # fewer cells per block row than 8 groups of k: plain top-k
    (12, 50, 64),       # fewer columns than k
    (1300, 50, 600),    # grouped cells, rows and (mirrored) columns
    (1300, 3, 2000),    # grouped, one diagonal tile split into sub-blocks
])
def test_triangle_with_mirror_matches_brute_force(rng, n, k, tile):
    """One matrix against itself over the upper triangle: each block serves its rows and,
    transposed, its columns; the diagonal (each row itself) is never a neighbour."""
    emb = coarse(rng, n)
    rows = normalise_rows_(torch.from_numpy(emb.copy()))
    tiles = plan_triangle(n, tile)
    scorer = Scorer(rows, rows, PRECISIONS["bf16"], tiles)
    best = RowTopK(n, k, scorer, mirror=True)
    for block in scorer.blocks(tiles):
        best.add(block)
    values, cols = best.finalize()
    dense = canonical_matrix(canonical_rows(emb), canonical_rows(emb))
    np.fill_diagonal(dense, -np.inf)
    expected_values, expected_cols = brute_force(dense, k)
    assert_array_equal(values.numpy(), expected_values)
    assert_array_equal(cols.numpy(), expected_cols)


def test_candidates_stay_bounded(rng):
    """Pruning keeps about the k best per row, not every cell seen."""
    emb = rng.standard_normal((400, 32)).astype(np.float32)
    rows = normalise_rows_(torch.from_numpy(emb))
    tiles = plan_rectangle(400, 400, 50)
    scorer = Scorer(rows, rows, PRECISIONS["fp32"], tiles)
    best = RowTopK(400, 10, scorer)
    for block in scorer.blocks(tiles):
        best.add(block)
    best.finalize()
    assert scorer.n_rescored < 400 * 20
