"""Streaming passes over the tiles of the score matrix.

`score_pass` is the single pass of the instance protocol: it scores each tile (fp32 matmul of
two blocks of normalised rows), copies out the tile's genuine scores, and feeds its impostor
scores above the running cut-off into the top set. `count_pass` counts, per row, the impostor
pairs above given thresholds; it is needed only when a threshold lands where the top set cannot
list the accepted pairs (a tie of many pairs right at the cut-off).

Memory: the rows (N x D), one tile of scores, the genuine scores and the top set; never N x N.
"""
import contextlib
import logging

import numpy as np
import torch
from tqdm import tqdm

from mfftools.evaluation.topset import KEEP_ALL, float32

logger = logging.getLogger(__name__)

# Tile scores are scanned in runs of BLOCK values: the run maxima say which runs hold candidates.
BLOCK = 128


@contextlib.contextmanager
def serial(device):
    """One CPU thread for the memory-bound work between the products (masking and scanning tiles,
    the top set, centroids, counts).

    That work is many short operations. With several threads each of them waits for the whole
    thread pool, and on a shared machine a descheduled thread stalls it: measured on two loaded
    cores, one thread scanned a tile and extracted its candidates up to 5x faster, and a scan
    bound by memory bandwidth gains little from a second thread anyway. The matrix products keep
    every thread. The previous thread count is restored on exit; on other devices nothing changes.
    """
    if device.type != "cpu":
        yield
        return
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


class _TileScorer:
    """Scores tiles into one reused buffer, with genuine and diagonal (i == j) cells at -inf.

    On a diagonal tile the lower triangle is set to -inf only when asked (`mask_lower`); otherwise
    its cells, mirrors of the upper ones, stay and the caller drops them by position (cheaper than
    a pass over the tile).
    """

    def __init__(self, rows, layout, max_tile_cells):
        self.rows = rows
        self.layout = layout
        self.device = rows.device
        self.buffer = torch.empty(max_tile_cells, dtype=torch.float32, device=self.device)
        self._lower = {}

    def __call__(self, tile, genuine_out=None, mask_lower=True):
        """The tile's scores (a view of the buffer); genuine scores go to genuine_out (clamped)."""
        n_rows, n_cols = tile.shape
        scores = self.buffer[: n_rows * n_cols].view(n_rows, n_cols)
        torch.mm(
            self.rows[tile.row_start : tile.row_stop],
            self.rows[tile.col_start : tile.col_stop].T,
            out=scores,
        )
        with serial(self.device):
            self._mask(tile, scores, genuine_out, mask_lower)
        return scores

    def _mask(self, tile, scores, genuine_out, mask_lower):
        n_rows, n_cols = tile.shape
        pairs = self.layout.genuine_in_tile(tile)
        if len(pairs):
            # Flat positions: 1-d index_select/index_fill_ are far faster than 2-d indexing.
            local_i = self.layout.genuine_i[pairs].astype(np.int64) - tile.row_start
            local_j = self.layout.genuine_j[pairs].astype(np.int64) - tile.col_start
            flat = scores.view(-1)
            cells = torch.from_numpy(local_i * n_cols + local_j).to(self.device)
            if genuine_out is not None:
                positions = torch.from_numpy(pairs).to(self.device)
                genuine_out.index_copy_(0, positions, flat.index_select(0, cells).clamp_(-1.0, 1.0))
            flat.index_fill_(0, cells, float("-inf"))
            if tile.diagonal:  # the mirrors, when the lower triangle is kept
                mirrors = torch.from_numpy(local_j * n_cols + local_i).to(self.device)
                flat.index_fill_(0, mirrors, float("-inf"))
        if tile.diagonal:
            if mask_lower:
                scores.masked_fill_(self._lower_triangle(n_rows), float("-inf"))
            else:
                scores.diagonal().fill_(float("-inf"))

    def _lower_triangle(self, size):
        if size not in self._lower:
            self._lower[size] = torch.ones(size, size, dtype=torch.bool, device=self.device).tril()
        return self._lower[size]


def _progress(tiles, enabled):
    return tqdm(
        tiles,
        total=len(tiles),
        unit="tile",
        desc="scoring tiles",
        disable=not enabled,
        leave=False,
    )


