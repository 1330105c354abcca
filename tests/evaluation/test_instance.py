"""The instance protocol engine against a dense reference written here.

The reference is obviously correct and only for small N: the full N x N matrix, as the paper.

Every count comes from the full score matrix and boolean masks; the bisection is the paper's loop
(`ThresholdOptimizer.Start`) with its float32 rates; the exact threshold is found by trying every
impostor score. Only for small N.
"""
from fractions import Fraction
import math

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal

from embedding_files import write_images_file
from mfftools.embeddings import open_embeddings
from mfftools.evaluation.instance import evaluate_instance


def dense_instance(embeddings, identity, group, targets, methods, n_groups):
    """Reference results: {(target, method): dict}, plus "similarity": per-identity intra/inter."""
    feats = torch.nn.functional.normalize(torch.from_numpy(embeddings.astype(np.float32)), dim=1)
    scores = (feats @ feats.T).clamp(-1, 1)
    ident = torch.from_numpy(identity)
    same = ident[:, None] == ident[None, :]
    eye = torch.eye(len(identity), dtype=torch.bool)
    genuine = same & ~eye
    impostor = ~same
    n_impostor = int(impostor.sum())
    n_genuine = int(genuine.sum())

    def fpr32(thr):
        return ((scores > thr) & impostor).sum() / impostor.sum()

    out = {}
    for target in targets:
        for method in methods:
            if method == "bisection":
                thr, converged = _paper_bisection(fpr32, target)
            else:
                thr, converged = _exact(scores[impostor], n_impostor, target), True
            out[(target, method)] = _stats_at(
                scores, thr, converged, genuine, impostor, identity, group, n_groups,
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


def _stats_at(scores, thr, converged, genuine, impostor, identity, group, n_groups, n_gen, n_imp):
    accepted = scores > thr
    tp = (accepted & genuine).sum(1).numpy()
    fp = (accepted & impostor).sum(1).numpy()
    gen_row = genuine.sum(1).numpy()
    imp_row = impostor.sum(1).numpy()
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
    grp = torch.from_numpy(group)
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
        (120, 4, 12, 600, (1e-3, 1e-4)),    # diagonal tile split into sub-blocks
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
