"""Open-set identification against a dense reference written here: every score, rank and count."""
import json
import math
import re
from fractions import Fraction

import numpy as np
import pytest

from dense import canonical_matrix, canonical_means, canonical_rows
from embedding_files import write_images_file, write_pairs_file
from mfftools.embeddings import open_embeddings
from mfftools.errors import MfftoolsError
from mfftools.evaluation.identification import evaluate_identification, split_counts

NAMES = ["A", "B", "C"]


def dense_split(identity, group, images):
    """(template rows per enrolled label in (group, label) order, search rows) by the rule."""
    first_group = {}
    for row, label in enumerate(identity):
        first_group.setdefault(label, group[row])
    enrolled = []
    for g in sorted(set(first_group.values())):
        labels = sorted(label for label, gg in first_group.items() if gg == g)
        enrolled += labels[0::2]
    enrolled.sort(key=lambda label: (first_group[label], label))
    templates, used = {}, set()
    for label in enrolled:
        rows = [row for row in range(len(identity)) if identity[row] == label][:images]
        templates[label] = rows
        used.update(rows)
    searches = [row for row in range(len(identity)) if row not in used]
    return templates, searches, first_group


def dense_identification(emb, identity, group, targets, rank, ranks, images=1, probes=None,
                         ties_ahead=False, score_map=None):
    """`score_map(scores, search_feats, search_group, template_feats, template_group)`: maps the
    search x template matrix of canonical scores (a calibration), when given."""
    feats = canonical_rows(emb)
    if probes is None:
        templates, searches, first_group = dense_split(identity, group, images)
        search_feats, search_identity, search_group = feats[searches], identity[searches], \
            group[searches]
    else:
        first_group = {}
        for row, label in enumerate(identity):
            first_group.setdefault(label, group[row])
        labels = sorted(first_group, key=lambda label: (first_group[label], label))
        templates = {label: list(np.flatnonzero(identity == label)) for label in labels}
        p_emb, search_identity, search_group = probes
        search_feats = canonical_rows(p_emb)
    labels = list(templates)
    centres = np.stack([canonical_means(feats, np.isin(np.arange(len(feats)), templates[label]))
                        for label in labels])
    scores = canonical_matrix(search_feats, centres)
    template_group = np.array([first_group[label] for label in labels])
    if score_map is not None:
        scores = score_map(scores, search_feats, search_group, centres, template_group)
    column = {label: k for k, label in enumerate(labels)}
    mated = np.array([label in column for label in search_identity])
    n_mated, n_nonmated = int(mated.sum()), int((~mated).sum())
    rank_of, mated_score = [], []
    for s in np.flatnonzero(mated):
        own = column[search_identity[s]]
        others = np.delete(scores[s], own)
        ahead = others >= scores[s, own] if ties_ahead else others > scores[s, own]
        rank_of.append(1 + int(ahead.sum()))
        mated_score.append(scores[s, own])
    rank_of, mated_score = np.array(rank_of), np.array(mated_score)
    best = scores[~mated].max(axis=1)
    best_template = np.array([np.flatnonzero(line == line.max())[0] for line in scores[~mated]])
    results = []
    for target in targets:
        k = math.floor(Fraction(target) * n_nonmated)
        threshold = float(np.sort(best)[::-1][k])
        missed = (rank_of > rank) | (mated_score <= threshold)
        hit = best > threshold
        groups = {}
        for g, name in enumerate(NAMES):
            m = search_group[mated] == g
            u = search_group[~mated] == g
            groups[name] = {
                "fnir": float(missed[m].mean()) if m.any() else None,
                "fpir": float(hit[u].mean()) if u.any() else None,
                "n_mated": int(m.sum()), "n_nonmated": int(u.sum()),
            }
        matrix = np.zeros((3, 3), dtype=int)
        for s in np.flatnonzero(hit):
            matrix[search_group[~mated][s], template_group[best_template[s]]] += 1
        results.append({"target_fpir": target, "threshold": threshold,
                        "fnir": float(missed.mean()), "fpir": float(hit.mean()),
                        "groups": groups, "false_positive_matrix": matrix.tolist(),
                        "missed": np.flatnonzero(missed).tolist(),
                        "false_positives": np.flatnonzero(hit).tolist()})
    cmc = {"all": [float((rank_of <= k).mean()) for k in ranks]}
    for g, name in enumerate(NAMES):
        sel = rank_of[search_group[mated] == g]
        cmc[name] = [float((sel <= k).mean()) for k in ranks] if len(sel) else [None] * len(ranks)
    return {"n_templates": len(labels), "n_mated": n_mated, "n_nonmated": n_nonmated,
            "results": results, "cmc": cmc,
            "searches": {"mated_group": search_group[mated].tolist(),
                         "nonmated_group": search_group[~mated].tolist()}}


