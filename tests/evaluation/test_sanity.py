"""Degenerate embeddings are found before any protocol computes on them, refused unless
allowed, never shown as parity; sound embeddings never set the check off."""
import logging

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from embedding_files import write_images_file, write_pairs_file
from mfftools.cli import main
from mfftools.embeddings import open_embeddings
from mfftools.errors import MfftoolsError
from mfftools.evaluation import sanity
from mfftools.evaluation.engine.scoring import normalise_rows_
from mfftools.evaluation.identification import evaluate_identification
from mfftools.evaluation.instance import evaluate_instance
from mfftools.evaluation.pair import evaluate_pairs

GROUPS = ["A", "B"]


def _canonical(rows):
    return normalise_rows_(torch.from_numpy(np.asarray(rows, dtype=np.float32)))


def _near_identical(rng, n=120, dim=32, noise=1e-4):
    """What a 0-255 normalisation read as [0, 1] does: one large shared vector, tiny variation."""
    return np.full(dim, 3.0) + noise * rng.normal(size=(n, dim))


def _images(path, rows):
    identity = np.arange(len(rows)) // 3
    return write_images_file(path, rows.astype(np.float32), identity, identity % 2, GROUPS)


def test_near_identical_rows_are_refused_naming_what_was_found(rng):
    rows = _canonical(_near_identical(rng))
    identity = np.arange(120) // 3
    with pytest.raises(MfftoolsError) as error:
        sanity.check_rows(rows, identity, "e.h5")
    message = str(error.value)
    assert message.startswith("e.h5: degenerate embeddings: near-identical rows (median impostor "
                              "score 1.0000000); no spread of impostor scores (standard deviation")
    assert message.endswith("or give --allow-degenerate to evaluate anyway")


def test_a_tiny_spread_alone_is_degenerate(rng):
    # a simplex: u + e_i for 120 basis vectors e_i, so every two rows score 0.5 (plus noise)
    rows = np.eye(130)[:120] + np.eye(130)[129] + 1e-5 * rng.normal(size=(120, 130))
    findings = sanity.check_rows(_canonical(rows), np.arange(120) // 3, "x",
                                 allow_degenerate=True)
    assert len(findings) == 1 and findings[0].startswith("no spread of impostor scores")


def test_non_finite_rows_are_degenerate():
    rows = torch.ones(10, 4)
    rows[3, 1] = float("nan")
    assert sanity.check_rows(rows, np.arange(10), "x", allow_degenerate=True) == [
        "NaN or Inf after normalisation"]


def test_constant_dimensions_are_a_warning_only(rng, caplog):
    rows = rng.normal(size=(60, 16))
    rows[:, 5] = 0.0
    caplog.set_level(logging.WARNING, logger="mfftools.evaluation.sanity")
    assert sanity.check_rows(_canonical(rows), np.arange(60) // 2, "e.h5") == []
    assert "e.h5: 1 of the 16 embedding dimensions are constant over all 60 rows" in caplog.text


@pytest.mark.parametrize("dim,dtype", [(4, np.float32), (16, np.float16), (128, np.float32),
                                       (512, np.float16)])
def test_sound_embeddings_never_set_it_off(dim, dtype):
    """Random data of every kind the tests use, and a model-like mix of tight identities and a
    shared direction: 200 data sets, none flagged."""
    flagged = 0
    for seed in range(50):
        rng = np.random.default_rng(seed)
        n_ids = int(rng.integers(2, 60))
        identity = np.repeat(np.arange(n_ids), rng.integers(1, 5, n_ids))
        centres = rng.normal(size=(n_ids, dim)) + rng.uniform(0, 2) * np.ones(dim)
        rows = (centres[identity] + rng.uniform(0.05, 2) * rng.normal(size=(len(identity), dim)))
        flagged += bool(sanity.check_rows(_canonical(rows.astype(dtype)), identity, "x",
                                          allow_degenerate=True))
    assert flagged == 0


def test_every_protocol_refuses_then_allows_and_records(tmp_path, rng):
    images = open_embeddings(_images(tmp_path / "i.h5", _near_identical(rng)))
    for evaluate in (
        lambda **kw: evaluate_instance(images, targets=(1e-2,), device="cpu", progress=False,
                                       **kw),
        lambda **kw: evaluate_identification(images, targets=(0.1,), device="cpu",
                                             progress=False, **kw),
    ):
        with pytest.raises(MfftoolsError, match="degenerate embeddings: near-identical rows"):
            evaluate()
        assert evaluate(allow_degenerate=True)["degenerate"][0].startswith("near-identical")
    issame = np.arange(100) % 2 == 0
    pairs = open_embeddings(write_pairs_file(
        tmp_path / "p.h5", _near_identical(rng, n=200).astype(np.float32), issame,
        np.arange(100) // 2 % 2, GROUPS))
    with pytest.raises(MfftoolsError, match="degenerate embeddings"):
        evaluate_pairs(pairs)
    assert evaluate_pairs(pairs, allow_degenerate=True)["degenerate"]
    sound = open_embeddings(_images(tmp_path / "s.h5", rng.normal(size=(120, 32))))
    assert evaluate_instance(sound, targets=(1e-2,), device="cpu",
                             progress=False)["degenerate"] == []


def test_a_large_file_is_checked_on_spread_windows(tmp_path, rng):
    rows = rng.normal(size=(6000, 8))
    rows[2000:2300] = 3.0 + 1e-5 * rng.normal(size=(300, 8))  # a collapsed stretch: not all
    embeddings = open_embeddings(_images(tmp_path / "big.h5", rows))
    assert sanity.check_embeddings(embeddings) == []
    collapsed = open_embeddings(_images(tmp_path / "c.h5", _near_identical(rng, n=6000, dim=8)))
    with pytest.raises(MfftoolsError, match="near-identical"):
        sanity.check_embeddings(collapsed)


def test_the_commands_refuse_or_print_no_parity(tmp_path, rng):
    path = _images(tmp_path / "i.h5", _near_identical(rng))
    runner = CliRunner()
    refused = runner.invoke(main, ["inst-eval", str(path), "--fpr", "1e-2", "--device", "cpu"])
    assert refused.exit_code == 1 and "--allow-degenerate" in refused.output
    allowed = runner.invoke(main, ["inst-eval", str(path), "--fpr", "1e-2", "--device", "cpu",
                                   "--allow-degenerate"])
    assert allowed.exit_code == 0, allowed.output
    assert "fairness: not shown: degenerate embeddings (near-identical rows" in allowed.output
    assert "fdr" not in allowed.output
    ident = runner.invoke(main, ["ident-eval", str(path), "--fpir", "0.1", "--device", "cpu",
                                 "--allow-degenerate"])
    assert ident.exit_code == 0, ident.output
    assert "max/geomean: not shown: degenerate embeddings" in ident.output
    issame = np.arange(100) % 2 == 0
    pairs = write_pairs_file(tmp_path / "p.h5", _near_identical(rng, n=200).astype(np.float32),
                             issame, np.arange(100) // 2 % 2, GROUPS)
    table = runner.invoke(main, ["pair-eval", str(pairs), "--allow-degenerate"])
    assert table.exit_code == 0, table.output
    assert "STD and SER not shown: degenerate embeddings" in table.output
