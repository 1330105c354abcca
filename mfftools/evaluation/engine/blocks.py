"""The streaming pass: an iterator of scored blocks, and what accumulators need to read them.

`Scorer.blocks(tiles, mask)` screens each tile (one fast product into a reused buffer), sets the
cells of known pairs (a protocol's genuine or mated pairs, scored canonically on their own) and
the diagonal of symmetric tiles to -inf, and yields it. Accumulators (topset.PairCollector,
counts.ThresholdCounter, counts.RowCounter, topk.RowTopK) read the screened block, pick the
cells that can matter by the bound E, and ask `Scorer.rescore` for their canonical scores. An
accumulator may change the block it reads (e.g. mask a triangle): one accumulator a pass.

A Scorer may carry a score map (a calibration, mfftools.calibration.score_map): the score of a
pair is then the map of its canonical score and of its two rows' keys, non-decreasing in the
score. Accumulators never compute `cut - E` or `t + E` themselves: they ask the Scorer
(`screen_floor`, `screen_ceiling`, `lower_bound` and their per-row and per-pair forms), which
without a map gives exactly those, and with one the raw-score bounds the map proves.

Memory: the rows (and their copy in the screening dtype), one tile of screened scores and what
the accumulators keep; never rows x columns.
"""
import functools
import math
from dataclasses import dataclass

import torch
from tqdm import tqdm

from mfftools.errors import MfftoolsError
from mfftools.evaluation.engine.scoring import (
    ScreeningProduct,
    canonical_scores,
    round_down,
    round_down_tensor,
    round_up,
    round_up_tensor,
)
from mfftools.evaluation.engine.threads import for_work

# Tile scores are scanned in runs of RUN values: the run maxima say which runs hold candidates.
RUN = 128
# Cells of a pass's first tile compared with their canonical scores (Scorer.guard).
GUARD_CELLS = 128


@dataclass
class ScoredBlock:
    """One tile's screened scores ([rows, cols], a view of a reused buffer)."""

    tile: object
    scores: torch.Tensor

    def global_pairs(self, positions):
        """Row indices (left, right) of flat positions in the block."""
        n_cols = self.scores.shape[1]
        rows = self.tile.row_start + torch.div(positions, n_cols, rounding_mode="floor")
        return rows, self.tile.col_start + positions % n_cols


