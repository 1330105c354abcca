"""What extraction left out reaches every results file, the console and the report; dropped
pairs stop the pair protocol's contiguous folds unless allowed."""
import logging

import numpy as np
import pytest
from click.testing import CliRunner

from embedding_files import write_images_file, write_pairs_file
from mfftools.cli import main
from mfftools.embeddings import open_embeddings
from mfftools.errors import MfftoolsError
from mfftools.evaluation.identification import evaluate_identification
from mfftools.evaluation.instance import evaluate_instance
from mfftools.evaluation.pair import evaluate_pairs
from mfftools.files import write_results
from mfftools.reporting.build import write_report

GROUPS = ["A", "B"]


def _images_file(path, rng, first_identity=0, **attrs):
    identity = np.repeat(np.arange(40), 3)
    rows = rng.normal(size=(40, 16))[identity] + 0.5 * rng.normal(size=(120, 16))
    return write_images_file(path, rows.astype(np.float32), identity + first_identity,
                             identity % 2, GROUPS, **attrs)


def _pairs_file(path, rng, fold=None, **attrs):
    n_pairs = 200
    issame = np.arange(n_pairs) % 2 == 0
    first = rng.normal(size=(n_pairs, 16))
    second = np.where(issame[:, None], first + 0.5 * rng.normal(size=(n_pairs, 16)),
                      rng.normal(size=(n_pairs, 16)))
    rows = np.stack([first, second], axis=1).reshape(-1, 16).astype(np.float32)
    path = write_pairs_file(path, rows, issame, np.arange(n_pairs) // 2 % 2, GROUPS, **attrs)
    if fold is not None:
        import h5py

        with h5py.File(path, "r+") as handle:
            handle["fold"] = fold
    return path


def test_every_protocol_carries_the_counts(tmp_path, rng, caplog):
    caplog.set_level(logging.WARNING, logger="mfftools.evaluation.skipped")
    images = open_embeddings(_images_file(tmp_path / "i.h5", rng, n_skipped_images=2))
    instance = evaluate_instance(images, targets=(1e-2,), device="cpu", progress=False)
    assert (instance["n_skipped_images"], instance["n_dropped_pairs"]) == (2, None)
    assert "2 bad images were left out at extraction" in caplog.text
    ident = evaluate_identification(images, targets=(0.1,), device="cpu", progress=False)
    assert (ident["n_skipped_images"], ident["n_dropped_pairs"]) == (2, None)
    two = evaluate_identification(images, open_embeddings(
        _images_file(tmp_path / "p.h5", rng, first_identity=20, n_skipped_images=3)), targets=(0.5,),
        device="cpu", progress=False, match_by="label")
    assert two["n_skipped_images"] == 5  # gallery's and probes'
    pairs = open_embeddings(_pairs_file(tmp_path / "pairs.h5", rng, n_skipped_images=1,
                                        n_dropped_pairs=3, fold=np.arange(200) % 5))
    result = evaluate_pairs(pairs)
    assert (result["n_skipped_images"], result["n_dropped_pairs"]) == (1, 3)
    assert "(3 pairs dropped with them)" in caplog.text


def test_a_file_that_records_nothing_gives_null(tmp_path, rng, caplog):
    caplog.set_level(logging.WARNING)
    result = evaluate_pairs(open_embeddings(_pairs_file(tmp_path / "p.h5", rng)))
    assert result["n_skipped_images"] is None and result["n_dropped_pairs"] is None
    clean = evaluate_pairs(open_embeddings(
        _pairs_file(tmp_path / "c.h5", rng, n_skipped_images=0, n_dropped_pairs=0)))
    assert (clean["n_skipped_images"], clean["n_dropped_pairs"]) == (0, 0)
    assert "left out" not in caplog.text
    older = evaluate_pairs(open_embeddings(  # as earlier versions named the pair count
        _pairs_file(tmp_path / "o.h5", rng, n_skipped_images=0, n_skipped_pairs=0)))
    assert older["n_dropped_pairs"] == 0


def test_dropped_pairs_refuse_contiguous_folds_unless_allowed(tmp_path, rng):
    path = _pairs_file(tmp_path / "p.h5", rng, n_skipped_images=1, n_dropped_pairs=2)
    with pytest.raises(MfftoolsError) as error:
        evaluate_pairs(open_embeddings(path))
    assert str(error.value) == (
        f"{path}: 2 pairs were dropped at extraction (bad images), so the 10 contiguous folds "
        "cut from the remaining pairs are not the benchmark's folds; give --allow-dropped-pairs "
        "to evaluate them anyway, or fix the images and extract again without "
        "--skip-bad-images")
    allowed = evaluate_pairs(open_embeddings(path), allow_dropped_pairs=True)
    assert allowed["fold_assignment"] == "contiguous" and allowed["n_dropped_pairs"] == 2
    cli = CliRunner()
    refused = cli.invoke(main, ["pair-eval", str(path)])
    assert refused.exit_code == 1 and "--allow-dropped-pairs" in refused.output
    json_path = tmp_path / "r.json"
    ran = cli.invoke(main, ["pair-eval", str(path), "--allow-dropped-pairs", "--json",
                            str(json_path)])
    assert ran.exit_code == 0, ran.output
    assert '"n_dropped_pairs": 2' in json_path.read_text()


def test_the_report_lists_what_was_left_out(tmp_path, rng):
    path = _pairs_file(tmp_path / "p.h5", rng, n_skipped_images=1, n_dropped_pairs=3,
                       fold=np.arange(200) % 5)
    results = write_results(evaluate_pairs(open_embeddings(path)), tmp_path / "pair.json")
    report = write_report([results], tmp_path / "report", bootstrap=0)
    line = f"{results} (1 bad image skipped, 3 pairs dropped at extraction)"
    assert line in report.markdown.read_text() and line in report.html.read_text()
