"""The instance protocol engine against a dense reference written here.

The reference is obviously correct and only for small N: the full N x N matrix, as the paper.
Every count comes from the full score matrix and boolean masks; the bisection is the paper's loop
(`ThresholdOptimizer.Start`) with its float32 rates; the exact threshold is found by trying every
impostor score.
"""
from fractions import Fraction
import math
import re

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal

from embedding_files import write_images_file, write_pairs_file
from mfftools.embeddings import open_embeddings
from mfftools.errors import MfftoolsError
from mfftools.evaluation import instance, similarity, threshold as search
from mfftools.evaluation.identities import build_layout
from mfftools.evaluation.instance import evaluate_instance
from mfftools.evaluation.stream import score_pass
from mfftools.evaluation.tiles import plan_tiles
from mfftools.evaluation.topset import ImpostorTopSet


def dense_instance(embeddings, identity, group, targets, methods, n_groups):
    """Reference results: {(target, method): dict}, plus "similarity": per-identity intra/inter."""
    feats = torch.nn.functional.normalize(torch.from_numpy(embeddings.astype(np.float32)), dim=1)
    scores = (feats @ feats.T).clamp(-1, 1)
    same = identity[:, None] == identity[None, :]
    genuine = same & ~np.eye(len(identity), dtype=bool)
    impostor = ~same
    n_impostor = int(impostor.sum())
    n_genuine = int(genuine.sum())

    def fpr32(thr):
        # The paper's float32 rate: int64 tensor / int64 tensor.
        fp = int(((scores > thr).numpy() & impostor).sum())
        return torch.tensor(fp) / torch.tensor(n_impostor)

    out = {}
    for target in targets:
        for method in methods:
            if method == "bisection":
                thr, converged = _paper_bisection(fpr32, target)
            else:
                thr, converged = _exact(scores[torch.from_numpy(impostor)], n_impostor, target), True
            accepted = (scores > thr).numpy()
            out[(target, method)] = _stats_at(
                accepted, thr, converged, genuine, impostor, identity, group, n_groups,
                n_genuine, n_impostor,
            )
    out["similarity"] = _similarity(feats, identity)
    return out


def _paper_bisection(fpr32, selected_fpr, min_thr=-1, max_thr=1, max_iters=70):
    tol = selected_fpr / 10.0
    converge = False
    for _ in range(max_iters):
        current_thr = (min_thr + max_thr) / 2.0
        current_fpr = fpr32(current_thr)
        error = current_fpr - selected_fpr
        if error < tol and error > 0:
            converge = True
            break
        if current_fpr > selected_fpr:
            min_thr = current_thr
        else:
            max_thr = current_thr
    return current_thr, converge


def _exact(impostor_scores, n_impostor, target):
    """Smallest impostor score t with count(s > t) / n <= target, trying every distinct score.

    count / n <= target holds for an integer count exactly when count <= floor(target * n).
    """
    allowed = math.floor(Fraction(target) * n_impostor)
    ordered = torch.sort(impostor_scores).values
    candidates = torch.unique(ordered)
    above = len(ordered) - torch.searchsorted(ordered, candidates, right=True)
    return float(candidates[above <= allowed].min())


