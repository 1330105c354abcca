"""The running top set of pair scores: every pair above a cut-off, and a count of ties at it.

Invariant, over the pairs seen so far (unordered pairs {i, j}, canonical scores in [-1, 1]):
  * the held pairs are exactly those scoring strictly above `cut`;
  * `ties` counts the pairs scoring exactly `cut` (their rows are not kept);
  * `cut` is never above the `keep`-th largest score seen (so at least `keep` pairs score >= cut),
    or `cut` is KEEP_ALL and every pair seen is held.
Raising the cut to the `keep`-th largest value held leaves fewer than `keep` pairs strictly above
it, so after every prune at most `keep - 1` pairs are held; pruning runs whenever more than
2 x `keep` are held, which bounds the set by 2 x `keep` plus one tile's candidates.

Why `keep` pairs are enough (threshold.py states the use): the threshold search asks for
count(s > t) only where the answer is at most about 1.1 x target x pairs; any t whose answer the
set cannot give exactly lies below the cut, and then count(s > t) >= count(s >= cut) >= keep is a
lower bound that already decides the search step.

Because the scores are canonical, the set's final content (`finalize`) depends only on the pairs,
not on the tiles, their order, the screening precision or the ranks that saw them.
"""
import math
from dataclasses import dataclass

import torch

from mfftools.evaluation.engine.blocks import Runs, mask_lower_triangle
from mfftools.evaluation.engine.threads import for_work
from mfftools.evaluation.engine.scoring import round_down

# Below every clamped score: while the cut is KEEP_ALL every pair is held.
KEEP_ALL = -2.0


def to_dtype(value, dtype=torch.float32):
    """The value of `dtype` that a comparison of `dtype` scores with the Python float uses."""
    return float(torch.tensor(value, dtype=dtype))


def next_up(value, dtype=torch.float32):
    """The smallest value of `dtype` above the `dtype` value `value`."""
    value = torch.tensor(value, dtype=dtype)
    return float(torch.nextafter(value, torch.tensor(math.inf, dtype=dtype)))


@dataclass
class TopSetState:
    """What a top set holds: its cut, the ties at it, and the pairs above it (any order)."""

    cut: float
    ties: int
    values: torch.Tensor
    rows_i: torch.Tensor
    rows_j: torch.Tensor


