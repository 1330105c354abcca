"""Plans of tiles over a score matrix, and their split over ranks.

A tile is a block of rows of the left operand against a block of rows of the right operand.
Two plans:
  * `plan_triangle`: one matrix against itself; each unordered pair {i, j} (i != j) lies in
    exactly one tile. Tiles on the diagonal are `symmetric` (rows and columns are the same block:
    only their strict upper triangle counts) and are split once more into smaller sub-blocks, so
    little work goes into the lower halves that are thrown away.
  * `plan_rectangle`: a left matrix against a different right matrix; every cell counts.
"""
from dataclasses import dataclass

from mfftools.errors import MfftoolsError

# A diagonal tile of at least DIAGONAL_SPLIT * MIN_SPLIT_ROWS rows is cut into DIAGONAL_SPLIT blocks.
DIAGONAL_SPLIT = 4
MIN_SPLIT_ROWS = 128


@dataclass(frozen=True)
class Tile:
    """Left rows [row_start, row_stop) against right rows [col_start, col_stop).

    `symmetric`: the two blocks are the same rows of the same matrix, and only the strict upper
    triangle (row < column) holds pairs of the plan.
    """

    row_start: int
    row_stop: int
    col_start: int
    col_stop: int
    symmetric: bool = False

    @property
    def shape(self):
        return self.row_stop - self.row_start, self.col_stop - self.col_start

    @property
    def n_pairs(self):
        """Pairs of the plan that this tile scores (unordered within a symmetric tile)."""
        rows, cols = self.shape
        return rows * (rows - 1) // 2 if self.symmetric else rows * cols


def _check_size(size):
    if size < 1:
        raise MfftoolsError(f"--tile must be at least 1, got {size}")


def _blocks(start, stop, size):
    return [(first, min(first + size, stop)) for first in range(start, stop, size)]


def _upper_triangle(blocks):
    tiles = []
    for a, (row_start, row_stop) in enumerate(blocks):
        for b, (col_start, col_stop) in enumerate(blocks[a:]):
            tiles.append(Tile(row_start, row_stop, col_start, col_stop, symmetric=b == 0))
    return tiles


def plan_triangle(n_rows, tile):
    """Tiles covering every unordered pair of an n_rows x n_rows matrix, row-major block order."""
    _check_size(tile)
    tiles = []
    for block in _upper_triangle(_blocks(0, n_rows, tile)):
        rows = block.shape[0]
        if block.symmetric and rows >= DIAGONAL_SPLIT * MIN_SPLIT_ROWS:
            sub_rows = -(-rows // DIAGONAL_SPLIT)
            tiles.extend(_upper_triangle(_blocks(block.row_start, block.row_stop, sub_rows)))
        else:
            tiles.append(block)
    return tiles


def plan_rectangle(n_rows, n_cols, tile):
    """Tiles covering every cell of an n_rows x n_cols matrix, row-major block order."""
    _check_size(tile)
    return [
        Tile(row_start, row_stop, col_start, col_stop)
        for row_start, row_stop in _blocks(0, n_rows, tile)
        for col_start, col_stop in _blocks(0, n_cols, tile)
    ]


def split_tiles(tiles, world_size, rank):
    """The contiguous run of tiles rank `rank` scores, balanced by pairs (not tiles) over ranks.

    Rank r takes the tiles whose cumulative pair count (at the tile's middle) falls in the r-th
    equal share of all pairs; with more ranks than tiles, some ranks get none.
    """
    total = sum(tile.n_pairs for tile in tiles)
    mine = []
    done = 0
    for tile in tiles:
        middle = done + tile.n_pairs / 2
        owner = min(int(middle * world_size / total), world_size - 1) if total else 0
        if owner == rank:
            mine.append(tile)
        done += tile.n_pairs
    return mine
