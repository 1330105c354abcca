"""Merging one evaluation pass split over torch.distributed ranks, exactly.

Each rank scores its own share of the tiles. Genuine scores are summed (every pair belongs to one
tile, so each value is added to zeros: exact). Top sets merge at the highest cut of any rank C:
every rank holds all its pairs above its own cut <= C, hence above C, and the number of pairs at
exactly C is summed; C is at most the `keep`-th largest score of all ranks together because one
rank's `keep`-th largest already is. The merged set is then finalised like a single process's, so
all ranks end with the same content whatever the split.
"""
import torch
import torch.distributed as torch_dist

from mfftools.evaluation.topset import KEEP_ALL, ImpostorTopSet


def all_reduce_sum(tensor):
    """Sum `tensor` over ranks in place."""
    torch_dist.all_reduce(tensor, op=torch_dist.ReduceOp.SUM)
    return tensor


def _all_gather_padded(tensor, sizes):
    """Concatenation over ranks of 1-d tensors of the given per-rank sizes."""
    longest = max(sizes)
    padded = torch.zeros(longest, dtype=tensor.dtype, device=tensor.device)
    padded[: len(tensor)] = tensor
    gathered = [torch.empty_like(padded) for _ in sizes]
    torch_dist.all_gather(gathered, padded)
    return torch.cat([part[:size] for part, size in zip(gathered, sizes)])


def merge_topsets(topset):
    """The union of every rank's top set (same result on every rank), finalised."""
    topset._consolidate()
    world_size = torch_dist.get_world_size()
    device = topset.values.device
    meta = torch.tensor([topset.cut], dtype=torch.float64, device=device)
    metas = [torch.empty_like(meta) for _ in range(world_size)]
    torch_dist.all_gather(metas, meta)
    cut = max(float(m[0]) for m in metas)
    values, rows_i, rows_j = topset.values, topset.rows_i, topset.rows_j
    ties = 0
    if cut != KEEP_ALL:
        ties = int((values == cut).sum()) + (topset.ties if topset.cut == cut else 0)
        above = values > cut
        values, rows_i, rows_j = values[above], rows_i[above], rows_j[above]
    counts = torch.tensor([len(values), ties], dtype=torch.int64, device=device)
    all_counts = [torch.empty_like(counts) for _ in range(world_size)]
    torch_dist.all_gather(all_counts, counts)
    sizes = [int(c[0]) for c in all_counts]
    merged = ImpostorTopSet(topset.keep, device=device, row_dtype=topset.rows_i.dtype)
    merged.values = _all_gather_padded(values, sizes)
    merged.rows_i = _all_gather_padded(rows_i, sizes)
    merged.rows_j = _all_gather_padded(rows_j, sizes)
    merged.cut = cut
    merged.ties = sum(int(c[1]) for c in all_counts)
    return merged
