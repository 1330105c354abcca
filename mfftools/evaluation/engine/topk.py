"""The k best columns of every row by canonical score, from screened blocks.

Screening keeps, for each row, every cell within 2E of the row's k-th largest screened value so
far; as blocks come that value rises and the candidates below it are dropped (the way a range
search tightens its radius as results grow). At the end the candidates are rescored and each
row's k best taken, ties going to the lower column. This is exact: a cell left out scores
(screened) below s_k - 2E, s_k the row's k-th largest screened value, so canonically below
s_k - E, while the k cells behind s_k all score at least s_k - E canonically; the k best are
candidates.
"""
import math

import torch

from mfftools.evaluation.engine.threads import for_work

_GROUP = 8  # cells per group in the grouped top-k


class RowTopK:
    """Accumulates, per row of the left operand, its k best columns.

    `mirror`: the plan is a triangle over one matrix, so a block of rows a against columns b also
    holds, transposed, rows b against columns a (symmetric blocks already hold both).
    """

    def __init__(self, n_rows, k, scorer, mirror=False):
        self.k, self.scorer, self.mirror = k, scorer, mirror
        dtype, device = scorer.score_dtype, scorer.device
        self.best = torch.full((n_rows, k), -math.inf, dtype=dtype, device=device)
        largest = max(len(scorer.left), len(scorer.right))
        self._index_dtype = torch.int32 if largest < 2**31 else torch.int64  # 10 bytes a candidate
        self._chunks = []
        self._stored = 0
        self._prune_at = 4 * n_rows * k + 65536

    def add(self, block):
        tile, scores = block.tile, block.scores
        with for_work(scores.device, scores.numel()):
            self._add(tile.row_start, tile.col_start, _Cells(scores, self.k, columns=False))
            if self.mirror and not tile.symmetric:
                self._add(tile.col_start, tile.row_start, _Cells(scores, self.k, columns=True))

    def _add(self, row_start, col_start, cells):
        rows = slice(row_start, row_start + cells.n_rows)
        top = cells.top()
        self.best[rows] = torch.cat([self.best[rows], top], dim=1).topk(self.k, dim=1).values
        local_rows, local_cols, values = cells.at_least(
            self.floors(self.best[rows, -1], torch.arange(rows.start, rows.stop)))
        self._chunks.append(((local_rows + row_start).to(self._index_dtype),
                             (local_cols + col_start).to(self._index_dtype), values))
        self._stored += len(values)
        if self._stored > self._prune_at:
            self._prune()
            self._prune_at = max(self._prune_at, 2 * self._stored)

    def floors(self, kth, rows):
        """Per row of `rows`: the largest screened value below which no cell can reach the k
        best, i.e. kth - 2E rounded down to the score dtype (the lowest finite value while the
        row has seen fewer than k cells, so that -inf cells are never candidates). Under a score
        map, the floor of the lower bound of the row's k-th score."""
        lowest = torch.finfo(kth.dtype).min
        floors = self.scorer.screen_floors(
            self.scorer.lower_bounds(kth.clamp(min=lowest), rows=rows), rows)
        return torch.where(torch.isfinite(kth), floors, torch.full_like(floors, lowest))

    def _prune(self):
        rows, cols, values = (torch.cat(part) for part in zip(*self._chunks))
        keep = values >= self.floors(self.best[rows, -1], rows.long())
        self._chunks = [(rows[keep], cols[keep], values[keep])]
        self._stored = int(keep.sum())

    def finalize(self):
        """(values float32 [n_rows, k], columns int64 [n_rows, k]): canonical scores of each row's
        k best columns, descending, ties by column; -inf and -1 where a row has fewer columns."""
        n_rows = len(self.best)
        out_values = torch.full((n_rows, self.k), -math.inf, dtype=torch.float32)
        out_cols = torch.full((n_rows, self.k), -1, dtype=torch.int64)
        if not self._chunks:
            return out_values, out_cols
        self._prune()
        rows, cols, _ = self._chunks[0]
        canonical = self.scorer.rescore(rows.long(), cols.long()).cpu()
        rows, cols = rows.long().cpu(), cols.long().cpu()
        order = torch.argsort(cols, stable=True)
        order = order[torch.argsort(canonical[order], descending=True, stable=True)]
        order = order[torch.argsort(rows[order], stable=True)]
        rows, cols, canonical = rows[order], cols[order], canonical[order]
        starts = torch.cumsum(torch.bincount(rows, minlength=n_rows), 0) - torch.bincount(
            rows, minlength=n_rows)
        rank = torch.arange(len(rows)) - starts[rows]
        kept = rank < self.k
        out_values[rows[kept], rank[kept]] = canonical[kept]
        out_cols[rows[kept], rank[kept]] = cols[kept]
        return out_values, out_cols


