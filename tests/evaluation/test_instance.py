"""The instance protocol against the dense canonical reference (tests/evaluation/dense.py).

Every threshold, count and statistic is compared; thresholds and counts exactly, since both
sides compute canonical scores. The results file must not depend on the tile size, the screening
precision or the device.
"""
import json
import logging
import re

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from dense import dense_instance, exact_threshold as dense_exact
from embedding_files import write_pairs_file
from instance_data import GROUP_NAMES, evaluate_file, lattice_data, make_data
from mfftools.embeddings import open_embeddings
from mfftools.errors import MfftoolsError
from mfftools.evaluation import instance, threshold as search
from mfftools.evaluation.engine import counts as counts_module
from mfftools.evaluation.fairness import group_fairness
from mfftools.evaluation.instance import evaluate_instance

METHODS = ("bisection", "exact")


def assert_matches(result, reference, identity, full_ladder=True):
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
            for key in ("fmr", "fmr_probe_group", "fnmr"):
                if ref[key][g] is None:
                    assert stats[key] is None
                else:
                    assert stats[key] == pytest.approx(ref[key][g], rel=1e-12, abs=1e-15)
        matrix = np.array(entry["group_fmr_matrix"], dtype=float)
        assert_allclose(matrix, ref["matrix"], rtol=1e-12, equal_nan=True)
        assert_relative_fmr(entry, ref, result["group_names"])
        assert_ladder(entry, reference["scores"], identity, full_ladder)
    sims = reference["similarity"]
    first = result["results"][0]["per_identity"]
    assert_allclose(first["intra"], sims["intra"], rtol=1e-12, atol=0)
    assert_allclose(first["inter"], sims["inter"], rtol=1e-12, atol=0)
    assert result["n_identities"] == len(np.unique(identity))
    assert result["n_images"] == len(identity)


def assert_relative_fmr(entry, ref, names):
    """The reference group has the lowest matched FMR; every group's FMR is divided by it; the
    fairness measures compare matched FMRs."""
    defined = [(value, g) for g, value in enumerate(ref["fmr"]) if value is not None]
    reference = names[min(defined)[1]]
    assert entry["reference_group"] == reference
    base = ref["fmr"][names.index(reference)]
    for g, name in enumerate(names):
        if ref["fmr"][g] is None or not base:  # undefined: no pairs, or a reference FMR of 0
            assert entry["groups"][name]["fmr_relative"] is None
        else:
            assert entry["groups"][name]["fmr_relative"] == pytest.approx(ref["fmr"][g] / base,
                                                                          rel=1e-12)
    present = [g for g in range(len(names)) if ref["fmr"][g] is not None
               and ref["fnmr"][g] is not None]
    expected = group_fairness([ref["fmr"][g] for g in present], [ref["fnmr"][g] for g in present])
    for key, value in expected.items():
        assert (entry["fairness"][key] is None if value is None
                else entry["fairness"][key] == pytest.approx(value, rel=1e-12)), key


def assert_ladder(entry, scores, identity, full):
    """Each ladder level's threshold is the dense exact threshold at that level; each identity's
    accepted genuine and impostor ordered pairs are counted densely at it. `full`: every level
    of instance.LADDER is there."""
    same = identity[:, None] == identity[None, :]
    impostor, genuine = ~same, same & ~np.eye(len(identity), dtype=bool)
    ladder = entry["ladder"]
    labels = np.unique(identity)
    if full:
        assert ladder["target_fpr"] == [entry["target_fpr"] * f for f in instance.LADDER]
    for level, threshold, tp, fp in zip(ladder["target_fpr"], ladder["threshold"],
                                        ladder["identity_tp"], ladder["identity_fp"]):
        assert threshold == dense_exact(scores[impostor], int(impostor.sum()), level)
        accepted = scores > np.float32(threshold)
        for k, label in enumerate(labels):
            rows = identity == label
            assert tp[k] == int((accepted & genuine)[rows].sum())
            assert fp[k] == int((accepted & impostor)[rows].sum())


def without_engine(result):
    """The results file as JSON text, without the entry that says how it was computed."""
    return json.dumps({key: value for key, value in result.items() if key != "engine"})


