"""The report of result files written by the evaluations themselves, not by hand."""
import json

import numpy as np

from embedding_files import write_images_file, write_pairs_file
from mfftools.embeddings import open_embeddings
from mfftools.evaluation.instance import evaluate_instance
from mfftools.files import write_results
from mfftools.evaluation.pair import evaluate_pairs
from mfftools.report.build import write_report
from mfftools.report.results import load_results

NAMES = ["African", "Asian", "Caucasian", "Indian"]


def _instance_file(tmp_path, rng):
    identity = np.repeat(np.arange(80), 4)
    group = identity % 4
    centres = rng.normal(size=(80, 32))
    noise = rng.normal(size=(len(identity), 32)) * (0.6 + 0.6 * (group == 0))[:, None]
    path = write_images_file(tmp_path / "inst.h5", (centres[identity] + noise).astype(np.float32),
                             identity, group, NAMES, model="mixfair-r18")
    result = evaluate_instance(open_embeddings(path), targets=(1e-2,),
                               methods=("bisection", "exact"), device="cpu", progress=False)
    result["model"] = "mixfair-r18"
    return write_results(result, tmp_path / "inst.json")


def _pair_file(tmp_path, rng):
    pairs = 4 * 40
    pair_group = np.repeat(np.arange(4), 40)
    issame = np.tile([True, False], pairs // 2)
    first = rng.normal(size=(pairs, 32))
    noise = rng.normal(size=(pairs, 32)) * (0.8 + 0.8 * (pair_group == 0))[:, None]
    second = np.where(issame[:, None], first + noise, rng.normal(size=(pairs, 32)))
    rows = np.empty((2 * pairs, 32), np.float32)
    rows[0::2], rows[1::2] = first, second
    path = write_pairs_file(tmp_path / "pairs.h5", rows, issame, pair_group, NAMES)
    result = evaluate_pairs(open_embeddings(path, layout="pairs"))
    result["model"] = "mixfair-r18"
    out = tmp_path / "pair.json"
    out.write_text(json.dumps(result))
    return out


def test_report_of_evaluation_outputs(tmp_path, rng):
    paths = [_instance_file(tmp_path, rng), _pair_file(tmp_path, rng)]
    files = write_report(paths, tmp_path / "report", bootstrap=100, seed=0)
    # every extra the evaluations write is used: no figure or interval left out
    assert files.report.notes == []
    assert len(files.figures) == 2 + 3 * 2 + 2  # pair: 2; per operating point: 3; similarity, ROC

    instance, pair = (f.data for f in load_results(paths))
    markdown = files.markdown.read_text()
    for name in NAMES:
        assert f"| {name} | {100 * pair['groups'][name]['accuracy']:.2f} |" in markdown
    bisection = instance["results"][0]
    assert f"| Threshold | {bisection['threshold']:.6f} |" in markdown
    assert f"| Instance TPR mean | {bisection['instance']['tpr_mean']:.4f} | [" in markdown
    assert f"| FDR | {bisection['fairness']['fdr']:.4f} |" in markdown
