"""The plan of tiles covering the upper triangle of the N x N score matrix, and its split over ranks.

Rows are blocks of `tile` consecutive rows; tile (a, b) with a <= b holds the scores of block a's
rows against block b's. Each unordered pair {i, j} (i != j) lies in exactly one tile; on a diagonal
tile only its strict upper triangle counts. Diagonal tiles are split once more into smaller
sub-blocks (their own little upper triangle), so little of the work is spent on the lower halves
that are thrown away.
"""
from dataclasses import dataclass

from mfftools.errors import MfftoolsError

# A diagonal tile of at least DIAGONAL_SPLIT * MIN_SPLIT_ROWS rows is cut into DIAGONAL_SPLIT blocks.
DIAGONAL_SPLIT = 4
MIN_SPLIT_ROWS = 128


@dataclass(frozen=True)
class Tile:
    """Rows [row_start, row_stop) against columns [col_start, col_stop) of the sorted rows."""

    row_start: int
    row_stop: int
    col_start: int
    col_stop: int

    @property
    def diagonal(self):
        """True when rows and columns are the same block: only the strict upper triangle counts."""
        return self.row_start == self.col_start

    @property
    def shape(self):
        return self.row_stop - self.row_start, self.col_stop - self.col_start

    @property
    def n_pairs(self):
        """Unordered pairs this tile scores."""
        rows, cols = self.shape
        return rows * (rows - 1) // 2 if self.diagonal else rows * cols


def _blocks(start, stop, size):
    return [(first, min(first + size, stop)) for first in range(start, stop, size)]


def _upper_triangle(blocks):
    tiles = []
    for a, (row_start, row_stop) in enumerate(blocks):
        for col_start, col_stop in blocks[a:]:
            tiles.append(Tile(row_start, row_stop, col_start, col_stop))
    return tiles


def plan_tiles(n_rows, tile):
    """All tiles of the upper triangle of an n_rows x n_rows matrix, in row-major block order."""
    if tile < 1:
        raise MfftoolsError(f"--tile must be at least 1, got {tile}")
    tiles = []
    for tile_ in _upper_triangle(_blocks(0, n_rows, tile)):
        rows = tile_.shape[0]
        if tile_.diagonal and rows >= DIAGONAL_SPLIT * MIN_SPLIT_ROWS:
            sub_rows = -(-rows // DIAGONAL_SPLIT)
            tiles.extend(_upper_triangle(_blocks(tile_.row_start, tile_.row_stop, sub_rows)))
        else:
            tiles.append(tile_)
    return tiles


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