def _stats_at(accepted, thr, converged, genuine, impostor, identity, group, n_groups, n_gen, n_imp):
    tp = (accepted & genuine).sum(1)
    fp = (accepted & impostor).sum(1)
    gen_row = genuine.sum(1)
    imp_row = impostor.sum(1)
    labels = np.unique(identity)
    tpr_id, fpr_id, id_group = [], [], []
    for label in labels:
        rows = np.flatnonzero(identity == label)
        id_group.append(group[rows[0]])
        fpr_id.append(np.mean(fp[rows] / imp_row[rows]))
        tpr_id.append(np.mean(tp[rows] / gen_row[rows]) if len(rows) > 1 else np.nan)
    tpr_id, fpr_id, id_group = np.array(tpr_id), np.array(fpr_id), np.array(id_group)
    fmr, fnmr = [], []
    matrix = np.full((n_groups, n_groups), np.nan)
    grp = group
    for a in range(n_groups):
        probe = grp == a
        imp_a = int(impostor[probe].sum())
        gen_a = int(genuine[probe].sum())
        fmr.append(int((accepted & impostor)[probe].sum()) / imp_a if imp_a else None)
        fnmr.append(1 - int((accepted & genuine)[probe].sum()) / gen_a if gen_a else None)
        for b in range(n_groups):
            pair = probe[:, None] & (grp == b)[None, :] & impostor
            if int(pair.sum()):
                matrix[a, b] = int((pair & accepted).sum()) / int(pair.sum())
    return {
        "threshold": thr,
        "converged": converged,
        "tpr": int((accepted & genuine).sum()) / n_gen if n_gen else None,
        "fpr": int((accepted & impostor).sum()) / n_imp,
        "tp": tp,
        "fp": fp,
        "tpr_id": tpr_id,
        "fpr_id": fpr_id,
        "id_group": id_group,
        "fmr": fmr,
        "fnmr": fnmr,
        "matrix": matrix,
    }


def _similarity(feats, identity):
    labels = np.unique(identity)
    centres = torch.stack(
        [feats[torch.from_numpy(identity == label)].double().mean(0) for label in labels]
    )
    centres = torch.nn.functional.normalize(centres, dim=1).float()
    intra = np.array([
        float((feats[torch.from_numpy(identity == label)] @ centres[k]).clamp(-1, 1).double().mean())
        for k, label in enumerate(labels)
    ])
    sims = (centres @ centres.T).clamp(-1, 1)
    inter = []
    for k in range(len(labels)):
        others = torch.cat([sims[k, :k], sims[k, k + 1 :]])
        top = torch.sort(others, descending=True).values[:50]
        inter.append(float(top.double().mean()))
    return {"intra": intra, "inter": np.array(inter)}


# ---------------------------------------------------------------------------------------------
# The engine against the reference.
# ---------------------------------------------------------------------------------------------

GROUP_NAMES = ["African", "Asian", "Caucasian"]


def make_data(rng, n_identities, max_images, dim, n_groups=3, single=0.2):
    """Random identities of 1..max_images images, clustered around identity centres."""
    sizes = rng.integers(2, max_images + 1, size=n_identities)
    sizes[rng.random(n_identities) < single] = 1
    identity = np.repeat(rng.permutation(10 * n_identities)[:n_identities] * 7 - 50, sizes)
    id_group = rng.integers(0, n_groups, size=n_identities)
    group = np.repeat(id_group, sizes)
    centres = rng.standard_normal((n_identities, dim))
    emb = np.repeat(centres, sizes, axis=0) + 0.9 * rng.standard_normal((len(identity), dim))
    order = rng.permutation(len(identity))  # identities unsorted in the file
    return emb[order].astype(np.float32), identity[order], group[order]


def evaluate_file(tmp_path, emb, identity, group, group_names=GROUP_NAMES, name="e.h5", **kw):
    path = write_images_file(tmp_path / name, emb, identity, group, group_names)
    return evaluate_instance(open_embeddings(path), progress=False, **kw)


