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

from mfftools.evaluation.engine.threads import serial
from mfftools.evaluation.engine.scoring import round_down_tensor

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
        tile = block.tile
        with serial(block.scores.device):
            self._add(tile.row_start, tile.col_start, block.scores, _top_values)
            if self.mirror and not tile.symmetric:
                self._add(tile.col_start, tile.row_start, block.scores, _top_values_of_columns)

    def _add(self, row_start, col_start, scores, top_values):
        """Rows row_start.. of `scores` (transposed when `top_values` reads its columns)."""
        transposed = top_values is _top_values_of_columns
        view = scores.T if transposed else scores
        rows = slice(row_start, row_start + view.shape[0])
        top = top_values(scores, min(self.k, view.shape[1]))
        self.best[rows] = torch.cat([self.best[rows], top], dim=1).topk(self.k, dim=1).values
        floors = self.floors(self.best[rows, -1])
        if transposed:
            hits = torch.nonzero(scores >= floors[None, :])
            local_rows, local_cols = hits[:, 1], hits[:, 0]
            values = scores[hits[:, 0], hits[:, 1]]
        else:
            hits = torch.nonzero(scores >= floors[:, None])
            local_rows, local_cols = hits[:, 0], hits[:, 1]
            values = scores[hits[:, 0], hits[:, 1]]
        self._chunks.append(((local_rows + row_start).to(self._index_dtype),
                             (local_cols + col_start).to(self._index_dtype), values))
        self._stored += len(values)
        if self._stored > self._prune_at:
            self._prune()
            self._prune_at = max(self._prune_at, 2 * self._stored)

    def floors(self, kth):
        """Per row: the largest screened value below which no cell can reach the k best, i.e.
        kth - 2E rounded down to the score dtype (the lowest finite value while the row has
        seen fewer than k cells, so that -inf cells are never candidates)."""
        floors = round_down_tensor(kth.double() - 2.0 * self.scorer.bound, kth.dtype)
        return floors.clamp(min=torch.finfo(kth.dtype).min)

    def add_lists(self, rows, values, cols):
        """Add each row's candidate list (values and columns [len(rows), width]) from another
        screening; each list must hold every column within 2E of the row's k-th value."""
        top = values.topk(min(self.k, values.shape[1]), dim=1).values
        self.best[rows] = torch.cat([self.best[rows], top], dim=1).topk(self.k, dim=1).values
        hit = values >= self.floors(self.best[rows, -1])[:, None]
        row_index = rows[:, None].expand(-1, values.shape[1])
        self._chunks.append((row_index[hit].to(self._index_dtype), cols[hit].to(self._index_dtype),
                             values[hit].to(self.best.dtype)))
        self._stored += int(hit.sum())

    def _prune(self):
        rows, cols, values = (torch.cat(part) for part in zip(*self._chunks))
        keep = values >= self.floors(self.best[rows, -1])
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


def _top_values(scores, k):
    """The k largest values of each row of `scores` (rows contiguous), unsorted.

    Same values as `scores.topk`, found with less work: columns are cut into k-or-more groups
    (group q holds columns q, q + m, q + 2m, ...), the k groups with the largest maxima are kept,
    and the top k is taken among their cells. That is exact: fewer than k groups have a maximum
    above the k-th largest value v, so all of them are kept, and the rest of the kept groups
    each hold a cell >= v, or hold every cell >= v between them.
    """
    n, n_cols = scores.shape
    if k == 1:
        return scores.amax(dim=1, keepdim=True)
    size = n_cols // _GROUP
    if size < k:
        return scores.topk(k, dim=1, sorted=False).values
    grouped = scores[:, : _GROUP * size].reshape(n, _GROUP, size)
    top_groups = grouped.amax(dim=1).topk(k, dim=1, sorted=False).indices
    members = grouped.gather(2, top_groups[:, None, :].expand(-1, _GROUP, -1))
    candidates = torch.cat([members.reshape(n, -1), scores[:, _GROUP * size :]], dim=1)
    return candidates.topk(k, dim=1, sorted=False).values


def _top_values_of_columns(scores, k):
    """`_top_values` of the columns of `scores` (one row per column), without transposing it all.

    The groups are strided rows here, so the group maxima are element-wise maxima of whole rows;
    only they and the kept groups' cells are transposed.
    """
    n_rows, n = scores.shape
    if k == 1:
        return scores.amax(dim=0)[:, None]
    size = n_rows // _GROUP
    if size < k:
        return scores.T.topk(k, dim=1, sorted=False).values
    grouped = scores[: _GROUP * size].reshape(_GROUP, size, n)
    top_groups = grouped.amax(dim=0).T.contiguous().topk(k, dim=1, sorted=False).indices
    members = grouped.gather(1, top_groups.T[None].expand(_GROUP, -1, -1))
    candidates = torch.cat([members.reshape(-1, n), scores[_GROUP * size :]]).T.contiguous()
    return candidates.topk(k, dim=1, sorted=False).values


def faiss_row_topk(queries, database, k, scorer, exclude=None):
    """What RowTopK gives over every block, with FAISS IndexFlatIP (an exact float32 search) as
    the screening product: the same canonical values and columns.

    Each query's list is lengthened (x4) until it holds every column within 2E of its k-th
    largest value, so the candidates are the same as the blocks would give. `exclude`: per query,
    a column that is not a candidate (itself, its mated template), or -1.
    `scorer` must screen in fp32, the precision of FAISS's products.
    """
    import faiss  # noqa: PLC0415 (optional dependency)

    accumulator = RowTopK(len(queries), k, scorer)
    index = faiss.IndexFlatIP(database.shape[1])
    index.add(database.cpu().numpy())
    query_rows = queries.cpu().numpy()
    excluded = None if exclude is None else torch.as_tensor(exclude).cpu()
    todo = torch.arange(len(queries))
    width = 2 * k + 1
    while len(todo):
        width = min(width, len(database))
        values, cols = index.search(query_rows[todo.numpy()], width)
        values, cols = torch.from_numpy(values), torch.from_numpy(cols).long()
        last = values[:, -1].clone()  # every column left out scores at most this
        if excluded is not None:
            values[cols == excluded[todo][:, None]] = -math.inf
        floors = accumulator.floors(values.topk(k, dim=1).values[:, -1])
        complete = (last < floors) | (width == len(database))
        accumulator.add_lists(todo[complete], values[complete], cols[complete])
        todo = todo[~complete]
        width *= 4
    return accumulator.finalize()
