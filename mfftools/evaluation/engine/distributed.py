"""Merging what each torch.distributed rank accumulated over its share of the tiles, exactly.

Counts are summed; top sets are gathered and united (`PairTopSet.union`; the pairs of ranked sets
are gathered and ranked again), so every rank ends with the same set a single process would have. Scores are canonical, so nothing depends on the split.
"""
import torch
import torch.distributed as torch_dist

from mfftools.evaluation.engine.topset import PairTopSet, RankedPairs


def _device():
    """Where collectives run: the current CUDA device under NCCL, else the CPU."""
    if torch_dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(tensor):
    """Sum `tensor` over ranks in place."""
    torch_dist.all_reduce(tensor, op=torch_dist.ReduceOp.SUM)
    return tensor


def sum_over_ranks(value):
    """The sum over ranks of a Python int."""
    total = torch.tensor([value], dtype=torch.int64, device=_device())
    return int(all_reduce_sum(total)[0])


def all_gather_rows(tensor):
    """Every rank's `tensor` (same trailing shape, any length), in rank order, on the CPU."""
    device = _device()
    sizes = [torch.zeros(1, dtype=torch.int64, device=device)
             for _ in range(torch_dist.get_world_size())]
    torch_dist.all_gather(sizes, torch.tensor([len(tensor)], dtype=torch.int64, device=device))
    sizes = [int(size[0]) for size in sizes]
    padded = torch.zeros((max(sizes),) + tuple(tensor.shape[1:]), dtype=tensor.dtype, device=device)
    padded[: len(tensor)] = tensor
    gathered = [torch.empty_like(padded) for _ in sizes]
    torch_dist.all_gather(gathered, padded)
    return [part[:size].cpu() for part, size in zip(gathered, sizes)]


def merge_topsets(topset):
    """The union of every rank's top set (the same on every rank)."""
    state = topset.state()
    meta = torch.tensor([state.cut, float(state.ties)], dtype=torch.float64, device=_device())
    metas = [torch.empty_like(meta) for _ in range(torch_dist.get_world_size())]
    torch_dist.all_gather(metas, meta)
    values = all_gather_rows(state.values)
    rows_i = all_gather_rows(state.rows_i)
    rows_j = all_gather_rows(state.rows_j)
    states = [
        type(state)(float(m[0]), int(m[1]), v, i, j)
        for m, v, i, j in zip(metas, values, rows_i, rows_j)
    ]
    return PairTopSet.union(topset.keep, states, device=topset.device)


def merge_ranked(ranked):
    """One RankedPairs of every rank's best pairs (the same on every rank)."""
    merged = RankedPairs(ranked.keep, ranked.keys, device=ranked.device)
    merged.add(*(torch.cat(all_gather_rows(part)) for part in ranked.pairs()))
    return merged