def assert_matches(result, reference, identity):
    for entry in result["results"]:
        ref = reference[(entry["target_fpr"], entry["method"])]
        assert entry["threshold"] == ref["threshold"], entry["method"]
        assert entry["converged"] == ref["converged"]
        assert entry["n_accepted_impostor"] == int(ref["fp"].sum())
        assert entry["n_accepted_genuine"] == int(ref["tp"].sum())
        assert entry["fpr"] == pytest.approx(ref["fpr"], rel=1e-12, abs=0)
        if ref["tpr"] is None:
            assert entry["tpr"] is None
        else:
            assert entry["tpr"] == pytest.approx(ref["tpr"], rel=1e-12, abs=0)
        per_id = entry["per_identity"]
        tpr = np.array([np.nan if v is None else v for v in per_id["tpr"]])
        assert_allclose(tpr, ref["tpr_id"], rtol=1e-12, atol=1e-15)
        assert_allclose(per_id["fpr"], ref["fpr_id"], rtol=1e-12, atol=1e-15)
        assert_array_equal(per_id["group"], ref["id_group"])
        valid = ~np.isnan(ref["tpr_id"])
        assert entry["instance"]["tpr_mean"] == pytest.approx(np.mean(ref["tpr_id"][valid]), rel=1e-12)
        assert entry["instance"]["tpr_std"] == pytest.approx(np.std(ref["tpr_id"][valid]), abs=1e-12)
        assert entry["instance"]["fpr_mean"] == pytest.approx(np.mean(ref["fpr_id"]), rel=1e-12)
        assert entry["instance"]["fpr_std"] == pytest.approx(np.std(ref["fpr_id"]), abs=1e-12)
        for g, name in enumerate(result["group_names"]):
            stats = entry["groups"][name]
            members = ref["id_group"] == g
            for key, column, mask in (("tpr", ref["tpr_id"], members & valid),
                                      ("fpr", ref["fpr_id"], members)):
                if mask.any():
                    assert stats[f"{key}_mean"] == pytest.approx(np.mean(column[mask]), rel=1e-12)
                    assert stats[f"{key}_std"] == pytest.approx(np.std(column[mask]), abs=1e-12)
                else:
                    assert stats[f"{key}_mean"] is None and stats[f"{key}_std"] is None
            for key in ("fmr", "fnmr"):
                if ref[key][g] is None:
                    assert stats[key] is None
                else:
                    assert stats[key] == pytest.approx(ref[key][g], rel=1e-12, abs=1e-15)
        matrix = np.array(entry["group_fmr_matrix"], dtype=float)
        assert_allclose(matrix, ref["matrix"], rtol=1e-12, equal_nan=True)
    sims = reference["similarity"]
    first = result["results"][0]["per_identity"]
    assert_allclose(first["intra"], sims["intra"], rtol=0, atol=2e-6)
    assert_allclose(first["inter"], sims["inter"], rtol=0, atol=2e-6)
    assert result["n_identities"] == len(np.unique(identity))
    assert result["n_images"] == len(identity)


@pytest.mark.parametrize(
    "n_identities, max_images, dim, tile, targets",
    [
        (40, 5, 16, 7, (1e-2, 1e-3)),       # tile not dividing N, many tiles
        (70, 6, 8, 64, (3e-3,)),            # fewer than 50 identities in some groups
        (30, 4, 32, 1000, (1e-2,)),         # N smaller than a tile
        (220, 4, 12, 560, (1e-3, 1e-4)),    # diagonal tiles split into sub-blocks
    ],
)
def test_matches_dense_reference(tmp_path, rng, n_identities, max_images, dim, tile, targets):
    emb, identity, group = make_data(rng, n_identities, max_images, dim)
    methods = ("bisection", "exact")
    result = evaluate_file(tmp_path, emb, identity, group, targets=targets, methods=methods,
                           tile=tile, device="cpu")
    reference = dense_instance(emb, identity, group, targets, methods, len(GROUP_NAMES))
    assert_matches(result, reference, identity)
    assert [(e["target_fpr"], e["method"]) for e in result["results"]] == [
        (t, m) for t in targets for m in methods
    ]


def lattice_data(rng, n=260):
    """Embeddings on a coarse lattice: few distinct scores, each shared by many pairs."""
    identity = rng.integers(0, 60, size=n)
    group = identity % 3
    emb = rng.integers(-1, 2, size=(n, 3)).astype(np.float32)
    emb[~emb.any(axis=1)] = 1.0
    return emb, identity, group


def test_ties_at_the_threshold(tmp_path, rng):
    emb, identity, group = lattice_data(rng)
    targets, methods = (1e-2, 1e-3, 0.2), ("bisection", "exact")
    result = evaluate_file(tmp_path, emb, identity, group, targets=targets, methods=methods,
                           tile=50, device="cpu")
    reference = dense_instance(emb, identity, group, targets, methods, 3)
    assert_matches(result, reference, identity)