class _Cells:
    """The cells of each row of a block (or, with `columns`, of each column: the rows of its
    transpose, without transposing it), cut into _GROUP strided groups per row: group q of a row
    holds its cells q, q + m, q + 2m, ... The group maxima find the k largest values and the
    cells above a floor with one pass over the block.

    Exact: fewer than k groups have a maximum above a row's k-th largest value v, so all of them
    are among the k groups with the largest maxima, and the other groups kept each hold a cell
    >= v, or hold every cell >= v between them. A cell >= a floor lies in a group whose maximum
    is >= the floor.
    """

    def __init__(self, scores, k, columns):
        self.k, self.columns = k, columns
        n_cells = scores.shape[0] if columns else scores.shape[1]
        self.n_rows = scores.shape[1] if columns else scores.shape[0]
        self.size = n_cells // _GROUP
        split = _GROUP * self.size
        if columns:
            self.grouped = scores[:split].reshape(_GROUP, self.size, self.n_rows)  # [g, q, r]
            self.tail = scores[split:].T
        else:
            self.grouped = scores[:, :split].reshape(self.n_rows, _GROUP, self.size)  # [r, g, q]
            self.tail = scores[:, split:]
        self.scores = scores.T if columns else scores
        if self.size >= k:
            maxima = self.grouped.amax(dim=0).T if columns else self.grouped.amax(dim=1)
            self.maxima = maxima.contiguous()  # [r, q]

    def top(self):
        """The min(k, cells) largest values of each row, unsorted: [n_rows, min(k, cells)]."""
        if self.size < self.k:
            return self.scores.topk(min(self.k, self.scores.shape[1]), dim=1, sorted=False).values
        groups = self.maxima.topk(self.k, dim=1, sorted=False).indices  # [r, k]
        if self.columns:
            members = self.grouped.gather(1, groups.T[None].expand(_GROUP, -1, -1))  # [g, k, r]
            members = members.permute(2, 0, 1).reshape(self.n_rows, -1)
        else:
            members = self.grouped.gather(2, groups[:, None, :].expand(-1, _GROUP, -1))
            members = members.reshape(self.n_rows, -1)
        candidates = torch.cat([members, self.tail], dim=1)
        return candidates.topk(self.k, dim=1, sorted=False).values

    def at_least(self, floors):
        """(rows, columns, values) of the cells >= their row's floor."""
        if self.size < self.k:
            hits = torch.nonzero(self.scores >= floors[:, None])
            return hits[:, 0], hits[:, 1], self.scores[hits[:, 0], hits[:, 1]]
        rows, groups = torch.nonzero(self.maxima >= floors[:, None]).unbind(1)
        if self.columns:
            cells = self.grouped[:, groups, rows].T  # [h, g]
        else:
            cells = self.grouped[rows, :, groups]  # [h, g]
        hit, member = torch.nonzero(cells >= floors[rows, None]).unbind(1)
        tail_rows, tail_cols = torch.nonzero(self.tail >= floors[:, None]).unbind(1)
        return (
            torch.cat([rows[hit], tail_rows]),
            torch.cat([groups[hit] + member * self.size, tail_cols + _GROUP * self.size]),
            torch.cat([cells[hit, member], self.tail[tail_rows, tail_cols]]),
        )
