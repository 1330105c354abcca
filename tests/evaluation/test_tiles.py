"""Tile plans cover their matrix exactly once, and split over ranks balanced by pairs."""
import pytest

from mfftools.errors import MfftoolsError
from mfftools.evaluation.engine.tiles import plan_rectangle, plan_triangle, split_tiles


def cells(tile):
    rows = range(tile.row_start, tile.row_stop)
    cols = range(tile.col_start, tile.col_stop)
    return [(i, j) for i in rows for j in cols if not tile.symmetric or i < j]


@pytest.mark.parametrize("n, tile", [(1, 4), (10, 3), (37, 37), (600, 150), (1000, 560)])
def test_triangle_holds_each_unordered_pair_once(n, tile):
    tiles = plan_triangle(n, tile)
    seen = [pair for t in tiles for pair in cells(t)]
    assert len(seen) == len(set(seen)) == n * (n - 1) // 2
    assert all(i < j for i, j in seen)
    assert sum(t.n_pairs for t in tiles) == n * (n - 1) // 2
    assert all(t.symmetric == (t.row_start == t.col_start) for t in tiles)


def test_large_diagonal_tiles_are_split():
    tiles = plan_triangle(1024, 1024)
    assert max(t.shape[0] for t in tiles) == 256


@pytest.mark.parametrize("rows, cols, tile", [(7, 5, 3), (100, 1, 8), (64, 64, 64)])
def test_rectangle_holds_each_cell_once(rows, cols, tile):
    tiles = plan_rectangle(rows, cols, tile)
    seen = [pair for t in tiles for pair in cells(t)]
    assert sorted(seen) == [(i, j) for i in range(rows) for j in range(cols)]
    assert not any(t.symmetric for t in tiles)


def test_tile_must_be_positive():
    with pytest.raises(MfftoolsError, match="--tile must be at least 1"):
        plan_triangle(10, 0)
    with pytest.raises(MfftoolsError, match="--tile must be at least 1"):
        plan_rectangle(10, 10, 0)


@pytest.mark.parametrize("world_size", [2, 3, 7])
def test_split_is_balanced_by_pairs(world_size):
    tiles = plan_triangle(1000, 64)
    shares = [split_tiles(tiles, world_size, rank) for rank in range(world_size)]
    assert [t for share in shares for t in share] == tiles  # each tile once, in contiguous runs
    pairs = [sum(t.n_pairs for t in share) for share in shares]
    assert sum(pairs) == 1000 * 999 // 2
    largest_tile = max(t.n_pairs for t in tiles)
    assert max(pairs) - min(pairs) <= 2 * largest_tile


def test_more_ranks_than_tiles_leaves_some_idle():
    tiles = plan_triangle(10, 8192)
    assert sorted(len(split_tiles(tiles, 2, rank)) for rank in (0, 1)) == [0, 1]