class PairTopSet:
    """The largest pair scores with their two rows; see the module docstring."""

    def __init__(self, keep, device="cpu", score_dtype=torch.float32, row_dtype=torch.int32):
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        self.keep = int(keep)
        self.score_dtype = score_dtype
        self.cut = KEEP_ALL
        self.ties = 0
        self.device = torch.device(device)
        self._values = torch.empty(0, dtype=score_dtype, device=self.device)
        self._rows_i = torch.empty(0, dtype=row_dtype, device=self.device)
        self._rows_j = torch.empty(0, dtype=row_dtype, device=self.device)
        self._pending = []
        self._pending_count = 0
        self._finalized = False

    def __len__(self):
        return len(self._values) + self._pending_count

    @property
    def filling(self):
        """True while every pair seen is held (the cut has not been raised yet)."""
        return self.cut == KEEP_ALL

    @property
    def n_at_or_above_cut(self):
        """Pairs seen scoring >= cut (all pairs seen while filling)."""
        return len(self) + self.ties

    def add(self, values, rows_i, rows_j):
        """Add pairs with their canonical scores; those below the cut are dropped, those at it
        counted. Prunes when more than 2 x keep are held."""
        if not self.filling:
            at_cut = values == self.cut
            n_at_cut = int(at_cut.sum())
            self.ties += n_at_cut
            above = values > self.cut
            if n_at_cut or not bool(above.all()):
                values, rows_i, rows_j = values[above], rows_i[above], rows_j[above]
        if len(values):
            self._pending.append((values.to(self.score_dtype), rows_i.to(self._rows_i.dtype),
                                  rows_j.to(self._rows_j.dtype)))
            self._pending_count += len(values)
        if len(self) > 2 * self.keep:
            self.prune()

    def raise_cut(self, new_cut):
        """Move the cut up to `new_cut` (a score value); a lower value changes nothing.

        The caller guarantees that at least `keep` pairs seen (or about to be added) score
        >= new_cut. Cuts at or below -1 are ignored (every score is >= -1).
        """
        if new_cut <= self.cut or new_cut <= -1.0:
            return
        self._consolidate()
        self.ties = int((self._values == new_cut).sum())
        above = self._values > new_cut
        self._values, self._rows_i, self._rows_j = (
            self._values[above], self._rows_i[above], self._rows_j[above]
        )
        self.cut = new_cut

    def prune(self):
        """Raise the cut to the `keep`-th largest score held when that is above the current cut."""
        self._consolidate()
        if len(self._values) >= self.keep:
            rank = len(self._values) - self.keep + 1  # kthvalue counts from the smallest
            kth = float(torch.kthvalue(self._values.cpu(), rank).values)
            self.raise_cut(kth)

    def _consolidate(self):
        if self._pending:
            parts = [(self._values, self._rows_i, self._rows_j)] + self._pending
            self._values = torch.cat([part[0] for part in parts])
            self._rows_i = torch.cat([part[1] for part in parts])
            self._rows_j = torch.cat([part[2] for part in parts])
            self._pending = []
            self._pending_count = 0

    def held_values(self):
        """The scores of the held pairs (all above the cut), in no particular order."""
        self._consolidate()
        return self._values

    def state(self):
        """The set's content, for merging with other ranks' sets."""
        self._consolidate()
        return TopSetState(self.cut, self.ties, self._values, self._rows_i, self._rows_j)

    @classmethod
    def union(cls, keep, states, device="cpu"):
        """One set holding the union of sets that saw disjoint pairs (e.g. one per rank).

        They merge at the highest cut C of any of them: each holds all its pairs above its own
        cut <= C, hence above C, and its pairs at exactly C are counted; C is at most the
        `keep`-th largest score of all pairs together, because one set's `keep`-th largest is.
        """
        cut = max(state.cut for state in states)
        merged = cls(keep, device=device, score_dtype=states[0].values.dtype,
                     row_dtype=states[0].rows_i.dtype)
        ties = 0
        parts = []
        for state in states:
            values, rows_i, rows_j = state.values, state.rows_i, state.rows_j
            if cut != KEEP_ALL:
                ties += int((values == cut).sum()) + (state.ties if state.cut == cut else 0)
                above = values > cut
                values, rows_i, rows_j = values[above], rows_i[above], rows_j[above]
            parts.append((values, rows_i, rows_j))
        merged._values = torch.cat([part[0] for part in parts]).to(device)
        merged._rows_i = torch.cat([part[1] for part in parts]).to(device)
        merged._rows_j = torch.cat([part[2] for part in parts]).to(device)
        merged.cut, merged.ties = cut, ties
        return merged

    def finalize(self):
        """Canonical state: cut at exactly the `keep`-th largest score of all pairs (or KEEP_ALL).

        After it the content depends only on the scores, not on the order in which pairs came.
        Pairs sorted by descending score (ties by rows), on the CPU.
        """
        self.prune()
        values, rows_i, rows_j = self._values.cpu(), self._rows_i.cpu(), self._rows_j.cpu()
        # Order by (score descending, i, j): the same order whatever order the pairs came in.
        order = torch.argsort(rows_j.long(), stable=True)
        order = order[torch.argsort(rows_i[order].long(), stable=True)]
        order = order[torch.argsort(values[order], descending=True, stable=True)]
        self._values, self._rows_i, self._rows_j = values[order], rows_i[order], rows_j[order]
        self.device = torch.device("cpu")
        self._ascending_negated = -self._values
        self._finalized = True
        return self

    # Queries, valid after finalize(): counts of unordered pairs scoring > t (t a Python float,
    # compared in the score dtype as torch compares a tensor with a Python number).

    def pairs(self):
        """(values, rows_i, rows_j) of the held pairs, by descending score."""
        assert self._finalized, "finalize() first"
        return self._values, self._rows_i, self._rows_j

    def count_above(self, threshold):
        """(count of pairs scoring > threshold, exact). When not exact, the count is a lower bound.

        Exact when every score above the threshold (in the score dtype) is >= the cut: s > t is
        s >= next_up(t), and that holds when next_up(t) >= cut.
        """
        t = to_dtype(threshold, self.score_dtype)
        # values are sorted descending: the pairs above t are a prefix.
        held_above = int(torch.searchsorted(
            self._ascending_negated, torch.tensor([-t], dtype=self.score_dtype), right=False)[0])
        if self.filling or t >= self.cut:
            return held_above, True
        if next_up(t, self.score_dtype) >= self.cut:
            return held_above + self.ties, True
        return self.n_at_or_above_cut, False

    def rows_above(self, threshold):
        """Rows (i, j) of every pair scoring > threshold, or None when the set cannot list them."""
        t = to_dtype(threshold, self.score_dtype)
        if not self.filling and t < self.cut:
            return None
        above = self._values > t
        return self._rows_i[above], self._rows_j[above]

    def value_at(self, rank):
        """The rank-th largest score (0-based), or None when it lies below the cut."""
        if rank < len(self._values):
            return float(self._values[rank])
        if rank < len(self._values) + self.ties:
            return self.cut
        return None


