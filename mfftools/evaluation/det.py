"""Per-group DET curves of the instance protocol: FNMR against the demographically matched FMR,
exact at each of the curve's thresholds, in memory linear in the images.

For group d, the matched impostor pairs are the impostor pairs among d's images, so each group
gets a pass of its own over the triangle of its images (screened in fp32, whose band is narrow,
whatever the main pass's precision). Its thresholds are placed before the pass near the FMR
levels of `threshold.DET_LEVELS`, at the quantiles of the impostor scores of an evenly spaced
sample of the group's images (all of them for a group of at most SAMPLE images); the pass then
counts the pairs above every threshold exactly (`LevelCounter`). A point's FMR is therefore the
exact FMR at its threshold, near the level it was placed for; FNMR_d comes from the genuine
pairs whose probe image is in d, all of which are scored anyway. The EER is read off the points
(`threshold.eer`).
"""
import numpy as np
import torch

from mfftools.evaluation import threshold as search
from mfftools.evaluation.engine import distributed
from mfftools.evaluation.engine.blocks import Scorer
from mfftools.evaluation.engine.counts import LevelCounter
from mfftools.evaluation.engine.scoring import PRECISIONS, exact_products
from mfftools.evaluation.engine.tiles import plan_triangle, split_tiles
from mfftools.evaluation.identities import build_layout

# Images of a group whose pairs place the thresholds.
SAMPLE = 2048


def matched_det(rows, layout, genuine, group_names, tile, info, progress=False):
    """({group: {"threshold", "fmr", "fnmr"}}, {group: EER}) of the instance protocol.

    rows: canonical rows in the layout's sorted order; genuine: canonical scores of the layout's
    genuine pairs (numpy float32). A group without matched impostor pairs or without genuine
    pairs has no curve (None), nor an EER.
    """
    curves, eers = {}, {}
    genuine_sides = (layout.group[layout.genuine_i], layout.group[layout.genuine_j])
    for d, name in enumerate(group_names):
        members = np.flatnonzero(layout.group == d)
        group_layout = build_layout(layout.identity[members], np.zeros(len(members)), 1)
        accepted = np.concatenate([genuine[side == d] for side in genuine_sides])
        if not group_layout.n_impostor_ordered or not len(accepted):
            curves[name] = eers[name] = None
            continue
        group_rows = rows[torch.from_numpy(members).to(rows.device)]
        thresholds = placed_thresholds(group_rows, group_layout)
        counts = _count_above(group_rows, group_layout, thresholds, tile, info, progress)
        descending = thresholds[::-1]
        fmr = [float(2 * count / group_layout.n_impostor_ordered) for count in counts[::-1]]
        hits = search.rates_above(accepted, descending)
        curves[name] = {"threshold": [float(t) for t in descending], "fmr": fmr,
                        "fnmr": [1.0 - hit for hit in hits]}
        eers[name] = search.eer(curves[name]["fmr"], curves[name]["fnmr"])
    return curves, eers


def placed_thresholds(group_rows, group_layout, levels=search.DET_LEVELS):
    """Thresholds near each FMR level (ascending, distinct float32): the exact thresholds of the
    impostor scores among an evenly spaced sample of SAMPLE of the group's images."""
    n_rows = len(group_rows)
    picks = np.unique(np.linspace(0, n_rows - 1, min(n_rows, SAMPLE)).astype(np.int64))
    sample = group_rows[torch.from_numpy(picks).to(group_rows.device)]
    with exact_products(PRECISIONS["fp32"]):
        scores = (sample @ sample.T).cpu()
    identity = torch.from_numpy(group_layout.identity[picks])
    impostor = (identity[:, None] != identity[None, :]).triu(diagonal=1)
    values = scores[impostor].numpy()
    if not len(values):
        return np.empty(0, dtype=np.float32)
    # Ordered pairs: the K-th largest of twice the values is the (K // 2)-th of the values.
    descending = np.repeat(np.sort(values)[::-1], 2)
    _, thresholds = search.thresholds_at_levels(descending, levels)
    return np.unique(thresholds.astype(np.float32))


def _count_above(group_rows, group_layout, thresholds, tile, info, progress):
    """Unordered impostor pairs of the group scoring > each threshold (ascending), exactly."""
    tiles = split_tiles(plan_triangle(len(group_rows), tile), info.world_size, info.rank)
    scorer = Scorer(group_rows, group_rows, PRECISIONS["fp32"], tiles)
    try:
        counter = LevelCounter(thresholds, scorer)
        for block in scorer.blocks(tiles, mask=group_layout.mask_genuine, progress=progress):
            counter.add(block)
        counts = counter.counts()
    finally:
        scorer.close()
    if info.distributed:
        counts = distributed.all_reduce_sum(counts)
    return counts.cpu().numpy()