@pytest.mark.parametrize(
    "n_identities, max_images, dim, tile, targets",
    [
        (40, 5, 16, 7, (1e-2, 1e-3)),       # tile not dividing N, many tiles
        (70, 6, 8, 64, (3e-3,)),            # fewer than 50 identities in some groups
        (30, 4, 32, 1000, (1e-2,)),         # N smaller than a tile
        (220, 4, 12, 560, (1e-3, 1e-4)),    # diagonal tiles split into sub-blocks
    ],
)
def test_matches_dense_reference(tmp_path, rng, device, n_identities, max_images, dim, tile,
                                 targets):
    emb, identity, group = make_data(rng, n_identities, max_images, dim)
    result = evaluate_file(tmp_path, emb, identity, group, targets=targets, methods=METHODS,
                           tile=tile, device=device)
    reference = dense_instance(emb, identity, group, targets, METHODS, len(GROUP_NAMES))
    assert_matches(result, reference, identity)
    assert [(e["target_fpr"], e["method"]) for e in result["results"]] == [
        (t, m) for t in targets for m in METHODS
    ]


def test_ties_at_the_threshold(tmp_path, rng, device):
    emb, identity, group = lattice_data(rng)
    targets = (1e-2, 1e-3, 0.2)
    result = evaluate_file(tmp_path, emb, identity, group, targets=targets, methods=METHODS,
                           tile=50, device=device)
    reference = dense_instance(emb, identity, group, targets, METHODS, 3)
    assert_matches(result, reference, identity)


def test_single_images_lone_group_and_float16(tmp_path, rng, device):
    """Identities with one image, a group with one identity, an unused group, a float16 file."""
    emb, identity, group = make_data(rng, 45, 4, 16, n_groups=2, single=0.5)
    lone = identity == identity[0]
    group = np.where(lone, 2, group)  # group 2 holds exactly one identity; group 3 none
    names = ["A", "B", "C", "D"]
    emb16 = emb.astype(np.float16)
    targets = (1e-2,)
    result = evaluate_file(tmp_path, emb16, identity, group, group_names=names,
                           targets=targets, methods=METHODS, tile=33, device=device)
    reference = dense_instance(emb16.astype(np.float32), identity, group, targets, METHODS, 4)
    assert_matches(result, reference, identity)
    sizes = np.unique(identity, return_counts=True)[1]
    assert result["n_single_image_identities"] == int((sizes == 1).sum()) > 0
    entry = result["results"][0]
    assert entry["groups"]["D"] == {key: None for key in entry["groups"]["D"]}
    assert result["similarity"]["D"]["intra_mean"] is None
    assert result["similarity"]["C"]["inter_std"] == 0.0


RESULTS_KEYS = {"protocol", "n_images", "n_identities", "dim", "group_names", "results",
                "similarity"}


@pytest.mark.parametrize("data", ["random", "lattice", "float16"])
def test_results_do_not_depend_on_tile_or_precision(tmp_path, rng, data):
    """The whole results file, bit for bit, for odd tiles and every CPU screening precision."""
    if data == "lattice":
        emb, identity, group = lattice_data(rng, n=300)
    else:
        emb, identity, group = make_data(rng, 110, 6, 24)
        if data == "float16":
            emb = emb.astype(np.float16)
    texts = set()
    for tile in (64, 257, 999):
        for precision in ("fp32", "bf16", "fp16"):
            result = evaluate_file(tmp_path, emb, identity, group, targets=(1e-2, 1e-3),
                                   methods=METHODS, tile=tile, device="cpu", precision=precision)
            assert result["engine"]["precision"] == precision
            assert result["engine"]["n_rescored_pairs"] > 0
            texts.add(without_engine(result))
    assert len(texts) == 1
    assert RESULTS_KEYS <= set(json.loads(texts.pop()))


