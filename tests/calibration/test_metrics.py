"""FairCal's measures against direct computations from their definitions."""
import numpy as np
import pytest

import calibration_reference as reference
from mfftools.calibration.metrics import (
    auroc,
    average,
    brier,
    ece,
    evaluate,
    ks,
    spread,
    summary,
)
from mfftools.calibration.methods import Applied


def _auroc_pairwise(scores, issame):
    genuine, impostor = scores[issame], scores[~issame]
    wins = (genuine[:, None] > impostor[None, :]).sum() + 0.5 * (
        genuine[:, None] == impostor[None, :]).sum()
    return wins / (len(genuine) * len(impostor))


@pytest.mark.parametrize("ties", [False, True])
def test_auroc_counts_ties_as_one_half(rng, ties):
    scores = rng.normal(size=300)
    issame = rng.random(300) < 0.4
    scores[issame] += 0.7
    if ties:
        scores = np.round(scores, 1)
    assert auroc(scores, issame) == pytest.approx(_auroc_pairwise(scores, issame), abs=1e-12)
    assert auroc(scores, np.ones(300, bool)) is None


def _ks_reference(confidence, issame):
    """max over thresholds c of |sum of p - genuine| / n over the pairs with p <= c."""
    n = len(confidence)
    return max(abs(confidence[confidence <= c].sum() - issame[confidence <= c].sum()) / n
               for c in np.unique(confidence))


def _ece_reference(confidence, issame, n_bins):
    order = np.argsort(confidence, kind="stable")
    values, labels = confidence[order], issame[order].astype(float)
    n = len(values)
    cuts = [int(np.floor(j * (n - 1) / n_bins)) + 1 for j in range(1, n_bins)]
    cuts = sorted({k for k in cuts if 0 < k < n and values[k - 1] < values[k]})
    bounds = [0] + cuts + [n]
    return sum((b - a) / n * abs(values[a:b].mean() - labels[a:b].mean())
               for a, b in zip(bounds[:-1], bounds[1:]))


@pytest.mark.parametrize("ties", [False, True])
def test_ks_ece_and_brier(rng, ties):
    confidence = rng.random(200)
    issame = rng.random(200) < confidence ** 1.5
    if ties:
        confidence = np.round(confidence, 1)
    assert ks(confidence, issame) == pytest.approx(_ks_reference(confidence, issame), abs=1e-12)
    assert ece(confidence, issame, 10) == pytest.approx(_ece_reference(confidence, issame, 10),
                                                        abs=1e-12)
    assert brier(confidence, issame) == pytest.approx(
        np.mean([(p - y) ** 2 for p, y in zip(confidence, issame)]), abs=1e-12)


def test_spread_is_faircals_aad_mad_std():
    values = [0.001, 0.004, None, 0.002]
    found = spread(values)
    defined = np.array([0.001, 0.004, 0.002])
    assert found["aad"] == pytest.approx(np.mean(np.abs(defined - defined.mean())))
    assert found["mad"] == pytest.approx(np.max(np.abs(defined - defined.mean())))
    assert found["std"] == pytest.approx(np.std(defined))
    assert found["max_geomean"] == pytest.approx(0.004 / np.exp(np.mean(np.log(defined))))
    assert spread([None, None])["aad"] is None
    assert summary([0.5, None, 0.1])["mean"] == pytest.approx(0.3)


def test_evaluate_at_one_global_threshold(rng):
    n_images = 60
    image_group = np.repeat([0, 1, 2], 20)
    index = rng.integers(0, n_images, (800, 2))
    issame = rng.random(800) < 0.3
    group_a, group_b = image_group[index[:, 0]], image_group[index[:, 1]]
    issame[(group_a == 2) & (group_b == 2)] = True  # group C: no same-group impostors
    decision = np.round(rng.normal(size=800) + issame + 0.3 * group_a, 2)  # ties
    confidence = 1 / (1 + np.exp(-decision))
    applied = Applied(confidence, decision, np.zeros(800, bool))
    names = ["A", "B", "C"]
    found = evaluate(applied, issame, image_group, index, names, (0.01, 0.1), 10)
    assert found["auroc"] == pytest.approx(_auroc_pairwise(decision, issame), abs=1e-12)
    for target in (0.01, 0.1):
        key = format(target, "g")
        threshold = reference.threshold(decision[~issame], target)
        assert found["threshold"][key] == threshold
        assert found["tpr_at_fpr"][key] == pytest.approx(np.mean(decision[issame] > threshold))
        rates = []
        for g, name in enumerate(names):
            chosen = (group_a == g) & (group_b == g) & ~issame
            rate = np.mean(decision[chosen] > threshold) if chosen.any() else None
            assert found["groups"][name]["fpr"][key] == (
                None if rate is None else pytest.approx(rate))
            rates.append(rate)
        assert found["groups"]["C"]["fpr"][key] is None  # no same-group impostors: undefined
        assert found["fpr_spread"][key] == pytest.approx(spread(rates))
    for g, name in enumerate(names):
        chosen = (group_a == g) & (group_b == g)
        assert found["groups"][name]["ks"] == pytest.approx(ks(confidence[chosen],
                                                                issame[chosen]))
        assert found["groups"][name]["ece"] == pytest.approx(
            _ece_reference(confidence[chosen], issame[chosen], 10))
    assert found["calibration"]["brier"]["mean"] == pytest.approx(
        np.mean([found["groups"][name]["brier"] for name in names]))


def test_average_over_folds_leaves_out_undefined_values():
    folds = [{"a": 1.0, "b": {"c": None, "d": 2.0}}, {"a": 3.0, "b": {"c": None, "d": None}}]
    assert average(folds) == {"a": 2.0, "b": {"c": None, "d": 2.0}}
