"""The pair top set: its bound, its float32 queries, its union over ranks, and the collector."""
import numpy as np
import pytest
import torch
from numpy.testing import assert_array_equal

from dense import canonical_matrix, canonical_rows
from instance_data import lattice_data, make_data
from mfftools.evaluation.engine.blocks import Scorer
from mfftools.evaluation.engine.scoring import PRECISIONS, normalise_rows_
from mfftools.evaluation.engine.tiles import plan_triangle
from mfftools.evaluation.engine.topset import PairCollector, PairTopSet, RankedPairs
from mfftools.evaluation.identities import build_layout


def collect(rows, layout, tiles, keep, precision="fp32", topset_class=PairTopSet):
    scorer = Scorer(rows, rows, PRECISIONS[precision], tiles)
    topset = topset_class(keep)
    collector = PairCollector(topset, scorer)
    for block in scorer.blocks(tiles, mask=layout.mask_genuine):
        collector.add(block)
    scorer.close()
    return topset


def sorted_impostor_scores(emb, layout):
    feats = canonical_rows(emb)[layout.order]
    scores = canonical_matrix(feats, feats)
    identity = layout.identity
    upper = np.triu(np.ones_like(scores, dtype=bool), 1) & (identity[:, None] != identity[None, :])
    return np.sort(scores[upper])[::-1]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_top_set_never_exceeds_its_bound(rng, precision):
    """After every tile the set holds at most 2 x keep pairs; finally fewer than keep above the cut,
    and the cut is exactly the keep-th largest impostor score."""
    emb, identity, group = make_data(rng, 150, 4, 6)
    layout = build_layout(identity, group, 3)
    rows = normalise_rows_(torch.from_numpy(emb[layout.order].copy()))
    keep, sizes = 37, []

    class Recording(PairTopSet):
        def add(self, *args):
            super().add(*args)
            sizes.append(len(self))

    tiles = plan_triangle(len(rows), 23)
    topset = collect(rows, layout, tiles, keep, precision, Recording).finalize()
    assert len(sizes) == len(tiles)
    assert max(sizes) <= 2 * keep
    impostor_scores = sorted_impostor_scores(emb, layout)
    assert topset.cut == float(impostor_scores[keep - 1])
    assert len(topset) < keep <= len(topset) + topset.ties
    assert_array_equal(topset.pairs()[0].numpy(), impostor_scores[: len(topset)])


def test_union_of_split_sets_equals_one_set(rng):
    emb, identity, group = make_data(rng, 120, 5, 8)
    layout = build_layout(identity, group, 3)
    rows = normalise_rows_(torch.from_numpy(emb[layout.order].copy()))
    tiles = plan_triangle(len(rows), 31)
    whole = collect(rows, layout, tiles, 50).finalize()
    for parts in (2, 3, 5):
        states = [collect(rows, layout, tiles[p::parts], 50).state() for p in range(parts)]
        merged = PairTopSet.union(50, states).finalize()
        assert (merged.cut, merged.ties) == (whole.cut, whole.ties)
        for ours, theirs in zip(merged.pairs(), whole.pairs()):
            assert_array_equal(ours.numpy(), theirs.numpy())


def test_top_set_counts_compare_in_float32(rng):
    """count_above/rows_above agree with brute force at thresholds on, between and next to the
    kept scores, including the float32 rounding of a Python-float threshold."""
    scores = torch.from_numpy(rng.integers(-40, 40, size=3000).astype(np.float32) / 64)
    rows = torch.arange(len(scores), dtype=torch.int32)
    topset = PairTopSet(keep=500)
    for first in range(0, len(scores), 700):
        block = slice(first, first + 700)
        topset.add(scores[block], rows[block], rows[block])
    topset.finalize()
    assert topset.cut == float(torch.sort(scores, descending=True).values[499])
    values = sorted(set(scores.tolist()))
    probes = values + [v + 1e-9 for v in values] + [v - 1e-9 for v in values]
    probes += [float(np.nextafter(np.float32(v), np.float32(-2))) for v in values]
    for t in probes:
        truth = int((scores > t).sum())  # torch: the Python float is compared in float32
        count, exact = topset.count_above(t)
        if exact:
            assert count == truth, t
        else:
            assert count <= truth and float(torch.tensor(t, dtype=torch.float32)) < topset.cut
        listed = topset.rows_above(t)
        if listed is not None:
            assert len(listed[0]) == truth
            assert float(torch.tensor(t, dtype=torch.float32)) >= topset.cut


def test_values_below_the_cut_are_dropped_and_ties_counted():
    topset = PairTopSet(keep=2)
    rows = torch.arange(4, dtype=torch.int32)
    topset.add(torch.tensor([0.9, 0.8, 0.7, 0.6]), rows, rows)
    topset.add(torch.tensor([0.1, 0.8, 0.85]), rows[:3], rows[:3])  # after a prune at 2 x keep
    topset.finalize()
    assert topset.cut == pytest.approx(0.85) and topset.ties == 1
    assert topset.pairs()[0].tolist() == pytest.approx([0.9])


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_ranked_pairs_order_ties_by_their_keys(rng, precision):
    """The best pairs by score, then the smaller key, then the larger, on scores that tie in
    hundreds; the same from split tiles whose best pairs are ranked again (a merge over ranks)."""
    emb, identity, group = lattice_data(rng, n=180)
    layout = build_layout(identity, group, 3)
    rows = normalise_rows_(torch.from_numpy(emb[layout.order].copy()))
    keys = rng.permutation(len(rows)) + 1000  # any distinct integers
    scores = canonical_matrix(canonical_rows(emb)[layout.order], canonical_rows(emb)[layout.order])
    i, j = np.triu_indices(len(rows), 1)
    impostor = layout.identity[i] != layout.identity[j]
    i, j = i[impostor], j[impostor]
    low, high = np.minimum(keys[i], keys[j]), np.maximum(keys[i], keys[j])
    values = scores[i, j]
    best = np.lexsort((high, low, -values.astype(np.float64)))[:25]
    tiles = plan_triangle(len(rows), 29)

    def ranked(part):
        return collect(rows, layout, part, 25, precision,
                       lambda keep: RankedPairs(keep, keys)).pairs()

    merged = RankedPairs(25, keys)
    for part in (tiles[0::3], tiles[1::3], tiles[2::3]):
        merged.add(*ranked(part))
    for found in (ranked(tiles), merged.pairs()):
        found_values, found_i, found_j = (part.numpy() for part in found)
        assert_array_equal(found_values, values[best])
        assert_array_equal(keys[found_i], low[best])
        assert_array_equal(keys[found_j], high[best])