def test_thousands_of_scores_within_the_bound_of_the_cut(tmp_path, rng):
    """Adversarial: every impostor score lies within a few float32 steps of one value, far
    inside the bf16 band; the exact counts must still come out, whatever the precision."""
    n = 400
    base = rng.standard_normal(64)
    base /= np.linalg.norm(base)
    noise = rng.standard_normal((n, 64)) * 1e-6
    emb = (base + noise).astype(np.float32)
    identity = np.arange(n) // 2  # pairs: 200 identities
    group = identity % 3
    targets = (1e-2, 1e-3)
    reference = dense_instance(emb, identity, group, targets, METHODS, 3)
    scores = reference["scores"][identity[:, None] != identity[None, :]]
    for precision in ("fp32", "bf16"):
        result = evaluate_file(tmp_path, emb, identity, group, targets=targets, methods=METHODS,
                               tile=64, device="cpu", precision=precision)
        bound = result["engine"]["screening_bound"]
        cut = result["results"][-1]["threshold"]
        assert np.count_nonzero(np.abs(scores - cut) <= bound) > 2000
        assert_matches(result, reference, identity)


@pytest.mark.parametrize("data", ["continuous", "lattice"])
def test_small_top_set_falls_back_to_exact_counts(tmp_path, rng, monkeypatch, data):
    """With a top set far too small, what it cannot answer is counted by a second pass, exactly."""
    monkeypatch.setattr(search, "keep_for_targets", lambda targets, n: 6)
    passes = []
    real_counter = counts_module.ThresholdCounter
    monkeypatch.setattr(instance, "ThresholdCounter",
                        lambda *args, **kw: passes.append(args[0]) or real_counter(*args, **kw))
    if data == "lattice":
        emb, identity, group = lattice_data(rng, n=150)
    else:
        emb, identity, group = make_data(rng, 50, 5, 8)
    targets = (1e-2, 0.1)
    for precision in ("fp32", "bf16"):
        result = evaluate_file(tmp_path, emb, identity, group, targets=targets,
                               methods=("bisection",), tile=40, device="cpu", precision=precision)
        reference = dense_instance(emb, identity, group, targets, ("bisection",), 3)
        assert_matches(result, reference, identity, full_ladder=False)
    assert passes


def test_the_top_set_suffices_without_a_second_pass(tmp_path, rng, monkeypatch):
    """On continuous scores the kept pairs decide every bisection step: no count pass runs."""
    def refuse(*args, **kwargs):
        raise AssertionError("a second pass was needed")

    monkeypatch.setattr(instance, "ThresholdCounter", refuse)
    emb, identity, group = make_data(rng, 90, 5, 10)
    targets = (1e-2, 1e-3, 2e-4)
    result = evaluate_file(tmp_path, emb, identity, group, targets=targets, methods=METHODS,
                           tile=64, device="cpu")
    reference = dense_instance(emb, identity, group, targets, METHODS, 3)
    assert_matches(result, reference, identity)


def test_repeated_targets_and_methods_count_once(tmp_path, rng):
    emb, identity, group = make_data(rng, 40, 4, 8)
    result = evaluate_file(tmp_path, emb, identity, group, targets=(1e-2, 1e-2, 0.01),
                           methods=("exact", "exact"), device="cpu")
    assert [(e["target_fpr"], e["method"]) for e in result["results"]] == [(1e-2, "exact")]


def test_intra_similarity_without_one_image_identities(tmp_path, rng):
    emb, identity, group = make_data(rng, 60, 4, 8, single=0.5)
    result = evaluate_file(tmp_path, emb, identity, group, targets=(1e-2,), device="cpu")
    intra = np.array(result["results"][0]["per_identity"]["intra"])
    sizes = np.array(result["identities"]["n_images"])
    id_group = np.array(result["identities"]["group"])
    for g, name in enumerate(GROUP_NAMES):
        stats = result["similarity"][name]
        multi = intra[(id_group == g) & (sizes >= 2)]
        assert stats["intra_mean_multi"] == pytest.approx(multi.mean(), rel=1e-12)
        assert stats["intra_std_multi"] == pytest.approx(multi.std(), abs=1e-12)
        assert stats["intra_mean"] > stats["intra_mean_multi"]  # one-image identities score 1
    assert intra[sizes == 1] == pytest.approx(1.0, abs=1e-6)


