"""The highest-scoring impostor pairs of the instance protocol, over all images and within each
group (both images in it): the results file's `top_impostors`, the pairs the report shows.

Exact and deterministic: pairs are ranked by score, descending, then by the smaller file row of
their two images, then by the larger (`RankedPairs`), so ties have one answer whatever the tiles,
the precision or the ranks. The pass's top set holds every impostor pair scoring above its cut;
wherever it holds enough pairs of a scope (`count`, or every pair the scope has), the best of
them are the scope's best. Only a scope whose best pairs reach down to the cut (a group that
scores low, or few images with a small top set) gets a pass of its own over the triangle of its
images.
"""
import logging

import numpy as np
import torch

from mfftools.evaluation.engine import distributed
from mfftools.evaluation.engine.blocks import Scorer
from mfftools.evaluation.engine.tiles import plan_triangle, split_tiles
from mfftools.evaluation.engine.topset import PairCollector, RankedPairs
from mfftools.evaluation.identities import build_layout

logger = logging.getLogger(__name__)

# Pairs recorded over all images and in each group.
COUNT = 10


class _Scopes:
    """What the scopes share: canonical rows in the layout's sorted order and how to pass over
    any subset of them (`score_map_of(positions)`: the score map of those sorted positions, None
    without a calibration)."""

    def __init__(self, rows, layout, screening, tile, info, progress, score_map_of):
        self.rows, self.layout, self.screening = rows, layout, screening
        self.tile, self.info, self.progress = tile, info, progress
        self.score_map_of = score_map_of

    def ranked(self, count, values, rows_i, rows_j):
        """The best `count` of these pairs (sorted positions; by descending score, as the top
        set lists them) in the order, as file rows."""
        if len(values) > count:  # only the pairs tied with the count-th can still move
            tied = values >= values[count - 1]
            values, rows_i, rows_j = values[tied], rows_i[tied], rows_j[tied]
        ranked = RankedPairs(count, self.layout.order)
        ranked.add(values, rows_i, rows_j)
        values, rows_i, rows_j = ranked.pairs()
        order = torch.from_numpy(self.layout.order)
        return values, order[rows_i], order[rows_j]

    def passed(self, count, members):
        """The best `count` impostor pairs among the sorted positions `members` (ascending), by
        a pass over their triangle, as file rows."""
        members = np.asarray(members)
        sub_layout = build_layout(self.layout.identity[members], np.zeros(len(members)), 1)
        sub_rows = self.rows[torch.from_numpy(members).to(self.rows.device)]
        tiles = split_tiles(plan_triangle(len(members), self.tile), self.info.world_size,
                            self.info.rank)
        keys = self.layout.order[members]
        ranked = RankedPairs(count, keys, device=self.rows.device)
        scorer = Scorer(sub_rows, sub_rows, self.screening, tiles, self.score_map_of(members))
        try:
            collector = PairCollector(ranked, scorer)
            for block in scorer.blocks(tiles, mask=sub_layout.mask_genuine,
                                       progress=self.progress):
                collector.add(block)
        finally:
            scorer.close()
        if self.info.distributed:
            ranked = distributed.merge_ranked(ranked)
        values, rows_i, rows_j = ranked.pairs()
        keys = torch.from_numpy(keys)
        return values, keys[rows_i], keys[rows_j]


def top_impostors(topset, rows, layout, embeddings, group_names, screening, tile, info,
                  progress=False, score_map_of=lambda members: None, count=COUNT):
    """The results file's `top_impostors`: {"count", "all": [pair, ...], "groups": {name:
    [pair, ...]}}, each list the best `count` impostor pairs of its scope in the order above.

    topset: the pass's finalized PairTopSet (sorted positions); rows: canonical rows in the
    layout's sorted order; embeddings: the file, for each pair's labels, names and paths.
    """
    scopes = _Scopes(rows, layout, screening, tile, info, progress, score_map_of)
    values, rows_i, rows_j = (part.cpu() for part in topset.pairs())
    rows_i, rows_j = rows_i.long(), rows_j.long()
    group = torch.from_numpy(layout.group)
    matched = layout.impostor_per_group_pair.diagonal() // 2  # unordered pairs in each group
    scopes_found = {}
    everything = (None, layout.n_impostor_ordered // 2, torch.ones(len(values), dtype=torch.bool))
    in_groups = [(d, int(matched[d]), (group[rows_i] == d) & (group[rows_j] == d))
                 for d in range(len(group_names))]
    for d, n_pairs, held in [everything] + in_groups:
        if int(held.sum()) >= min(count, n_pairs):
            found = scopes.ranked(count, values[held], rows_i[held], rows_j[held])
        else:
            members = (np.arange(layout.n_rows) if d is None
                       else np.flatnonzero(layout.group == d))
            logger.info("the top set holds %d of the best %d impostor pairs %s: a pass over "
                        "their %d images", int(held.sum()), count,
                        "overall" if d is None else f"of {group_names[d]}", len(members))
            found = scopes.passed(count, members)
        scopes_found[d] = [_pair(float(value), int(a), int(b), embeddings, group_names)
                           for value, a, b in zip(*found)]
    return {"count": count, "all": scopes_found.pop(None),
            "groups": {group_names[d]: pairs for d, pairs in scopes_found.items()}}


def _pair(score, row_a, row_b, embeddings, group_names):
    """One pair as the results file lists it: the two file rows (smaller first), the score, and
    each image's identity label, identity name and path (null where the file has none) and group."""
    rows = [row_a, row_b]
    return {
        "rows": rows,
        "score": score,
        "identity": [int(embeddings.identity[row]) for row in rows],
        "identity_name": _strings(embeddings.identity_names, rows),
        "path": _strings(embeddings.image_paths, rows),
        "group": [group_names[int(embeddings.group[row])] for row in rows],
    }


def _strings(column, rows):
    return None if column is None else [str(column[row]) for row in rows]
