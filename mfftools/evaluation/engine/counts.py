"""Exact counts of the pairs scoring above thresholds, from screened blocks.

Screened scores decide most cells: a cell above t + E is surely above t canonically, one at or
below t - E surely not; only the cells between are rescored.
  * ThresholdCounter: per row and group of the other row, above common thresholds (the fallback
    of a threshold search when a top set cannot list the accepted pairs);
  * RowCounter: per row, above a threshold of its own (e.g. how many templates outscore a
    search's mated one);
  * LevelCounter: in all, above each of many thresholds at once (the points of a curve).
"""
import math

import torch

from mfftools.evaluation.engine.blocks import mask_lower_triangle
from mfftools.evaluation.engine.threads import for_work
from mfftools.evaluation.engine.topset import to_dtype


class ThresholdCounter:
    """Accumulates counts[k, i, g]: pairs (i, j) with canonical score > thresholds[k] and j in
    group g, both orders of each pair (rows and columns index the same set of rows).

    thresholds: Python floats, compared in float32 as float32 scores are compared with them;
    group: group index of each row (a tensor on the scores' device).
    """

    def __init__(self, thresholds, group, n_groups, scorer):
        self.thresholds = [to_dtype(threshold) for threshold in thresholds]
        self.group, self.n_groups, self.scorer = group, n_groups, scorer
        self.counts = torch.zeros(len(thresholds), len(group), n_groups, dtype=torch.int64,
                                  device=group.device)

    def add(self, block):
        tile, scores = block.tile, block.scores
        with for_work(scores.device, scores.numel()):
            if tile.symmetric:  # each unordered pair once: the strict upper triangle
                mask_lower_triangle(scores)
            rows = slice(tile.row_start, tile.row_stop)
            cols = slice(tile.col_start, tile.col_stop)
            row_group, col_group = self.group[rows], self.group[cols]
            for k, threshold in enumerate(self.thresholds):
                if threshold >= 1.0:
                    continue  # canonical scores never exceed 1
                self._add_threshold(k, threshold, block, row_group, col_group)

    def _add_threshold(self, k, threshold, block, row_group, col_group):
        tile, scores = block.tile, block.scores
        sure = scores > self.scorer.screen_ceiling(threshold)
        for g in range(self.n_groups):
            self.counts[k, tile.row_start : tile.row_stop, g] += (sure & (col_group == g)).sum(1)
            self.counts[k, tile.col_start : tile.col_stop, g] += (
                sure & (row_group == g)[:, None]
            ).sum(0)
        low = self.scorer.screen_floor(threshold)
        band = torch.nonzero(((scores > low) & ~sure).view(-1)).squeeze(1)
        rows_i, rows_j = block.global_pairs(band)
        accepted = self.scorer.rescore(rows_i, rows_j) > threshold
        rows_i, rows_j = rows_i[accepted], rows_j[accepted]
        ones = torch.ones(len(rows_i), dtype=torch.int64, device=scores.device)
        flat = self.counts[k].view(-1)
        flat.index_add_(0, rows_i * self.n_groups + self.group[rows_j], ones)
        flat.index_add_(0, rows_j * self.n_groups + self.group[rows_i], ones)