def test_roc_lists_every_group(tmp_path, rng):
    """Up to 64 points per group; a group without genuine pairs keeps its FPR, TPR null."""
    emb, identity, group = make_data(rng, 120, 4, 8)
    lone = np.isin(identity, np.unique(identity)[:5])
    identity = np.where(lone, np.arange(len(identity)) + 10**6, identity)  # single images
    group = np.where(lone, 2, np.minimum(group, 1))
    result = evaluate_file(tmp_path, emb, identity, group, targets=(1e-2,), device="cpu")
    roc = result["roc"]
    assert set(roc) == set(GROUP_NAMES)
    assert 1 < len(roc["African"]["threshold"]) <= 64
    assert roc["Caucasian"]["tpr"] == [None] * len(roc["Caucasian"]["threshold"])
    assert all(value is not None for value in roc["Caucasian"]["fpr"])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"targets": (0.0,)}, "outside (0, 1)"),
        ({"targets": (1.5,)}, "outside (0, 1)"),
        ({"targets": (1e-9,)}, "cannot be resolved"),
        ({"tile": 0}, "--tile must be at least 1"),
        ({"methods": ("median",)}, "unknown threshold method"),
        ({"precision": "fp8", "targets": (0.1,)}, "unknown precision 'fp8'"),
        ({"precision": "tf32", "targets": (0.1,)}, "--precision tf32 runs on CUDA tensor cores"),
    ],
)
def test_bad_requests(tmp_path, rng, kwargs, message):
    emb, identity, group = make_data(rng, 10, 3, 4)
    kwargs.setdefault("device", "cpu")
    with pytest.raises(MfftoolsError, match=re.escape(message)):
        evaluate_file(tmp_path, emb, identity, group, **kwargs)


def test_unresolvable_target_names_the_smallest_one(tmp_path):
    """Ordered pairs come in twos: with I ordered impostor pairs the smallest FPR is 2/I."""
    emb = np.eye(6, dtype=np.float32) + 0.1
    identity, group = np.arange(6), np.zeros(6, dtype=np.int64)  # I = 30
    with pytest.raises(MfftoolsError, match=re.escape("the smallest non-zero FPR is 2/30 = 0.0667")):
        evaluate_file(tmp_path, emb, identity, group, targets=(0.05,), device="cpu")
    result = evaluate_file(tmp_path, emb, identity, group, targets=(0.07,), device="cpu",
                           methods=("exact",))
    assert result["results"][0]["n_accepted_impostor"] == 0  # every impostor score ties


def test_a_threshold_accepting_nothing_is_said_loudly(tmp_path, rng, caplog):
    emb, identity, group = lattice_data(rng)
    with caplog.at_level(logging.WARNING):
        result = evaluate_file(tmp_path, emb, identity, group, targets=(1e-3,), device="cpu",
                               methods=("exact",))
    n_impostor = result["n_impostor_pairs"]
    reference = dense_instance(emb, identity, group, (1e-3,), ("exact",), 3)
    scores = reference["scores"][np.triu(identity[:, None] != identity[None, :], 1)]
    tied = int((scores == scores.max()).sum())
    assert result["results"][0]["n_accepted_impostor"] == 0
    assert (f"target FPR 0.001 (exact): the threshold 1 accepts no impostor pair, so the reported "
            f"FPR is 0; the smallest target these scores resolve is {2 * tied / n_impostor:.3g} "
            f"(the {2 * tied} highest-scoring ordered impostor pairs tie)") in caplog.text


def test_pairs_layout_is_refused(tmp_path, rng):
    path = write_pairs_file(tmp_path / "p.h5", rng.standard_normal((8, 4)).astype(np.float32),
                            np.array([True, False, True, False]), np.zeros(4, dtype=np.int64), ["A"])
    with pytest.raises(MfftoolsError, match="'images'-layout"):
        evaluate_instance(open_embeddings(path), progress=False)


def test_one_group_has_no_fairness_measures(tmp_path, rng):
    emb, identity, group = make_data(rng, 30, 4, 8, n_groups=1)
    result = evaluate_file(tmp_path, emb, identity, group, group_names=["Only"],
                           targets=(1e-2,), device="cpu")
    assert set(result["results"][0]["fairness"].values()) == {None}