def test_single_images_lone_group_and_float16(tmp_path, rng, monkeypatch):
    """Identities with one image, a group with one identity, an unused group, a float16 file."""
    monkeypatch.setattr(similarity, "_BLOCK", 8)  # centroids and neighbours in several blocks
    emb, identity, group = make_data(rng, 45, 4, 16, n_groups=2, single=0.5)
    lone = identity == identity[0]
    group = np.where(lone, 2, group)  # group 2 holds exactly one identity; group 3 none
    names = ["A", "B", "C", "D"]
    emb16 = emb.astype(np.float16)
    targets, methods = (1e-2,), ("bisection", "exact")
    result = evaluate_file(tmp_path, emb16, identity, group, group_names=names,
                           targets=targets, methods=methods, tile=33, device="cpu")
    reference = dense_instance(emb16.astype(np.float32), identity, group, targets, methods, 4)
    assert_matches(result, reference, identity)
    sizes = np.unique(identity, return_counts=True)[1]
    assert result["n_single_image_identities"] == int((sizes == 1).sum()) > 0
    entry = result["results"][0]
    assert entry["groups"]["D"] == {key: None for key in entry["groups"]["D"]}
    assert result["similarity"]["D"]["intra_mean"] is None
    assert result["similarity"]["C"]["inter_std"] == 0.0
    assert set(entry["fairness"]) == {"fdr", "fpd", "fnd", "garbe", "fmr_max_geomean",
                                      "fnmr_max_geomean"}


@pytest.mark.parametrize("data", ["continuous", "lattice"])
def test_small_top_set_falls_back_to_exact_counts(tmp_path, rng, monkeypatch, data):
    """With a top set far too small, what it cannot answer is counted by a second pass, exactly."""
    monkeypatch.setattr(search, "keep_for_targets", lambda targets, n: 6)
    passes = []
    real_count_pass = instance.count_pass
    monkeypatch.setattr(instance, "count_pass",
                        lambda *args, **kw: passes.append(args[3]) or real_count_pass(*args, **kw))
    if data == "lattice":
        emb, identity, group = lattice_data(rng, n=150)
    else:
        emb, identity, group = make_data(rng, 50, 5, 8)
    targets, methods = (1e-2, 0.1), ("bisection",)
    result = evaluate_file(tmp_path, emb, identity, group, targets=targets, methods=methods,
                           tile=40, device="cpu")
    reference = dense_instance(emb, identity, group, targets, methods, 3)
    assert_matches(result, reference, identity)
    assert passes


def test_the_top_set_suffices_without_a_second_pass(tmp_path, rng, monkeypatch):
    """On continuous scores the kept pairs decide every bisection step: no count pass runs."""
    def refuse(*args, **kwargs):
        raise AssertionError("a second pass was needed")

    monkeypatch.setattr(instance, "count_pass", refuse)
    emb, identity, group = make_data(rng, 90, 5, 10)
    targets = (1e-2, 1e-3, 2e-4)
    result = evaluate_file(tmp_path, emb, identity, group, targets=targets,
                           methods=("bisection", "exact"), tile=64, device="cpu")
    reference = dense_instance(emb, identity, group, targets, ("bisection", "exact"), 3)
    assert_matches(result, reference, identity)


