"""Canonical rows and scores, and the fast products that only screen pairs.

A canonical score does not depend on the hardware, the tile size, the number of ranks or the
screening precision:
  * rows are normalised in float64 (the square root of the float64 sum of squares of the float32
    row; the row divided by it in float64) and rounded to float32;
  * s_ij = clamp(float32(sum_k f_ik f_jk accumulated in float64), -1, 1).
Products of two float32 are exact in float64, and every float64 sum here runs as the same
pairwise tree of element-wise additions (each an IEEE operation, identical on every CPU and GPU),
so canonical values are the same bits everywhere.

Fast products (fp32 GEMM, TF32, bf16, fp16) only screen: `Precision.bound(dim)` is a proven bound
E on |screened - canonical| for canonical rows of `dim` dimensions, so a pair whose screened
score is below cut - E has a canonical score below the cut.
"""
import contextlib
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from mfftools.errors import MfftoolsError
from mfftools.evaluation.engine.threads import serial

_RESCORE_PAIRS = 512  # pairs rescored at a time: 512 x D float64 products stay in cache
_ROW_BLOCK = 8192  # rows normalised at a time


def _tree_sum_(values):
    """Sum over the last dimension as a fixed pairwise tree of element-wise additions, in place:
    zero-padded to a power of two, then the second half added to the first until one is left.
    Returns a view of the sums (values[..., 0])."""
    width = values.shape[-1]
    padded = 1 << max(width - 1, 0).bit_length()
    if padded != width:
        values = torch.nn.functional.pad(values, (0, padded - width))
    while padded > 1:
        padded //= 2
        values[..., :padded].add_(values[..., padded : 2 * padded])
    return values[..., 0]


def canonical_dots(left, right):
    """Canonical scores of row pairs: float32 [B] from float32 [B, D] left and right rows."""
    products = left.double().mul_(right)  # float32 x float32 is exact in float64
    return _tree_sum_(products).float().clamp_(-1.0, 1.0)


def pair_dots(left_rows, right_rows, left_index, right_index):
    """float64 dot products of the pairs (left_rows[i], right_rows[j]), each the exact products
    summed by the fixed tree: the value a canonical score rounds. Gathered a batch at a time."""
    with serial(left_rows.device):  # many small operations: see threads.serial
        return _pair_dots(left_rows, right_rows, left_index, right_index)


def _pair_dots(left_rows, right_rows, left_index, right_index):
    count, dim = len(left_index), left_rows.shape[1]
    device = left_rows.device
    out = torch.empty(count, dtype=torch.float64, device=device)
    batch = max(1, min(count, _RESCORE_PAIRS))
    half = max(1 << max(dim - 1, 0).bit_length(), 2) // 2  # of the width padded to a power of 2
    gathered = torch.empty(2, batch, dim, dtype=torch.float32, device=device)
    wide = torch.zeros(2, batch, 2 * half, dtype=torch.float64, device=device)  # zero padding
    sums = torch.empty(batch, half, dtype=torch.float64, device=device)
    for first in range(0, count, batch):
        size = min(batch, count - first)
        torch.index_select(left_rows, 0, left_index[first : first + size], out=gathered[0, :size])
        torch.index_select(right_rows, 0, right_index[first : first + size], out=gathered[1, :size])
        left, right = wide[0, :size], wide[1, :size]
        left[:, :dim].copy_(gathered[0, :size])
        right[:, :dim].copy_(gathered[1, :size])
        # The tree's first level, fused: each pair of products is exact in float64, so adding
        # the second half's to the first half's rounds once, as a separate addition would.
        level = torch.mul(left[:, :half], right[:, :half], out=sums[:size])
        level.addcmul_(left[:, half:], right[:, half:])
        out[first : first + size] = _tree_sum_(level)
    return out


def canonical_scores(left_rows, right_rows, left_index, right_index):
    """Canonical scores of the pairs (left_rows[i], right_rows[j]): float32, clamped."""
    return pair_dots(left_rows, right_rows, left_index, right_index).float().clamp_(-1.0, 1.0)


def normalise_rows_(rows):
    """Normalise float32 rows in place to canonical rows (float64 norm, rounded to float32)."""
    for first in range(0, len(rows), _ROW_BLOCK):
        block = rows[first : first + _ROW_BLOCK]
        wide = block.double()
        norms = _tree_sum_(wide * wide).sqrt_()
        block.copy_(wide / norms[:, None])
    return rows


