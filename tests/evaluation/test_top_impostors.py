"""The instance protocol's `top_impostors` against a dense reference: exact scores, rows and tie
order, overall and per group, whether the top set holds them or a pass of their own finds them."""
import numpy as np
import pytest

from dense import canonical_matrix, canonical_rows
from instance_data import GROUP_NAMES, evaluate_file, lattice_data, make_data
from mfftools.evaluation import threshold as search, top_impostors as module
from test_calibrated_instance import _calibration, dense_calibrated


def dense_top_impostors(emb, identity, group, group_names, count, scores=None):
    """Every impostor pair (a < b) ranked by score (canonical, or `scores`) descending, then a,
    then b; the first `count` overall and with both images in each group."""
    if scores is None:
        scores = canonical_matrix(canonical_rows(emb), canonical_rows(emb))
    a, b = np.triu_indices(len(emb), 1)
    impostor = identity[a] != identity[b]
    a, b = a[impostor], b[impostor]
    values = scores[a, b]
    order = np.lexsort((b, a, -values.astype(np.float64)))
    a, b, values = a[order], b[order], values[order]

    def listed(mask):
        return [([int(x), int(y)], float(v)) for x, y, v in
                zip(a[mask][:count], b[mask][:count], values[mask][:count])]

    groups = {name: listed((group[a] == d) & (group[b] == d))
              for d, name in enumerate(group_names)}
    return listed(np.ones(len(a), dtype=bool)), groups


def assert_top_matches(result, emb, identity, group, group_names=GROUP_NAMES, count=10,
                       scores=None):
    top = result["top_impostors"]
    overall, groups = dense_top_impostors(emb, identity, group, group_names, count, scores)
    assert top["count"] == count
    assert [(pair["rows"], pair["score"]) for pair in top["all"]] == overall
    assert set(top["groups"]) == set(group_names)
    for name in group_names:
        assert [(pair["rows"], pair["score"]) for pair in top["groups"][name]] == groups[name]
    for pair in top["all"]:
        rows = pair["rows"]
        assert pair["identity"] == [int(identity[row]) for row in rows]
        assert pair["group"] == [group_names[group[row]] for row in rows]
        assert pair["path"] == [f"img_{row}.jpg" for row in rows]
        assert pair["identity_name"] is None


@pytest.mark.parametrize("data, tile, precision", [
    ("random", 37, "fp32"), ("random", 1000, "bf16"), ("lattice", 50, "fp32"),
    ("lattice", 64, "bf16")])
def test_matches_dense_reference(tmp_path, rng, device, data, tile, precision):
    if data == "lattice":  # few distinct scores: ties everywhere, broken by the rows
        emb, identity, group = lattice_data(rng, n=200)
    else:
        emb, identity, group = make_data(rng, 80, 5, 12)
    result = evaluate_file(tmp_path, emb, identity, group, targets=(1e-2,), tile=tile,
                           device=device, precision=precision)
    assert_top_matches(result, emb, identity, group)


@pytest.mark.parametrize("data", ["random", "lattice"])
def test_small_top_set_passes_over_the_groups(tmp_path, rng, monkeypatch, device, data):
    """A top set far too small for the groups: each group gets a pass, exactly; ties at its cut
    are listed by rows, not counted."""
    monkeypatch.setattr(search, "keep_for_targets", lambda targets, n: 6)
    passes = []
    real = module._Scopes.passed
    monkeypatch.setattr(module._Scopes, "passed",
                        lambda self, count, members: passes.append(len(members))
                        or real(self, count, members))
    if data == "lattice":
        emb, identity, group = lattice_data(rng, n=150)
    else:
        emb, identity, group = make_data(rng, 60, 5, 8)
    for precision in ("fp32", "bf16"):
        result = evaluate_file(tmp_path, emb, identity, group, targets=(1e-2,), tile=40,
                               device=device, precision=precision)
        assert_top_matches(result, emb, identity, group)
    assert passes and len(emb) in passes  # the overall list too: 6 kept pairs are not 10


def test_the_top_set_suffices_without_a_pass(tmp_path, rng, monkeypatch):
    def refuse(*args):
        raise AssertionError("a pass was needed")

    monkeypatch.setattr(module._Scopes, "passed", refuse)
    emb, identity, group = make_data(rng, 90, 5, 10)
    result = evaluate_file(tmp_path, emb, identity, group, targets=(5e-2,), device="cpu")
    assert_top_matches(result, emb, identity, group)


def test_single_images_lone_group_empty_group_and_float16(tmp_path, rng):
    """A group of one identity has no impostor pair of its own; an unused group none either."""
    emb, identity, group = make_data(rng, 45, 4, 16, n_groups=2, single=0.5)
    group = np.where(identity == identity[0], 2, group)
    names = ["A", "B", "C", "D"]
    emb16 = emb.astype(np.float16)
    result = evaluate_file(tmp_path, emb16, identity, group, group_names=names,
                           targets=(1e-2,), tile=33, device="cpu")
    assert_top_matches(result, emb16.astype(np.float32), identity, group, names)
    assert result["top_impostors"]["groups"]["C"] == []
    assert result["top_impostors"]["groups"]["D"] == []


@pytest.mark.parametrize("method", ["faircal", "gst"])
def test_calibrated_scores_rank_the_pairs(tmp_path, rng, monkeypatch, method):
    """Under a calibration the pairs are ranked by their calibrated scores (ties galore with an
    isotonic map), in the groups' own passes too."""
    monkeypatch.setattr(search, "keep_for_targets", lambda targets, n: 6)
    emb, identity, group = lattice_data(rng)
    calibration = _calibration(tmp_path, method, 3, calibrator="isotonic")
    scores = dense_calibrated(emb, identity, group, (), calibration)["scores"]
    result = evaluate_file(tmp_path, emb, identity, group, targets=(0.05,), tile=48,
                           precision="bf16", device="cpu", calibration=calibration)
    assert_top_matches(result, emb, identity, group, scores=scores)
