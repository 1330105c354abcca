from pathlib import Path

import numpy as np
import pytest
import torch

from mfftools.data.ijb_protocol import TemplateList
from mfftools.errors import MfftoolsError
from mfftools.evaluation.engine.scoring import canonical_scores, normalise_rows_
from mfftools.evaluation.template_identification import evaluate_template_identification
from mfftools.evaluation.templates import Templates


def setup(rng, subjects=30, probes_per_subject=3, dim=8):
    n = subjects * (1 + probes_per_subject)
    rows = normalise_rows_(torch.from_numpy(rng.normal(size=(n, dim)).astype(np.float32)))
    ids = np.arange(n) * 2 + 11
    templates = Templates(ids, rows, np.ones(n, np.int64), np.ones(n, np.int64))
    subject = np.r_[np.arange(subjects), np.repeat(np.arange(subjects), probes_per_subject)] + 500
    enrolled = np.arange(subjects)
    lists = [TemplateList(Path(f"ijbc_1N_gallery_G{k + 1}.csv"), ids[enrolled[k::2]],
                          subject[enrolled[k::2]]) for k in range(2)]
    probes = TemplateList(Path("ijbc_1N_probe_mixed.csv"), ids[subjects:], subject[subjects:])
    return templates, lists, probes


def dense(templates, gallery, probes, target, ranks, mapped=None):
    """(threshold, TPIR, CMC, each mated probe's rank, whether each mated probe is missed,
    whether each non-mated probe is a false positive), probes in list order; the probe x
    gallery scores mapped by `mapped(scores, probe rows, gallery rows)` when given."""
    rows = templates.rows
    g = templates.rows_of(gallery.templates)
    p = templates.rows_of(probes.templates)
    gi, pi = np.meshgrid(g, p)
    scores = canonical_scores(rows, rows, torch.from_numpy(pi.reshape(-1)),
                              torch.from_numpy(gi.reshape(-1))).numpy().reshape(len(p), len(g))
    if mapped is not None:
        scores = mapped(scores, pi, gi)
    mated = np.isin(probes.subjects, gallery.subjects)
    best_scores = scores[~mated].max(axis=1)
    best = np.sort(best_scores)[::-1]
    threshold = best[int(np.floor(target * len(best)))]
    mate = np.array([list(gallery.subjects).index(s) for s in probes.subjects[mated]])
    mate_scores = scores[mated][np.arange(mated.sum()), mate]
    rank = (scores[mated] >= mate_scores[:, None]).sum(axis=1)  # ties ahead of the mate
    hit = (rank == 1) & (mate_scores > threshold)
    return (threshold, np.mean(hit), [np.mean(rank <= k) for k in ranks], rank, ~hit,
            best_scores > threshold)


def test_each_gallery_searched_alone_as_a_dense_search(rng):
    templates, galleries, probes = setup(rng)
    ranks = (1, 2, 5)
    group = np.zeros(len(templates), np.int64)
    result = evaluate_template_identification(templates, galleries, probes, group, ["all"],
                                              targets=(0.1, 0.3), ranks=ranks)
    assert list(result["galleries"]) == ["G1", "G2"]
    hits, mated = 0, 0
    for name, gallery in zip(("G1", "G2"), galleries):
        entry = result["galleries"][name]
        assert entry["n_templates"] == 15 and entry["n_mated"] == 45 and entry["n_nonmated"] == 45
        for k, target in enumerate((0.1, 0.3)):
            threshold, tpir, cmc, rank, _, _ = dense(templates, gallery, probes, target, ranks)
            assert entry["results"][k]["threshold"] == threshold
            assert entry["results"][k]["tpir"] == pytest.approx(tpir)
        assert entry["cmc"]["all"] == pytest.approx(cmc)
        hits += np.sum(rank == 1)
        mated += len(rank)
    first = [result["galleries"][name]["results"][0]["tpir"] for name in ("G1", "G2")]
    assert result["mean"]["results"][0]["tpir"] == pytest.approx(np.mean(first))
    assert result["mean"]["cmc"][0] == pytest.approx(hits / mated)


def test_gallery_problems_are_errors(rng):
    templates, galleries, probes = setup(rng)
    group = np.zeros(len(templates), np.int64)
    twice = TemplateList(galleries[0].path, galleries[0].templates,
                         np.full(len(galleries[0].subjects), galleries[0].subjects[0]))
    with pytest.raises(MfftoolsError, match="has 15 templates; a gallery enrols each subject once"):
        evaluate_template_identification(templates, [twice], probes, group, ["all"], (0.1,))
    unknown = TemplateList(galleries[0].path, np.r_[galleries[0].templates, 4],
                           np.r_[galleries[0].subjects, 9999])
    with pytest.raises(MfftoolsError, match="template 4 has no images.*--skip-missing"):
        evaluate_template_identification(templates, [unknown], probes, group, ["all"], (0.1,))
    missing = set()
    result = evaluate_template_identification(templates, [unknown], probes, group, ["all"],
                                              (0.1,), skip_missing=True, missing=missing)
    assert missing == {4} and result["galleries"]["G1"]["n_templates"] == 15
    with pytest.raises(MfftoolsError, match="two galleries are named G1"):
        evaluate_template_identification(templates, [galleries[0]] * 2, probes, group, ["all"],
                                         (0.1,))