class PairCollector:
    """Feeds the screened blocks of a pass into a PairTopSet with canonical scores.

    A cell can enter the set only if its canonical score reaches the cut, so only cells whose
    screened score is >= cut - E (the Scorer's `screen_floor`) are rescored. Whenever a block offers more than `keep` such
    cells (always while the set fills), the cut is first raised to v - E, v the `keep`-th largest
    screened value among distinct cells of the block (first over run maxima, then over the
    candidates): at least `keep` pairs score >= v - E canonically.
    """

    def __init__(self, topset, scorer):
        self.topset, self.scorer = topset, scorer

    def add(self, block):
        tile, scores = block.tile, block.scores
        with for_work(scores.device, scores.numel()):
            # While filling, a symmetric tile's mirrored lower half must not count twice.
            lower_masked = self.topset.filling and tile.symmetric
            if lower_masked:
                mask_lower_triangle(scores)
            runs = Runs(scores)
            if self.topset.filling:
                kth = runs.kth_largest(self.topset.keep)
                if kth is not None:
                    self.topset.raise_cut(round_down(self.scorer.lower_bound(kth),
                                                     torch.float32))
            if self.topset.filling:  # every cell but the masked ones (-inf)
                floor = torch.finfo(scores.dtype).min
            else:
                floor = self.scorer.screen_floor(self.topset.cut)
            positions = runs.positions_at_least(floor)
            rows_i, rows_j = block.global_pairs(positions)
            screened = runs.flat[positions]
            if tile.symmetric and not lower_masked:
                upper = rows_i < rows_j
                rows_i, rows_j, screened = rows_i[upper], rows_j[upper], screened[upper]
            if len(screened) + len(self.topset) > self.topset.keep:
                # The held pairs' scores and the candidates' screened values - E are lower
                # bounds of distinct pairs' canonical scores: their keep-th largest is a cut
                # already proven, before anything is rescored.
                self.topset.raise_cut(self._proven_cut(screened, rows_i, rows_j))
                near = screened >= self.scorer.screen_floor(self.topset.cut)
                rows_i, rows_j = rows_i[near], rows_j[near]
            values = self.scorer.rescore(rows_i, rows_j)
            self.topset.add(values, rows_i, rows_j)

    def _proven_cut(self, screened, rows_i, rows_j):
        """The keep-th largest lower bound of the held pairs and of `screened` candidates."""
        bounds = torch.cat([self.topset.held_values().double(),
                            self.scorer.lower_bounds(screened, rows_i, rows_j)])
        kth = torch.kthvalue(bounds.cpu(), len(bounds) - self.topset.keep + 1).values
        return round_down(float(kth), torch.float32)