def test_top_set_never_exceeds_its_bound(rng):
    """After every tile the set holds at most 2 x keep pairs; finally fewer than keep above the cut,
    and the cut is exactly the keep-th largest impostor score."""
    emb, identity, group = make_data(rng, 150, 4, 6)
    layout = build_layout(identity, group)
    rows = torch.nn.functional.normalize(torch.from_numpy(emb), dim=1)[layout.order]
    keep = 37
    sizes = []

    class Recording(ImpostorTopSet):
        def add(self, *args):
            super().add(*args)
            sizes.append(len(self))

    topset = Recording(keep)
    score_pass(rows, layout, plan_tiles(len(rows), 23), topset)
    assert len(sizes) == len(plan_tiles(len(rows), 23))
    assert max(sizes) <= 2 * keep
    topset.finalize()
    scores = (rows @ rows.T).clamp(-1, 1)
    ident = torch.from_numpy(layout.identity)
    upper = torch.triu(torch.ones_like(scores, dtype=torch.bool), diagonal=1)
    impostor_scores = torch.sort(scores[upper & (ident[:, None] != ident[None, :])],
                                 descending=True).values
    assert topset.cut == float(impostor_scores[keep - 1])
    assert len(topset) < keep <= len(topset) + topset.ties
    assert_array_equal(topset.values.numpy(), impostor_scores[: len(topset)].numpy())


def test_faiss_and_torch_neighbours_agree(rng, monkeypatch):
    pytest.importorskip("faiss")
    monkeypatch.setattr(similarity, "_KNN_ROWS", 16)  # several strips of the upper triangle
    centres = torch.nn.functional.normalize(torch.from_numpy(rng.standard_normal((80, 16)).astype(np.float32)), dim=1)
    centres[5] = centres[6]  # a duplicate: self must still be the one dropped
    with_faiss = similarity.inter_similarity(centres, use_faiss=True)
    with_torch = similarity.inter_similarity(centres, use_faiss=False)
    assert_allclose(with_faiss, with_torch, rtol=0, atol=1e-6)
    assert with_torch[5] == pytest.approx(with_torch[6], abs=1e-6)


@pytest.mark.parametrize("strip", [450, 4096])
def test_torch_neighbours_match_brute_force(rng, monkeypatch, strip):
    # Strips of 450 rows take the grouped top-k for rows and for columns; coarse vectors give ties.
    monkeypatch.setattr(similarity, "_KNN_ROWS", strip)
    coarse = rng.integers(-2, 3, size=(1300, 6)).astype(np.float32)
    centres = torch.nn.functional.normalize(torch.from_numpy(coarse), dim=1)
    found = similarity.nearest_centroids(centres, 50)
    scores = centres @ centres.T
    scores.fill_diagonal_(float("-inf"))
    assert_allclose(found.numpy(), scores.topk(50, dim=1).values.numpy(), rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"targets": (0.0,)}, "outside (0, 1)"),
        ({"targets": (1.5,)}, "outside (0, 1)"),
        ({"targets": (1e-9,)}, "cannot be resolved"),
        ({"tile": 0}, "--tile must be at least 1"),
        ({"methods": ("median",)}, "unknown threshold method"),
    ],
)
def test_bad_requests(tmp_path, rng, kwargs, message):
    emb, identity, group = make_data(rng, 10, 3, 4)
    with pytest.raises(MfftoolsError, match=re.escape(message)):
        evaluate_file(tmp_path, emb, identity, group, device="cpu", **kwargs)


def test_pairs_layout_is_refused(tmp_path, rng):
    path = write_pairs_file(tmp_path / "p.h5", rng.standard_normal((8, 4)).astype(np.float32),
                            np.array([True, False, True, False]), np.zeros(4, dtype=np.int64), ["A"])
    with pytest.raises(MfftoolsError, match="'images'-layout"):
        evaluate_instance(open_embeddings(path), progress=False)


def test_top_set_counts_compare_in_float32(rng):
    """count_above/rows_above agree with brute force at thresholds on, between and next to the
    kept scores, including the float32 rounding of a Python-float threshold."""
    scores = torch.from_numpy(rng.integers(-40, 40, size=3000).astype(np.float32) / 64)
    rows = torch.arange(len(scores), dtype=torch.int32)
    topset = ImpostorTopSet(keep=500)
    for first in range(0, len(scores), 700):
        block = scores[first:first + 700]
        keep = block >= topset.cut
        topset.add(block[keep], rows[first:first + 700][keep], rows[first:first + 700][keep])
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
