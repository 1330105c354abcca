"""Identity similarity (centroids, intra, inter) against the dense canonical reference."""
import torch
from numpy.testing import assert_allclose

from dense import canonical_rows, dense_similarity
from instance_data import make_data
from mfftools.evaluation import similarity
from mfftools.evaluation.engine.scoring import normalise_rows_
from mfftools.evaluation.identities import build_layout


def test_intra_and_inter_equal_the_reference(rng, device):
    emb, identity, group = make_data(rng, 130, 5, 12)
    emb[identity == identity[0]] = emb[identity == identity[0]][0]  # a tight identity
    layout = build_layout(identity, group, 3)
    rows = normalise_rows_(torch.from_numpy(emb[layout.order].copy())).to(device)
    sims = similarity.identity_similarity(rows, layout, tile=40)
    reference = dense_similarity(canonical_rows(emb), identity)  # identities by label, as ours
    assert_allclose(sims["intra"], reference["intra"], rtol=1e-12)
    assert_allclose(sims["inter"], reference["inter"], rtol=1e-12)


def test_fewer_identities_than_neighbours(rng):
    emb, identity, group = make_data(rng, 7, 3, 8)
    layout = build_layout(identity, group, 3)
    rows = normalise_rows_(torch.from_numpy(emb[layout.order].copy()))
    sims = similarity.identity_similarity(rows, layout, tile=8192)
    assert_allclose(sims["inter"], dense_similarity(canonical_rows(emb), identity)["inter"], rtol=1e-12)
