"""Per-group DET curves of the instance protocol and the many-threshold counter behind them,
against dense canonical references."""
import numpy as np
import pytest
import torch
from numpy.testing import assert_array_equal

from dense import canonical_matrix, canonical_rows
from instance_data import GROUP_NAMES, evaluate_file, lattice_data, make_data
from mfftools.evaluation import threshold as search
from mfftools.evaluation.engine.blocks import Scorer
from mfftools.evaluation.engine.counts import LevelCounter
from mfftools.evaluation.engine.scoring import PRECISIONS, normalise_rows_
from mfftools.evaluation.engine.tiles import plan_triangle
from mfftools.evaluation.identities import build_layout


@pytest.mark.parametrize("data", ["random", "lattice"])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_level_counts_equal_dense_counts(rng, data, precision, monkeypatch):
    emb, identity, group = lattice_data(rng, 200) if data == "lattice" else make_data(rng, 70, 5, 8)
    layout = build_layout(identity, group, 3)
    rows = normalise_rows_(torch.from_numpy(emb[layout.order].copy()))
    scores = canonical_matrix(canonical_rows(emb)[layout.order], canonical_rows(emb)[layout.order])
    impostor = np.triu(layout.identity[:, None] != layout.identity[None, :], 1)
    values = scores[impostor]
    # thresholds on scores (ties), between them, and far outside
    thresholds = list(np.quantile(values, [0.1, 0.5, 0.9, 0.99])) + list(values[:5]) + [-0.99, 0.999]
    monkeypatch.setattr(LevelCounter, "CHUNK_CELLS", 97)  # chunks that cut rows
    tiles = plan_triangle(len(rows), 45)
    scorer = Scorer(rows, rows, PRECISIONS[precision], tiles)
    counter = LevelCounter(thresholds, scorer)
    for block in scorer.blocks(tiles, mask=layout.mask_genuine):
        counter.add(block)
    scorer.close()
    ascending = counter.thresholds.numpy()
    assert_array_equal(ascending, np.unique(np.float32(thresholds)).astype(np.float64))
    expected = [int((values > np.float32(t)).sum()) for t in ascending]
    assert counter.counts().tolist() == expected
    if data == "random" and precision == "fp32":  # (ties with thresholds are all rescored)
        assert scorer.n_rescored < impostor.sum() / 10  # most cells are counted from their bins


def dense_det(emb, identity, group, n_groups):
    """Per group: matched impostor scores (both images in it, ordered pairs, each unordered pair
    twice) and genuine scores with the probe in it, canonical."""
    feats = canonical_rows(emb)
    scores = canonical_matrix(feats, feats)
    same = identity[:, None] == identity[None, :]
    out = {}
    for d in range(n_groups):
        both = (group[:, None] == d) & (group[None, :] == d)
        probe = (group[:, None] == d) & ~np.eye(len(group), dtype=bool)
        out[d] = (scores[both & ~same], scores[probe & same])
    return out


def test_instance_det_is_exact_at_every_point(tmp_path, rng, monkeypatch):
    emb, identity, group = make_data(rng, 150, 5, 16)
    result = evaluate_file(tmp_path, emb, identity, group, targets=(1e-2,), tile=60, device="cpu",
                           det=True)
    reference = dense_det(emb, identity, group, 3)
    for d, name in enumerate(GROUP_NAMES):
        curve = result["det"][name]
        impostor, genuine = reference[d]
        assert curve["threshold"] == sorted(curve["threshold"], reverse=True)
        assert len(curve["threshold"]) > 10
        for t, fmr, fnmr in zip(curve["threshold"], curve["fmr"], curve["fnmr"]):
            assert fmr == np.mean(impostor > np.float32(t))
            assert fnmr == 1 - np.mean(genuine > np.float32(t))
        assert result["eer"][name] == search.eer(curve["fmr"], curve["fnmr"])
        assert result["eer"][name] is not None
    # the matched FMR at the entry's threshold is one point of the same definition
    entry = result["results"][0]
    for d, name in enumerate(GROUP_NAMES):
        assert entry["groups"][name]["fmr"] == pytest.approx(
            np.mean(reference[d][0] > np.float32(entry["threshold"])), rel=1e-12)


def test_det_points_do_not_depend_on_tiles_or_a_sampled_placement(tmp_path, rng, monkeypatch):
    """Groups larger than the sample: thresholds placed from a sample, counts still exact."""
    from mfftools.evaluation import det

    emb, identity, group = make_data(rng, 120, 5, 16)
    monkeypatch.setattr(det, "SAMPLE", 50)
    first = evaluate_file(tmp_path, emb, identity, group, targets=(1e-2,), tile=37, device="cpu",
                          det=True)
    second = evaluate_file(tmp_path, emb, identity, group, targets=(1e-2,), tile=400,
                           device="cpu", det=True, precision="bf16")
    assert first["det"] == second["det"] and first["eer"] == second["eer"]
    reference = dense_det(emb, identity, group, 3)
    for d, name in enumerate(GROUP_NAMES):
        for t, fmr in zip(first["det"][name]["threshold"], first["det"][name]["fmr"]):
            assert fmr == np.mean(reference[d][0] > np.float32(t))


def test_a_group_without_matched_impostors_has_no_curve(tmp_path, rng):
    emb, identity, group = make_data(rng, 40, 4, 8)
    lone = identity.max() + 1
    emb = np.concatenate([emb, rng.standard_normal((3, 8)).astype(np.float32)])
    identity = np.concatenate([identity, [lone] * 3])
    group = np.concatenate([np.where(group == 2, 0, group), [2, 2, 2]])  # group 2: one identity
    result = evaluate_file(tmp_path, emb, identity, group, targets=(1e-2,), device="cpu", det=True)
    assert result["det"]["Caucasian"] is None and result["eer"]["Caucasian"] is None
    assert result["det"]["African"] is not None