class Scorer:
    """Canonical left and right rows, their screening product, and canonical rescoring."""

    def __init__(self, left, right, precision, tiles, score_map=None):
        self.left, self.right = left, right
        self.score_map = score_map
        self.device = left.device
        max_cells = max((tile.shape[0] * tile.shape[1] for tile in tiles), default=1)
        self.product = ScreeningProduct(left, right, precision, max_cells)
        self.precision = precision
        self.bound = self.product.bound
        self.n_rescored = 0
        self.guarded = False

    @property
    def score_dtype(self):
        """The dtype of screened scores."""
        return self.precision.out_dtype

    def screen_floor(self, cut):
        """The screened value below which a pair's score is surely below `cut` (never below the
        lowest finite value, so that masked cells, at -inf, are never candidates)."""
        raw = cut if self.score_map is None else float(self.score_map.floors(cut)[0])
        floor = round_down(raw - self.bound, self.score_dtype)
        return max(floor, torch.finfo(self.score_dtype).min)

    def screen_floors(self, cuts, rows):
        """Per left row: the screened value below which a pair of that row scores surely below
        its cut (`cuts`, a float tensor, one per row of `rows`), in the score dtype, never below
        its lowest finite value."""
        raw = cuts.double()
        if self.score_map is not None:  # otherwise the cuts stay where they are (no host copy)
            raw = torch.as_tensor(self.score_map.floors(raw.cpu().numpy(), rows),
                                  dtype=torch.float64, device=cuts.device)
        floors = round_down_tensor(raw - self.bound, self.score_dtype)
        return floors.clamp(min=torch.finfo(self.score_dtype).min)

    def screen_ceiling(self, threshold):
        """The screened value above which a pair's score is surely above `threshold`."""
        raw = threshold if self.score_map is None else float(
            self.score_map.ceilings(threshold)[0])
        return round_up(raw + self.bound, self.score_dtype)

    def screen_ceilings(self, thresholds, rows):
        """Per left row: the screened value above which a pair of that row scores surely above
        its threshold (a tensor, one per row of `rows`)."""
        raw = thresholds.double()
        if self.score_map is not None:
            raw = torch.as_tensor(self.score_map.ceilings(raw.cpu().numpy(), rows),
                                  dtype=torch.float64, device=thresholds.device)
        return round_up_tensor(raw + self.bound, self.score_dtype)

    def lower_bound(self, screened):
        """A lower bound (Python float) of the score of any pair screened at `screened` or more."""
        if self.score_map is None:
            return screened - self.bound
        return float(self.score_map.lowers(screened - self.bound)[0])

    def lower_bounds(self, screened, rows_i=None, rows_j=None, rows=None):
        """Lower bounds (float64 tensor) of the scores of cells screened at `screened`: of the
        pairs (rows_i, rows_j), or of any pair of each left row of `rows`."""
        low = screened.double() - self.bound
        if self.score_map is None:
            return low
        if rows_i is not None:
            found = self.score_map.pair_lowers(low.cpu().numpy(), rows_i, rows_j)
        else:
            found = self.score_map.lowers(low.cpu().numpy(), rows)
        return torch.as_tensor(found, dtype=torch.float64, device=screened.device)

    def rescore(self, rows_i, rows_j):
        """Scores of the pairs (left[i], right[j]): canonical, and mapped when the Scorer has a
        score map; counted in `n_rescored`."""
        self.n_rescored += len(rows_i)
        scores = canonical_scores(self.left, self.right, rows_i, rows_j)
        if self.score_map is not None and len(scores):
            scores = self.score_map(scores, rows_i, rows_j)
        return scores

    def blocks(self, tiles, mask=None, progress=False):
        """Yield a ScoredBlock per tile: screened, `mask(tile, scores)` applied, the diagonal of a
        symmetric tile at -inf. The first tile is checked against canonical scores (`guard`)."""
        bar = tqdm(tiles, total=len(tiles), unit="tile", desc="scoring tiles",
                   disable=not progress, leave=False)
        try:
            for tile in bar:
                scores = self.product(tile)
                with for_work(self.device, scores.numel()):
                    if mask is not None:
                        mask(tile, scores)
                    if tile.symmetric:
                        scores.diagonal().fill_(-math.inf)
                    if not self.guarded:
                        self.guard(ScoredBlock(tile, scores))
                yield ScoredBlock(tile, scores)
        finally:
            bar.close()

    def guard(self, block):
        """Refuse screening that breaks its bound: on GUARD_CELLS cells of the block, the
        highest-scoring cell of each of the best rows and cells spread evenly over it, the
        screened score must lie within E of the canonical one. E is proven for the arithmetic
        the precision claims, so an error beyond it means the products are something else (a
        process-wide setting, a library's kernel). A tighter test would refuse honest products:
        on adversarial rows bf16's own rounding reaches two thirds of E. Products that are not
        what they claim miss by far more (bf16 inside an fp32 product: about 20 E)."""
        self.guarded = True
        scores = block.scores
        best, best_cols = scores.max(dim=1)
        rows = torch.nonzero(torch.isfinite(best)).squeeze(1)
        rows = rows[best[rows].float().topk(min(GUARD_CELLS // 2, len(rows))).indices]
        spread = torch.arange(GUARD_CELLS // 2, device=scores.device) * (
            scores.numel() // (GUARD_CELLS // 2))
        positions = torch.cat([rows * scores.shape[1] + best_cols[rows], spread])
        screened = scores.view(-1)[positions]
        finite = torch.isfinite(screened)
        rows_i, rows_j = block.global_pairs(positions[finite])
        canonical = canonical_scores(self.left, self.right, rows_i, rows_j)
        gaps = (screened[finite].double() - canonical.double()).abs()
        error = float(gaps.max()) if len(gaps) else 0.0
        if error > self.bound:
            raise MfftoolsError(
                f"screening products in {self.precision.name} differ from canonical scores by "
                f"{error:.3g}, more than their proven bound E = {self.bound:.3g}: something "
                "changes the arithmetic of matrix products in this process (TF32 or bf16 inside "
                "float32 products: torch.set_float32_matmul_precision, "
                "torch.backends.*.fp32_precision or allow_tf32, reduced-precision reductions, "
                "an MKL/oneDNN environment variable); reset it, or run in a fresh process"
                + ("" if self.precision.name == "fp32" else ", or use --precision fp32")
            )

    def close(self):
        self.product.close()


def fill_pairs(scores, tile, rows_i, rows_j, value=-math.inf):
    """Set the cells of pairs (global rows i, j; all inside `tile`) to `value`, and their mirrors
    on a symmetric tile. 1-d index_fill_ on flat positions: far faster than 2-d indexing."""
    if not len(rows_i):
        return
    n_cols = scores.shape[1]
    local_i = torch.as_tensor(rows_i, dtype=torch.int64) - tile.row_start
    local_j = torch.as_tensor(rows_j, dtype=torch.int64) - tile.col_start
    flat = scores.view(-1)
    flat.index_fill_(0, (local_i * n_cols + local_j).to(scores.device), value)
    if tile.symmetric:
        flat.index_fill_(0, (local_j * n_cols + local_i).to(scores.device), value)


def mask_lower_triangle(scores):
    """Set the lower triangle (diagonal included) of a square block to -inf, so that each
    unordered pair of a symmetric tile is seen once. The masks are kept per size and device."""
    scores.masked_fill_(_lower_triangle(scores.shape[0], scores.device), -math.inf)


@functools.lru_cache(maxsize=8)
def _lower_triangle(size, device):
    return torch.ones(size, size, dtype=torch.bool, device=device).tril()


class Runs:
    """A block's flat scores cut into runs of RUN cells, with each run's maximum."""

    def __init__(self, scores):
        self.flat = scores.view(-1)
        self.count = self.flat.numel() // RUN
        self.runs = self.flat[: self.count * RUN].view(self.count, RUN)
        self.tail = self.flat[self.count * RUN :]
        self.maxima = self.runs.amax(dim=1) if self.count else self.runs.new_empty(0)

    def kth_largest(self, k):
        """A value v with at least k distinct cells >= v (None when the block has < k cells)."""
        if self.count >= k:
            return float(torch.kthvalue(self.maxima.float(), self.count - k + 1).values)
        if self.flat.numel() >= k:
            return float(torch.kthvalue(self.flat.float(), self.flat.numel() - k + 1).values)
        return None

    def positions_at_least(self, floor):
        """Flat positions of the cells >= floor (a value of the scores' dtype)."""
        picked = torch.nonzero(self.maxima >= floor).squeeze(1)
        hits = torch.nonzero(self.runs.index_select(0, picked) >= floor)
        positions = picked.index_select(0, hits[:, 0]) * RUN + hits[:, 1]
        if self.tail.numel():
            tail_hits = torch.nonzero(self.tail >= floor).squeeze(1)
            positions = torch.cat([positions, tail_hits + self.count * RUN])
        return positions