class RankedPairs:
    """The `keep` best pairs in one complete order: score descending, then the pair's smaller
    key, then its larger (`keys`: one integer per row, e.g. its row in the file), so that tied
    scores have one answer whatever order the pairs come in. A PairCollector fills it as it
    fills a PairTopSet, with one difference: a pair scoring exactly the cut is held, since a
    smaller key may still place it among the best.

    Invariant: every pair seen and not held is behind at least `keep` pairs seen in the order
    (it scores below the cut, or a prune put `keep` pairs ahead of it), so the best `keep` are
    held; pruning, whenever more than 2 x `keep` are held, keeps the first `keep`.
    """

    def __init__(self, keep, keys, device="cpu"):
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        self.keep = int(keep)
        self.device = torch.device(device)
        self.keys = torch.as_tensor(keys, dtype=torch.int64).to(self.device)
        self.cut = KEEP_ALL
        self._values = torch.empty(0, dtype=torch.float32, device=self.device)
        self._rows_i = torch.empty(0, dtype=torch.int64, device=self.device)
        self._rows_j = torch.empty(0, dtype=torch.int64, device=self.device)
        self._pending = []

    def __len__(self):
        return len(self._values) + sum(len(part[0]) for part in self._pending)

    @property
    def filling(self):
        return self.cut == KEEP_ALL

    def add(self, values, rows_i, rows_j):
        """Add pairs with their scores; those below the cut are dropped."""
        values, rows_i, rows_j = (part.to(self.device) for part in (
            values.float(), rows_i.long(), rows_j.long()))
        if not self.filling:
            kept = values >= self.cut
            values, rows_i, rows_j = values[kept], rows_i[kept], rows_j[kept]
        if len(values):
            self._pending.append((values, rows_i, rows_j))
        if len(self) > 2 * self.keep:
            self.prune()

    def raise_cut(self, new_cut):
        """Drop the pairs scoring below `new_cut`, which at least `keep` pairs seen (or about to
        be added) reach; a lower value, or one at or below -1, changes nothing."""
        if new_cut <= self.cut or new_cut <= -1.0:
            return
        self._consolidate()
        kept = self._values >= new_cut
        self._values, self._rows_i, self._rows_j = (
            self._values[kept], self._rows_i[kept], self._rows_j[kept])
        self.cut = new_cut

    def held_values(self):
        self._consolidate()
        return self._values

    def prune(self):
        """Keep the first `keep` pairs in the order; the cut rises to the last one's score."""
        self._sort()
        if len(self._values) > self.keep:
            self._values, self._rows_i, self._rows_j = (
                self._values[: self.keep], self._rows_i[: self.keep], self._rows_j[: self.keep])
            self.cut = max(self.cut, float(self._values[-1]))

    def pairs(self):
        """(values, rows_i, rows_j) of the best `keep` pairs seen (all of them when fewer), in
        the order, on the CPU; rows_i is the row of the smaller key."""
        self.prune()
        return self._values.cpu(), self._rows_i.cpu(), self._rows_j.cpu()

    def _consolidate(self):
        if self._pending:
            parts = [(self._values, self._rows_i, self._rows_j)] + self._pending
            self._values, self._rows_i, self._rows_j = (
                torch.cat([part[k] for part in parts]) for k in range(3))
            self._pending = []

    def _sort(self):
        self._consolidate()
        key_i, key_j = self.keys[self._rows_i], self.keys[self._rows_j]
        swap = key_j < key_i
        self._rows_i, self._rows_j = (torch.where(swap, self._rows_j, self._rows_i),
                                      torch.where(swap, self._rows_i, self._rows_j))
        order = torch.argsort(self.keys[self._rows_j], stable=True)
        order = order[torch.argsort(self.keys[self._rows_i][order], stable=True)]
        order = order[torch.argsort(self._values[order], descending=True, stable=True)]
        self._values, self._rows_i, self._rows_j = (
            self._values[order], self._rows_i[order], self._rows_j[order])
