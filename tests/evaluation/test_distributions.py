"""Score distributions per group against dense float64 matrices."""
import numpy as np
import pytest

from dense import canonical_rows
from instance_data import GROUP_NAMES, evaluate_file, make_data


def dense_distributions(emb, identity, group, n_groups):
    feats = canonical_rows(emb).astype(np.float64)
    dots = feats @ feats.T
    same = identity[:, None] == identity[None, :]
    genuine = same & ~np.eye(len(identity), dtype=bool)
    impostor = ~same

    def stats(mask):
        values = dots[mask]
        if not len(values):
            return {"mean": None, "std": None, "n": 0}
        return {"mean": values.mean(), "std": values.std(), "n": len(values)}

    probe = [group[:, None] == g for g in range(n_groups)]
    other = [group[None, :] == g for g in range(n_groups)]
    return {
        "genuine": {"all": stats(genuine), **{n: stats(genuine & probe[g])
                                              for g, n in enumerate(GROUP_NAMES[:n_groups])}},
        "impostor": {"all": stats(impostor), **{n: stats(impostor & probe[g])
                                                for g, n in enumerate(GROUP_NAMES[:n_groups])}},
        "matrix": [[stats(impostor & probe[a] & other[b]) for b in range(n_groups)]
                   for a in range(n_groups)],
    }


def close(ours, theirs):
    if theirs is None:
        return ours is None
    return ours == pytest.approx(theirs, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("mixed", [False, True])
def test_matches_dense_matrices(tmp_path, rng, device, mixed):
    emb, identity, group = make_data(rng, 80, 5, 12, single=0.3)
    if mixed:  # identities with images in two groups: their cross-group pairs are genuine
        group = np.where(rng.random(len(group)) < 0.1, (group + 1) % 3, group)
    result = evaluate_file(tmp_path, emb, identity, group, targets=(1e-2,), device=device)
    ours = result["score_distributions"]
    reference = dense_distributions(emb, identity, group, 3)
    for kind in ("genuine", "impostor"):
        for name, stats in reference[kind].items():
            assert ours[kind][name]["n"] == stats["n"]
            assert close(ours[kind][name]["mean"], stats["mean"])
            assert close(ours[kind][name]["std"], stats["std"])
        overall = reference[kind]["all"]
        for name in GROUP_NAMES:
            shift = (reference[kind][name]["mean"] - overall["mean"]) / overall["std"]
            assert close(ours["shift"][kind][name], shift)
    for a in range(3):
        for b in range(3):
            cell = reference["matrix"][a][b]
            assert close(ours["impostor_matrix"]["mean"][a][b], cell["mean"])
            assert close(ours["impostor_matrix"]["std"][a][b], cell["std"])


def test_a_group_without_images_is_null(tmp_path, rng):
    emb, identity, group = make_data(rng, 30, 4, 8, n_groups=2)
    result = evaluate_file(tmp_path, emb, identity, group, targets=(1e-2,), device="cpu")
    dist = result["score_distributions"]
    assert dist["genuine"]["Caucasian"] == {"mean": None, "std": None, "n": 0}
    assert dist["shift"]["impostor"]["Caucasian"] is None
    assert dist["impostor_matrix"]["mean"][2] == [None, None, None]