def make_data(rng, n_identities=90, dim=16, max_images=5, lattice=False, single=0.2):
    sizes = rng.integers(1, max_images + 1, size=n_identities)
    sizes[rng.random(n_identities) < single] = 1
    identity = np.repeat(rng.permutation(n_identities) * 3 + 7, sizes)
    group = np.repeat(rng.integers(0, 3, size=n_identities), sizes)
    if lattice:
        emb = rng.integers(-1, 2, size=(len(identity), dim)).astype(np.float32)
        emb[~emb.any(axis=1)] = 1
    else:
        centres = rng.standard_normal((n_identities, dim))
        emb = (np.repeat(centres, sizes, axis=0)
               + 0.8 * rng.standard_normal((len(identity), dim))).astype(np.float32)
    order = rng.permutation(len(identity))
    return emb[order], identity[order], group[order]


def run(tmp_path, emb, identity, group, **kw):
    path = write_images_file(tmp_path / "e.h5", emb, identity, group, NAMES)
    return evaluate_identification(open_embeddings(path), progress=False, **kw)


def assert_matches(result, reference):
    for key in ("n_templates", "n_mated", "n_nonmated", "cmc"):
        assert result[key] == reference[key], key
    for ours, theirs in zip(result["results"], reference["results"], strict=True):
        for key in ("target_fpir", "threshold", "fnir", "fpir", "groups",
                    "false_positive_matrix", "missed", "false_positives"):
            assert ours[key] == theirs[key], key
    assert result["searches"] == reference["searches"]


@pytest.mark.parametrize("case", ["random", "ties", "gallery_images_3", "tile_7_bf16"])
def test_matches_dense_reference(tmp_path, rng, device, case):
    emb, identity, group = make_data(rng, lattice=case == "ties", dim=4 if case == "ties" else 16)
    images = 3 if case == "gallery_images_3" else 1
    tile = 7 if case == "tile_7_bf16" else 64
    precision = "bf16" if case == "tile_7_bf16" else "fp32"
    targets, ranks = (0.05, 0.2), (1, 2, 5, 10)
    result = run(tmp_path, emb, identity, group, gallery_images=images, targets=targets, rank=2,
                 ranks=ranks, tile=tile, device=device, precision=precision)
    reference = dense_identification(emb, identity, group, targets, 2, ranks, images=images)
    assert_matches(result, reference)
    assert result["rank"] == 2 and result["ranks"] == list(ranks)


def test_same_results_with_any_tile_and_precision(tmp_path, rng):
    emb, identity, group = make_data(rng, lattice=True, dim=5)
    texts = set()
    for kw in ({"tile": 13, "precision": "fp32"}, {"tile": 500, "precision": "bf16"},
               {"tile": 64, "precision": "fp16"}):
        result = run(tmp_path, emb, identity, group, targets=(0.1,), device="cpu", **kw)
        texts.add(json.dumps({k: v for k, v in result.items() if k != "engine"}))
    assert len(texts) == 1