def canonical_means(rows, starts, sizes, block=4096):
    """Canonical mean directions of consecutive runs of rows (identity centroids, templates).

    Run k is rows[starts[k] : starts[k] + sizes[k]]; its float64 sum is taken image by image in
    row order, normalised in float64 and rounded to float32 (a sum of exactly zero stays zero).
    float32 [len(starts), D].
    """
    starts = torch.as_tensor(starts, dtype=torch.int64, device=rows.device)
    sizes = torch.as_tensor(sizes, dtype=torch.int64, device=rows.device)
    out = torch.empty(len(starts), rows.shape[1], dtype=torch.float32, device=rows.device)
    for first in range(0, len(starts), block):
        run_starts, run_sizes = starts[first : first + block], sizes[first : first + block]
        sums = torch.zeros(len(run_starts), rows.shape[1], dtype=torch.float64, device=rows.device)
        for image in range(int(run_sizes.max()) if len(run_sizes) else 0):
            present = torch.nonzero(run_sizes > image).squeeze(1)
            sums[present] += rows[run_starts[present] + image].double()
        norms = _tree_sum_(sums * sums).sqrt_()
        norms[norms == 0] = 1.0  # rows that cancel out: a zero direction, scoring 0 with all
        out[first : first + block] = sums / norms[:, None]
    return out


# ---------------------------------------------------------------------------------------------
# Screening precisions and their bounds.
# ---------------------------------------------------------------------------------------------

_F32_UNIT = 2.0**-24  # unit roundoff of float32
_ROW_NORM_EXCESS = 2.0**-23  # canonical rows have norm <= 1 + this (each entry rounded once)


@dataclass(frozen=True)
class Precision:
    """A screening product: inputs rounded to `dtype`, fp32 accumulation, output in `out_dtype`.

    input_unit / output_unit: unit roundoff of the inputs / of the product's output (0 where
    nothing is rounded); input_underflow: the largest absolute rounding error of an input entry
    too small for a relative bound (half the smallest subnormal of the input format).
    """

    name: str
    dtype: torch.dtype
    out_dtype: torch.dtype
    input_unit: float
    output_unit: float
    input_underflow: float

    def bound(self, dim):
        """E(dim): a proven bound on |screened - canonical| for canonical rows of `dim` entries.

        For unit-norm rows x, y (norm <= 1 + r, r = 2^-23) let S = sum |x_k y_k| <= (1 + r)^2
        (Cauchy-Schwarz) and A = sum |x_k| <= sqrt(dim) (1 + r). With input rounding
        |x~_k - x_k| <= u |x_k| + h (u: input unit, h: underflow), the rounded inputs change the
        exact product by at most (2u + u^2) S + 2 h (1 + u) A + dim h^2. Accumulating the dim
        products in float32 in any order (fused or not: at most 2 dim roundings each term passes
        through) adds at most g S~ with g = gamma(2 dim) = 2 dim 2^-24 / (1 - 2 dim 2^-24) and
        S~ <= (1 + u)^2 S + 2 h (1 + u) A + dim h^2 the sum of the rounded products' magnitudes.
        Rounding the result to the output format adds v (1 + r)^2 (1 + ...) (v: output unit).
        The canonical score is within 2^-24 (1 + r)^2 of the exact product (its own float32
        rounding; the float64 tree sum adds about 1e-14 more, covered by the 1e-6 margin).
        E is the sum, with a relative margin of 1e-6 for the float64 evaluation of this formula.
        """
        u, h, v = self.input_unit, self.input_underflow, self.output_unit
        norm_sq = (1.0 + _ROW_NORM_EXCESS) ** 2
        abs_sum = math.sqrt(dim) * (1.0 + _ROW_NORM_EXCESS)
        underflow = 2.0 * h * (1.0 + u) * abs_sum + dim * h * h
        inputs = (2.0 * u + u * u) * norm_sq + underflow
        terms = 2 * dim * _F32_UNIT
        gamma = terms / (1.0 - terms)
        accumulation = gamma * ((1.0 + u) ** 2 * norm_sq + underflow)
        before_output = norm_sq + inputs + accumulation
        output = v * before_output
        canonical = _F32_UNIT * norm_sq + 1e-12
        return (inputs + accumulation + output + canonical) * (1.0 + 1e-6)


PRECISIONS = {
    "fp32": Precision("fp32", torch.float32, torch.float32, 0.0, 0.0, 0.0),
    "tf32": Precision("tf32", torch.float32, torch.float32, 2.0**-11, 0.0, 2.0**-127),
    "bf16": Precision("bf16", torch.bfloat16, torch.bfloat16, 2.0**-8, 2.0**-8, 2.0**-134),
    "fp16": Precision("fp16", torch.float16, torch.float16, 2.0**-11, 2.0**-11, 2.0**-25),
}
CHOICES = ("auto",) + tuple(PRECISIONS)