class RowCounter:
    """Accumulates counts[i]: the columns j with canonical score > thresholds[i] (masked cells
    never count). thresholds: one float32 value per left row, a tensor on the scores' device.

    A block is read CHUNK_CELLS cells (whole rows) at a time: cells surely above their row's
    threshold are summed, and only the band within E of it is listed and rescored, so what is
    held at once stays a few MB even when a row's threshold is low and most cells lie above it.
    """

    CHUNK_CELLS = 1 << 18

    def __init__(self, thresholds, scorer):
        self.thresholds, self.scorer = thresholds, scorer
        rows = torch.arange(len(thresholds))
        self._high = scorer.screen_ceilings(thresholds, rows)
        self._low = scorer.screen_floors(thresholds, rows)
        self.counts = torch.zeros(len(thresholds), dtype=torch.int64, device=thresholds.device)

    def add(self, block):
        tile, scores = block.tile, block.scores
        step = max(1, self.CHUNK_CELLS // max(scores.shape[1], 1))
        with for_work(scores.device, scores.numel()):
            for first in range(0, scores.shape[0], step):
                self._add_rows(scores[first : first + step], tile.row_start + first,
                               tile.col_start)

    def _add_rows(self, scores, row_start, col_start):
        rows = slice(row_start, row_start + len(scores))
        sure = scores > self._high[rows, None]
        self.counts[rows] += sure.sum(1)
        band = torch.nonzero((scores > self._low[rows, None]) & ~sure)
        rows_i, rows_j = band[:, 0] + row_start, band[:, 1] + col_start
        rescored = self.scorer.rescore(rows_i, rows_j)
        above = rows_i[rescored > self.thresholds[rows_i]]
        self.counts.index_add_(0, above, torch.ones_like(above))


class LevelCounter:
    """Accumulates, for many thresholds at once (the points of a DET curve), how many pairs have
    a canonical score > each; each pair once (a symmetric tile's strict upper triangle).

    A cell's screened score s is binned on a fine grid (width w, a power of two <= E/2, over
    [-1, 1]); a cell whose bin lies more than `reach` bins from every threshold's bin is more
    than E from every threshold, so its bin alone says how many thresholds it is above (up to
    one bin of float32 rounding in the binning, which `reach` allows for). The other cells are
    read one by one: a threshold within E of s decides by the canonical score (rescored), the
    others by s. The thresholds' bins are a few of 2/w, so few cells are read one by one.
    Memory: a chunk of CHUNK_CELLS cells at a time and a count per threshold.
    """

    CHUNK_CELLS = 1 << 20

    def __init__(self, thresholds, scorer):
        if scorer.score_map is not None:
            raise ValueError("LevelCounter bins raw scores: it takes no score map")
        self.scorer = scorer
        device = scorer.device
        levels = sorted({float(torch.tensor(t, dtype=torch.float32)) for t in thresholds})
        self.thresholds = torch.tensor(levels, dtype=torch.float64, device=device)  # ascending
        bound = scorer.bound
        self.width = 2.0 ** math.floor(math.log2(bound / 2))
        self.top = math.floor(2.0 / self.width) + 1  # the highest bin (scores slightly above 1)
        bins = torch.floor((self.thresholds + 1.0) / self.width).long()  # exact in float64
        reach = math.ceil(bound / self.width) + 2
        every = torch.arange(-1, self.top + 1, device=device)  # bin q is stored at q + 1
        self._above = torch.searchsorted(bins, every, right=False)  # thresholds in lower bins
        near = (every[:, None] - bins[None, :]).abs() <= reach
        self._near = near.any(dim=1)
        dropped = len(levels) + 1
        self._above[0] = dropped  # bin -1: masked cells (-inf), and scores below -1
        self._near[0] = False
        self.counts_by_rank = torch.zeros(dropped + 1, dtype=torch.int64, device=device)

    def add(self, block):
        tile, scores = block.tile, block.scores
        with for_work(scores.device, scores.numel()):
            if tile.symmetric:  # each unordered pair once: the strict upper triangle
                mask_lower_triangle(scores)
            flat = scores.view(-1)
            for first in range(0, len(flat), self.CHUNK_CELLS):
                self._add_cells(block, flat[first : first + self.CHUNK_CELLS], first)

    def _add_cells(self, block, cells, offset):
        stored = (cells.float().add(1.0).mul_(1.0 / self.width).floor_()
                  .clamp_(-1, self.top).add_(1).long())
        ranks = self._above[stored]
        self.counts_by_rank += torch.bincount(ranks, minlength=len(self.counts_by_rank))
        near = torch.nonzero(self._near[stored]).squeeze(1)
        if not len(near):
            return
        screened = cells[near].double()
        bound = self.scorer.bound
        low = torch.searchsorted(self.thresholds, screened - bound, right=False)
        high = torch.searchsorted(self.thresholds, screened + bound, right=False)
        exact = low.clone()  # no threshold within E: the screened score decides
        banded = torch.nonzero(low != high).squeeze(1)
        if len(banded):
            rows_i, rows_j = block.global_pairs(near[banded] + offset)
            canonical = self.scorer.rescore(rows_i, rows_j).double()
            exact[banded] = torch.searchsorted(self.thresholds, canonical, right=False)
        self.counts_by_rank.index_add_(0, exact, torch.ones_like(exact))
        self.counts_by_rank.index_add_(0, ranks[near], -torch.ones_like(exact))

    def counts(self):
        """Pairs scoring > each threshold, in the order of `thresholds` (ascending)."""
        kept = self.counts_by_rank[1 : len(self.thresholds) + 1]
        return torch.flip(torch.cumsum(torch.flip(kept, [0]), 0), [0])
