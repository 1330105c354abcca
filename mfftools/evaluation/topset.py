"""The running top set of impostor scores: every pair above a cut-off, and a count of ties at it.

Invariant, over the pairs seen so far (unordered impostor pairs {i, j}, scores clamped to [-1, 1]):
  * `values`/`rows_i`/`rows_j` hold exactly the pairs scoring strictly above `cut`;
  * `ties` counts the pairs scoring exactly `cut` (their rows are not kept);
  * `cut` is never above the `keep`-th largest score seen (so at least `keep` pairs score >= cut),
    or `cut` is KEEP_ALL and every pair seen is held.
Raising the cut to the `keep`-th largest value held leaves fewer than `keep` pairs strictly above
it, so after every prune at most `keep - 1` pairs are held; pruning runs whenever more than
2 x `keep` are held, which bounds the set by 2 x `keep` plus one tile's candidates.

Why `keep` pairs are enough (threshold.py states the use): the threshold search asks for
count(s > t) only where the answer is at most about 1.1 x target x impostors; any t whose answer
the set cannot give exactly lies below the cut, and then count(s > t) >= count(s >= cut) >= keep
is a lower bound that already decides the search step.
"""
import torch

# Below every clamped score: while the cut is KEEP_ALL every pair is held.
KEEP_ALL = -2.0


def float32(value):
    """The float32 value that a comparison of float32 scores with the Python float `value` uses."""
    return float(torch.tensor(value, dtype=torch.float32))


def next_float32(value):
    """The smallest float32 above the float32 `value`."""
    value = torch.tensor(value, dtype=torch.float32)
    return float(torch.nextafter(value, torch.tensor(float("inf"))))


class ImpostorTopSet:
    """The largest impostor scores with their two rows; see the module docstring."""

    def __init__(self, keep, device="cpu", row_dtype=torch.int32):
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        self.keep = int(keep)
        self.cut = KEEP_ALL
        self.ties = 0
        self.device = torch.device(device)
        self.values = torch.empty(0, dtype=torch.float32, device=self.device)
        self.rows_i = torch.empty(0, dtype=row_dtype, device=self.device)
        self.rows_j = torch.empty(0, dtype=row_dtype, device=self.device)
        self._pending = []
        self._pending_count = 0

    def __len__(self):
        return len(self.values) + self._pending_count

    @property
    def n_at_or_above_cut(self):
        """Pairs seen scoring >= cut (all pairs seen while the cut is KEEP_ALL)."""
        return len(self) + self.ties

    def add(self, values, rows_i, rows_j):
        """Add candidate pairs, all scoring >= cut (clamped float32 scores), then prune if due."""
        if self.cut != KEEP_ALL:
            at_cut = values == self.cut
            n_at_cut = int(at_cut.sum())
            if n_at_cut:
                self.ties += n_at_cut
                above = ~at_cut
                values, rows_i, rows_j = values[above], rows_i[above], rows_j[above]
        if len(values):
            self._pending.append((values, rows_i.to(self.rows_i.dtype), rows_j.to(self.rows_j.dtype)))
            self._pending_count += len(values)
        if len(self) > 2 * self.keep:
            self.prune()

    def raise_cut(self, new_cut):
        """Move the cut up to `new_cut` (a clamped float32 score); a lower value changes nothing.

        The caller guarantees that at least `keep` pairs seen (or about to be added) score
        >= new_cut. Cuts at or below -1 are ignored: raw scores below -1 clamp to -1, so such a
        cut could not select candidates from raw tile scores.
        """
        if new_cut <= self.cut or new_cut <= -1.0:
            return
        self._consolidate()
        self.ties = int((self.values == new_cut).sum())
        above = self.values > new_cut
        self.values, self.rows_i, self.rows_j = (
            self.values[above], self.rows_i[above], self.rows_j[above]
        )
        self.cut = new_cut

    def prune(self):
        """Raise the cut to the `keep`-th largest score seen when that is above the current cut."""
        self._consolidate()
        if len(self.values) >= self.keep:
            rank = len(self.values) - self.keep + 1  # kthvalue counts from the smallest
            kth = float(torch.kthvalue(self.values.cpu(), rank).values)
            self.raise_cut(kth)

    def _consolidate(self):
        if self._pending:
            parts = [(self.values, self.rows_i, self.rows_j)] + self._pending
            self.values = torch.cat([part[0] for part in parts])
            self.rows_i = torch.cat([part[1] for part in parts])
            self.rows_j = torch.cat([part[2] for part in parts])
            self._pending = []
            self._pending_count = 0

    def finalize(self):
        """Canonical state: cut at exactly the `keep`-th largest score of all pairs (or KEEP_ALL).

        After it the content depends only on the scores, not on the order in which tiles came,
        so one process and many ranks end with the same set. Values sorted descending, on CPU.
        """
        self.prune()
        order = torch.argsort(self.values, descending=True, stable=True)
        self.values = self.values[order].cpu()
        self.rows_i = self.rows_i[order].cpu()
        self.rows_j = self.rows_j[order].cpu()
        self.device = torch.device("cpu")
        self._ascending_negated = -self.values
        return self

    # Queries, valid after finalize(): counts of unordered pairs scoring > t (t a Python float,
    # compared in float32 as torch compares a float32 tensor with a Python number).

    def count_above(self, threshold):
        """(count of pairs scoring > threshold, exact). When not exact, the count is a lower bound.

        Exact when every score above the float32 threshold is >= the cut: scores are float32,
        so s > t32 is s >= next_float32(t32), and that holds when next_float32(t32) >= cut.
        """
        t32 = float32(threshold)
        # values are sorted descending: the pairs above t32 are a prefix.
        held_above = int(
            torch.searchsorted(self._ascending_negated, torch.tensor([-t32]), right=False)[0]
        )
        if self.cut == KEEP_ALL or t32 >= self.cut:
            return held_above, True
        if next_float32(t32) >= self.cut:
            return held_above + self.ties, True
        return self.n_at_or_above_cut, False

    def rows_above(self, threshold):
        """Rows (i, j) of every pair scoring > threshold, or None when the set cannot list them."""
        t32 = float32(threshold)
        if self.cut != KEEP_ALL and t32 < self.cut:
            return None
        above = self.values > t32
        return self.rows_i[above], self.rows_j[above]

    def value_at(self, rank):
        """The rank-th largest score (0-based), or None when it lies below the cut."""
        if rank < len(self.values):
            return float(self.values[rank])
        if rank < len(self.values) + self.ties:
            return self.cut
        return None