def cpu_flags(cpuinfo=Path("/proc/cpuinfo")):
    """The CPU's feature flags (empty where /proc/cpuinfo cannot be read)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def resolve_precision(name, device, flags=None):
    """The Precision for `name` on `device`; `auto` picks the fastest one the hardware runs
    natively: fp16 tensor cores on CUDA (bf16's band would be 8x wider for the same speed),
    bf16 on CPUs with AVX512-BF16 or AMX-BF16, fp32 otherwise."""
    device = torch.device(device)
    if name == "auto":
        if device.type == "cuda":
            major, _ = torch.cuda.get_device_capability(device)
            name = "fp16" if major >= 7 else "fp32"
        else:
            flags = cpu_flags() if flags is None else flags
            name = "bf16" if {"avx512_bf16", "amx_bf16"} & flags else "fp32"
    if name not in PRECISIONS:
        raise MfftoolsError(f"unknown precision {name!r}: use one of {', '.join(CHOICES)}")
    if name == "tf32" and device.type != "cuda":
        raise MfftoolsError("--precision tf32 runs on CUDA tensor cores only; use fp32 or bf16 here")
    return PRECISIONS[name]


@contextlib.contextmanager
def exact_products(precision):
    """Process-wide matmul settings that make the products what `Precision.bound` assumes, for
    the duration of the block, restoring the caller's afterwards (even on an exception).

    float32 products are IEEE (no TF32, no bf16 inside float32 GEMMs on CPUs with bf16 units),
    except for the tf32 precision, which asks for TF32 on CUDA; the half formats accumulate
    without reduced-precision reductions. Newer torch has per-backend `fp32_precision` settings,
    which `torch.set_float32_matmul_precision` also changes; once they are used, reading the
    legacy `allow_tf32` raises, so only the new ones are touched where they exist.
    """
    matmul = torch.backends.cuda.matmul
    saved = {"fp16": matmul.allow_fp16_reduced_precision_reduction,
             "bf16": matmul.allow_bf16_reduced_precision_reduction}
    new_api = hasattr(matmul, "fp32_precision")
    if new_api:
        backends = (matmul, torch.backends.mkldnn.matmul)
        saved["fp32"] = [backend.fp32_precision for backend in backends]
        matmul.fp32_precision = "tf32" if precision.name == "tf32" else "ieee"
        torch.backends.mkldnn.matmul.fp32_precision = "ieee"
    else:
        saved["fp32"] = torch.get_float32_matmul_precision(), matmul.allow_tf32
        torch.set_float32_matmul_precision("highest")
        matmul.allow_tf32 = precision.name == "tf32"
    matmul.allow_fp16_reduced_precision_reduction = False
    matmul.allow_bf16_reduced_precision_reduction = False
    try:
        yield
    finally:
        matmul.allow_fp16_reduced_precision_reduction = saved["fp16"]
        matmul.allow_bf16_reduced_precision_reduction = saved["bf16"]
        if new_api:
            for backend, value in zip(backends, saved["fp32"]):
                backend.fp32_precision = value
        else:
            torch.set_float32_matmul_precision(saved["fp32"][0])
            matmul.allow_tf32 = saved["fp32"][1]


class ScreeningProduct:
    """Screened products of row blocks in one precision, into a reused output buffer.

    The inputs are cast once (`left`/`right` in the precision's dtype). Each product runs under
    `exact_products`, so no process-wide setting changes its arithmetic.
    """

    def __init__(self, left, right, precision, max_cells):
        self.precision = precision
        self.bound = precision.bound(left.shape[1])
        self.left = left.to(precision.dtype)
        self.right = self.left if right is left else right.to(precision.dtype)
        self.buffer = torch.empty(max_cells, dtype=precision.out_dtype, device=left.device)

    def __call__(self, tile):
        """Screened scores of `tile`: a [rows, cols] view of the buffer."""
        n_rows, n_cols = tile.shape
        out = self.buffer[: n_rows * n_cols].view(n_rows, n_cols)
        with exact_products(self.precision):
            torch.mm(self.left[tile.row_start : tile.row_stop],
                     self.right[tile.col_start : tile.col_stop].T, out=out)
        return out

    def close(self):
        """Free the buffer and the rows' copies."""
        self.buffer = self.left = self.right = None


def round_down(value, dtype):
    """The largest value of `dtype` that is <= the Python float `value`, as a Python float.

    A comparison of a low-precision tensor with a Python float rounds the float to the tensor's
    dtype first, so a screening threshold must already be a value of that dtype.
    """
    exact = torch.tensor(value, dtype=torch.float64)
    rounded = exact.to(dtype)
    if rounded.double() > exact:
        rounded = torch.nextafter(rounded, torch.tensor(-math.inf, dtype=dtype))
    return float(rounded)


def round_up(value, dtype):
    """The smallest value of `dtype` that is >= the Python float `value`, as a Python float."""
    return -round_down(-value, dtype)


def round_down_tensor(values, dtype):
    """Element-wise: the largest value of `dtype` <= each float64 value (a `dtype` tensor)."""
    rounded = values.to(dtype)
    too_high = rounded.double() > values
    return torch.where(too_high, torch.nextafter(rounded, torch.full_like(rounded, -math.inf)),
                       rounded)


def round_up_tensor(values, dtype):
    """Element-wise: the smallest value of `dtype` >= each float64 value (a `dtype` tensor)."""
    return -round_down_tensor(-values, dtype)
