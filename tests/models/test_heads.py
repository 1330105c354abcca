"""Margin heads against logits computed by hand, element by element."""
import math

import numpy as np
import pytest
import torch

from mfftools.errors import MfftoolsError
from mfftools.models.heads import (
    ArcFaceHead,
    CosFaceHead,
    MixFairHead,
    build_head,
    cifp_margin,
    mixfair_diff,
)


def _unit(vector):
    vector = np.asarray(vector, dtype=np.float64)
    return vector / np.linalg.norm(vector)


def _cosines(features, weight):
    return np.array([[_unit(f) @ _unit(w) for w in weight] for f in features])


def _head(cls, features_dim, weight, **kwargs):
    head = cls(features_dim, len(weight), **kwargs)
    with torch.no_grad():
        head.weight.copy_(torch.tensor(weight, dtype=torch.float32))
    return head


def _cifp_reference(cosine, labels, m):
    """Loop form of the CIFP margin."""
    batch, classes = cosine.shape
    negatives = [(cosine[i, j], i, j) for i in range(batch) for j in range(classes) if j != labels[i]]
    top = sorted(negatives, key=lambda item: -item[0])[:batch]
    margin = np.zeros(batch)
    for i in range(batch):
        kept = [value for value, row, _ in top if row == i and value < cosine[i, labels[i]] - m]
        margin[i] = np.mean(np.square(kept)) if kept else 0.0
    return margin


FEATURES = [[1.0, 0.0], [0.6, 0.8], [-0.3, 2.0]]
WEIGHT = [[1.0, 1.0], [0.0, 2.0], [-1.0, 0.2], [0.5, -1.0]]
LABELS = [0, 1, 3]


def test_cosface_logits_by_hand():
    head = _head(CosFaceHead, 2, WEIGHT, s=64.0, m=0.35)
    logits = head(torch.tensor(FEATURES), torch.tensor(LABELS)).detach().numpy()
    cosine = _cosines(FEATURES, WEIGHT)
    expected = 64.0 * cosine
    for i, label in enumerate(LABELS):
        expected[i, label] = 64.0 * (cosine[i, label] - 0.35)
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-4)
    # Spot check one value fully by hand: feature [1,0], class 0 weight [1,1] -> cos = 1/sqrt(2).
    assert logits[0, 0] == pytest.approx(64.0 * (1 / math.sqrt(2) - 0.35), abs=1e-4)


def test_arcface_logits_by_hand_including_fallback():
    m = 0.5
    # The third sample's target cosine is close to -1, where theta + m passes pi: fallback branch.
    features = FEATURES[:2] + [[0.5, -1.0]]
    labels = [0, 1, 2]
    weight = [[1.0, 1.0], [0.0, 2.0], [-0.5, 1.01]]
    head = _head(ArcFaceHead, 2, weight, s=64.0, m=m)
    logits = head(torch.tensor(features), torch.tensor(labels)).detach().numpy()
    cosine = _cosines(features, weight)
    expected = 64.0 * cosine
    for i, label in enumerate(labels):
        c = cosine[i, label]
        if c > math.cos(math.pi - m):
            expected[i, label] = 64.0 * math.cos(math.acos(c) + m)
        else:
            expected[i, label] = 64.0 * (c - math.sin(m) * m)
    assert cosine[2, 2] < math.cos(math.pi - m)
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-4)


def test_cifp_margin_matches_loop_reference_on_random_data(rng):
    for trial in range(20):
        batch, classes = int(rng.integers(1, 7)), int(rng.integers(2, 9))
        cosine = rng.uniform(-1, 1, size=(batch, classes))
        labels = rng.integers(0, classes, size=batch)
        if trial % 2:
            # Push positives up so that the "below positive minus m" test keeps many negatives.
            cosine[np.arange(batch), labels] = 0.99
        got = cifp_margin(torch.tensor(cosine), torch.tensor(labels), 0.35).numpy()[:, 0]
        np.testing.assert_allclose(got, _cifp_reference(cosine, labels, 0.35), rtol=1e-12)


def test_cifp_margin_by_hand():
    # Batch of 2, so the 2 largest negatives overall count: 0.5 (row 0) and 0.4 (row 1).
    cosine = np.array([[0.9, 0.5, 0.1], [0.4, 0.3, 0.6]])
    labels = np.array([0, 2])
    got = cifp_margin(torch.tensor(cosine), torch.tensor(labels), 0.35).numpy()[:, 0]
    # Row 0: 0.5 < 0.9 - 0.35 -> kept, margin 0.25. Row 1: 0.4 < 0.6 - 0.35 is false -> 0.
    np.testing.assert_allclose(got, [0.25, 0.0])


def test_cifp_single_class_is_zero():
    got = cifp_margin(torch.ones(3, 1), torch.zeros(3, dtype=torch.long), 0.35)
    assert got.shape == (3, 1) and not got.any()


def test_mixfair_logits_by_hand():
    head = _head(MixFairHead, 2, WEIGHT, s=64.0, m=0.35, cifp=True)
    diff = np.array([0.1, -0.2, 0.05])
    logits = head(torch.tensor(FEATURES), torch.tensor(LABELS), torch.tensor(diff)[:, None])
    cosine = _cosines(FEATURES, WEIGHT)
    cifp = _cifp_reference(cosine, np.array(LABELS), 0.35)
    expected = 64.0 * cosine
    for i, label in enumerate(LABELS):
        expected[i, label] = 64.0 * (cosine[i, label] - (0.35 + diff[i] + cifp[i]))
    np.testing.assert_allclose(logits.detach().numpy(), expected, rtol=1e-5, atol=1e-4)

    no_cifp = _head(MixFairHead, 2, WEIGHT, s=64.0, m=0.35, cifp=False)
    logits = no_cifp(torch.tensor(FEATURES), torch.tensor(LABELS), torch.tensor(diff)[:, None])
    for i, label in enumerate(LABELS):
        expected[i, label] = 64.0 * (cosine[i, label] - (0.35 + diff[i]))
    np.testing.assert_allclose(logits.detach().numpy(), expected, rtol=1e-5, atol=1e-4)


def test_mixfair_diff_matches_loop_reference(rng):
    trunk = torch.tensor(rng.normal(size=(5, 6)), dtype=torch.float64)
    projection = torch.tensor(rng.normal(size=(6, 3)), dtype=torch.float64)
    permutation = torch.tensor([3, 0, 4, 1, 2])

    def embed(x):
        return x @ projection

    features = torch.nn.functional.normalize(embed(trunk))
    got = mixfair_diff(embed, trunk, features.float(), permutation).numpy()[:, 0]
    for i in range(5):
        j = int(permutation[i])
        mix = _unit((0.5 * trunk[i] + 0.5 * trunk[j]).numpy() @ projection.numpy())
        expected = (mix @ features[j].numpy()) ** 2 - (mix @ features[i].numpy()) ** 2
        assert got[i] == pytest.approx(expected, abs=1e-6)


def test_build_head_names_and_defaults():
    assert isinstance(build_head("cosface", 4, 3), CosFaceHead)
    assert build_head("arcface", 4, 3).m == 0.5
    mixfair = build_head("mixfair", 4, 3, m=0.2, cifp=False)
    assert isinstance(mixfair, MixFairHead) and mixfair.m == 0.2 and not mixfair.use_cifp
    with pytest.raises(MfftoolsError, match="unknown head 'softmax'"):
        build_head("softmax", 4, 3)