def test_two_files(tmp_path, rng):
    emb, identity, group = make_data(rng, 60)
    probe_emb, probe_identity, probe_group = make_data(rng, 80)  # labels beyond 60: non-mated
    gallery = write_images_file(tmp_path / "g.h5", emb, identity, group, NAMES)
    probes = write_images_file(tmp_path / "p.h5", probe_emb, probe_identity, probe_group, NAMES)
    result = evaluate_identification(open_embeddings(gallery), open_embeddings(probes),
                                     targets=(0.1,), device="cpu", progress=False,
                                     match_by="label")
    reference = dense_identification(emb, identity, group, (0.1,), 1, (1, 5, 10, 20),
                                     probes=(probe_emb, probe_identity, probe_group))
    assert_matches(result, reference)
    assert result["gallery_images"] is None and result["match_by"] == "label"


def test_two_files_extracted_apart_are_joined_by_name(tmp_path, rng):
    """Gallery: 40 people labelled 0..39; probes: 40 people labelled 0..39 in their own file, of
    whom 20 are in the gallery (by name). By label every search would look mated."""
    emb, identity, group = make_data(rng, 40, single=0)
    people = np.array([f"person{k:03d}" for k in range(80)])
    gallery_ids = np.unique(identity)
    gallery_names = people[np.searchsorted(gallery_ids, identity)]
    probe_emb, probe_identity, probe_group = make_data(rng, 40, single=0)
    probe_people = np.concatenate([people[:20], people[60:80]])  # 20 enrolled, 20 not
    probe_labels = np.searchsorted(np.unique(probe_identity), probe_identity)  # 0..39 again
    probe_names = probe_people[probe_labels]
    gallery = write_images_file(tmp_path / "g.h5", emb, np.searchsorted(gallery_ids, identity),
                                group, NAMES, identity_names=gallery_names)
    probes = write_images_file(tmp_path / "p.h5", probe_emb, probe_labels, probe_group, NAMES,
                               identity_names=probe_names)
    result = evaluate_identification(open_embeddings(gallery), open_embeddings(probes),
                                     targets=(0.1,), device="cpu", progress=False)
    # The reference joins by name: relabel the probes with the gallery's label of each name.
    label_of = {name: k for k, name in enumerate(people)}
    reference = dense_identification(
        emb, np.array([label_of[name] for name in gallery_names]), group, (0.1,), 1,
        (1, 5, 10, 20),
        probes=(probe_emb, np.array([label_of[name] for name in probe_names]), probe_group))
    assert_matches(result, reference)
    assert result["match_by"] == "name"
    assert result["n_mated"] == int(np.isin(probe_names, gallery_names).sum()) > 0
    assert result["n_nonmated"] == int((~np.isin(probe_names, gallery_names)).sum()) > 0


def test_files_without_names_are_joined_only_when_asked(tmp_path, rng):
    emb, identity, group = make_data(rng, 30)
    gallery = write_images_file(tmp_path / "g.h5", emb, identity, group, NAMES)
    names = np.array([f"p{label}" for label in identity])
    probes = write_images_file(tmp_path / "p.h5", emb, identity, group, NAMES,
                               identity_names=names)
    with pytest.raises(MfftoolsError, match=re.escape(
            f"{tmp_path / 'g.h5'} has no identity names (dataset 'identity_name'), so searches "
            "cannot be matched to templates by name;")) as caught:
        evaluate_identification(open_embeddings(gallery), open_embeddings(probes),
                                targets=(0.1,), device="cpu", progress=False)
    assert "--match-by label" in str(caught.value)


def test_a_name_with_two_labels_is_refused(tmp_path, rng):
    emb, identity, group = make_data(rng, 30, single=0)
    names = np.array([f"p{label}" for label in identity], dtype=object)
    names[identity == identity[0]] = "twin"
    names[identity == identity[-1]] = "twin"
    gallery = write_images_file(tmp_path / "g.h5", emb, identity, group, NAMES,
                                identity_names=names)
    with pytest.raises(MfftoolsError, match="identity name 'twin' has two labels"):
        evaluate_identification(open_embeddings(gallery), open_embeddings(gallery),
                                targets=(0.1,), device="cpu", progress=False)


