"""Exact counts of the pairs scoring above thresholds, from screened blocks.

Screened scores decide most cells: a cell above t + E is surely above t canonically, one at or
below t - E surely not; only the cells between are rescored.
  * ThresholdCounter: per row and group of the other row, above common thresholds (the fallback
    of a threshold search when a top set cannot list the accepted pairs);
  * RowCounter: per row, above a threshold of its own (e.g. how many templates outscore a
    search's mated one).
"""
import torch

from mfftools.evaluation.engine.blocks import mask_lower_triangle
from mfftools.evaluation.engine.scoring import (
    round_down, round_down_tensor, round_up, round_up_tensor)
from mfftools.evaluation.engine.threads import serial
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
        with serial(scores.device):
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
        dtype = scores.dtype
        sure = scores > round_up(threshold + self.scorer.bound, dtype)
        for g in range(self.n_groups):
            self.counts[k, tile.row_start : tile.row_stop, g] += (sure & (col_group == g)).sum(1)
            self.counts[k, tile.col_start : tile.col_stop, g] += (
                sure & (row_group == g)[:, None]
            ).sum(0)
        low = round_down(threshold - self.scorer.bound, dtype)
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
        wide = thresholds.double()
        self._high = round_up_tensor(wide + scorer.bound, scorer.score_dtype)
        self._low = round_down_tensor(wide - scorer.bound, scorer.score_dtype)
        self.counts = torch.zeros(len(thresholds), dtype=torch.int64, device=thresholds.device)

    def add(self, block):
        tile, scores = block.tile, block.scores
        step = max(1, self.CHUNK_CELLS // max(scores.shape[1], 1))
        with serial(scores.device):
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