def _candidates(scores, topset):
    """Flat positions and raw values of the tile's scores >= the top set's cut.

    While the set is still filling (cut KEEP_ALL), the cut is first raised to the `keep`-th largest
    of the tile's run maxima when there are that many runs: those are `keep` distinct cells, each
    a different pair (the caller masks the lower triangle of a diagonal tile for this), so at least
    `keep` pairs score >= it and the set's invariant holds.
    """
    flat = scores.view(-1)
    n_runs = flat.numel() // BLOCK
    runs = flat[: n_runs * BLOCK].view(n_runs, BLOCK)
    tail = flat[n_runs * BLOCK :]
    run_max = runs.amax(dim=1) if n_runs else runs.new_empty(0)
    if topset.cut == KEEP_ALL and n_runs >= topset.keep:
        kth = torch.kthvalue(run_max, n_runs - topset.keep + 1).values
        topset.raise_cut(min(float(kth), 1.0))
    cut = topset.cut
    picked_runs = torch.nonzero(run_max >= cut).squeeze(1)
    hits = torch.nonzero(runs.index_select(0, picked_runs) >= cut)
    positions = picked_runs.index_select(0, hits[:, 0]) * BLOCK + hits[:, 1]
    if tail.numel():
        tail_hits = torch.nonzero(tail >= cut).squeeze(1)
        positions = torch.cat([positions, tail_hits + n_runs * BLOCK])
    return positions, flat.index_select(0, positions)


def score_pass(rows, layout, tiles, topset, progress=False):
    """Score `tiles`; returns the genuine scores (zero for pairs outside these tiles).

    rows: the L2-normalised embeddings in sorted order, float32, on the compute device.
    """
    max_cells = max((tile.shape[0] * tile.shape[1] for tile in tiles), default=1)
    scorer = _TileScorer(rows, layout, max_cells)
    genuine = torch.zeros(len(layout.genuine_i), dtype=torch.float32, device=rows.device)
    for tile in _progress(tiles, progress):
        # While the set fills, a diagonal tile's mirrored lower half must not count twice.
        filling = topset.cut == KEEP_ALL
        scores = scorer(tile, genuine_out=genuine, mask_lower=filling)
        with serial(rows.device):
            positions, values = _candidates(scores, topset)
            n_cols = tile.shape[1]
            rows_i = tile.row_start + torch.div(positions, n_cols, rounding_mode="floor")
            rows_j = tile.col_start + positions % n_cols
            if tile.diagonal and not filling:
                upper = rows_i < rows_j
                values, rows_i, rows_j = values[upper], rows_i[upper], rows_j[upper]
            topset.add(values.clamp_(-1.0, 1.0), rows_i, rows_j)
    logger.debug("top set: %d pairs above %.6g, %d at it", len(topset), topset.cut, topset.ties)
    return genuine


def count_pass(rows, layout, tiles, thresholds, n_groups, progress=False):
    """Impostor pairs scoring > each threshold, per sorted row and per group of the other image.

    Returns int64 [T, N, G]: [k, i, g] counts the impostors j of group g with s_ij > thresholds[k]
    (both orders of each pair are counted, as everywhere in the protocol).
    """
    max_cells = max((tile.shape[0] * tile.shape[1] for tile in tiles), default=1)
    scorer = _TileScorer(rows, layout, max_cells)
    group = torch.from_numpy(layout.group).to(rows.device)
    counts = torch.zeros(
        len(thresholds), layout.n_rows, n_groups, dtype=torch.int64, device=rows.device
    )
    for tile in _progress(tiles, progress):
        scores = scorer(tile)
        row_group = group[tile.row_start : tile.row_stop]
        col_group = group[tile.col_start : tile.col_stop]
        for k, threshold in enumerate(thresholds):
            if float32(threshold) >= 1.0:
                continue  # clamped scores never exceed 1; raw ones may, by rounding
            accepted = scores > threshold
            for g in range(n_groups):
                counts[k, tile.row_start : tile.row_stop, g] += (accepted & (col_group == g)).sum(1)
                counts[k, tile.col_start : tile.col_stop, g] += (
                    accepted & (row_group == g)[:, None]
                ).sum(0)
    return counts