def test_pessimistic_rank_ties_put_tied_templates_ahead(tmp_path, rng):
    emb, identity, group = make_data(rng, lattice=True, dim=3)
    kw = dict(targets=(0.2,), rank=2, ranks=(1, 2, 5), device="cpu")
    optimistic = run(tmp_path, emb, identity, group, **kw)
    pessimistic = run(tmp_path, emb, identity, group, rank_ties="pessimistic", **kw)
    assert_matches(pessimistic, dense_identification(emb, identity, group, (0.2,), 2, (1, 2, 5),
                                                     ties_ahead=True))
    assert pessimistic["cmc"]["all"][0] < optimistic["cmc"]["all"][0]  # the lattice ties often
    assert (pessimistic["rank_ties"], optimistic["rank_ties"]) == ("pessimistic", "optimistic")


def test_a_group_without_non_mated_searches(tmp_path, rng):
    """Group C: one identity, enrolled, with several images: only mated searches."""
    emb, identity, group = make_data(rng, 60)
    group = np.where(group == 2, 0, group)
    lone = np.array([10**6] * 4)
    emb = np.concatenate([emb, rng.standard_normal((4, emb.shape[1])).astype(np.float32)])
    identity, group = np.concatenate([identity, lone]), np.concatenate([group, [2] * 4])
    result = run(tmp_path, emb, identity, group, targets=(0.1,), device="cpu")
    reference = dense_identification(emb, identity, group, (0.1,), 1, (1, 5, 10, 20))
    assert_matches(result, reference)
    stats = result["results"][0]["groups"]["C"]
    assert stats["fpir"] is None and stats["n_nonmated"] == 0 and stats["n_mated"] == 3


@pytest.mark.parametrize("kwargs, message", [
    ({"targets": (1e-6,)}, "cannot be resolved"),
    ({"targets": (1.0,)}, "outside (0, 1)"),
    ({"gallery_images": 0}, "--gallery-images must be at least 1"),
    ({"gallery_images": 50}, "no mated searches"),
    ({"ranks": (0, 5)}, "ranks must be at least 1"),
])
def test_refusals(tmp_path, rng, kwargs, message):
    emb, identity, group = make_data(rng, 40)
    kwargs.setdefault("targets", (0.1,))
    with pytest.raises(MfftoolsError, match=re.escape(message)):
        run(tmp_path, emb, identity, group, device="cpu", **kwargs)


def test_gallery_and_probes_must_agree(tmp_path, rng):
    emb, identity, group = make_data(rng, 30)
    gallery = write_images_file(tmp_path / "g.h5", emb, identity, group, NAMES)
    wide = write_images_file(tmp_path / "w.h5", np.tile(emb, 2), identity, group, NAMES)
    renamed = write_images_file(tmp_path / "r.h5", emb, identity, group, ["A", "B", "D"])
    with pytest.raises(MfftoolsError, match="16-dimensional embeddings but .* has 32"):
        evaluate_identification(open_embeddings(gallery), open_embeddings(wide), progress=False)
    with pytest.raises(MfftoolsError, match="same group names"):
        evaluate_identification(open_embeddings(gallery), open_embeddings(renamed), progress=False)
    pairs = write_pairs_file(tmp_path / "p.h5", emb[:4], np.array([True, False]),
                             np.zeros(2, dtype=np.int64), NAMES)
    with pytest.raises(MfftoolsError, match="'images'-layout"):
        evaluate_identification(open_embeddings(pairs), progress=False)


def test_every_enrolled_search_leaves_no_non_mated(tmp_path, rng):
    emb = rng.standard_normal((6, 8)).astype(np.float32)
    identity, group = np.array([1, 1, 2, 2, 3, 3]), np.array([0, 0, 1, 1, 2, 2])
    with pytest.raises(MfftoolsError, match="no non-mated searches"):
        run(tmp_path, emb, identity, group, device="cpu")


@pytest.mark.parametrize("images", [1, 2])
def test_split_counts_from_the_labels_alone(rng, images):
    identity = rng.integers(0, 30, 200) * 3
    group = rng.integers(0, 3, 200)
    templates, searches, _ = dense_split(identity, group, images)
    mated = sum(identity[row] in templates for row in searches)
    assert split_counts(identity, group, images) == (mated, len(searches) - mated)
