"""Degenerate embeddings, found before any protocol computes on them.

Embeddings that barely differ (a wrong input normalisation can make every row nearly the same:
cosines of 0.9999993 between any two faces) give rates and fairness measures that mean nothing,
and a fairness measure then reads as parity: every group fails alike. Each evaluation checks its
canonical rows (or, for the pair protocol, its pair scores) first:

    non-finite      a NaN or Inf after normalisation
    near-identical  the median impostor score is at least NEAR_IDENTICAL (rows within ~2.6 deg)
    no spread       the impostor scores' standard deviation is below MIN_SPREAD
    constant        dimensions with one value over all rows (a warning only: a dead dimension
                    carries nothing, but does not distort what the others give)

Impostor scores are those of a fixed sample of impostor pairs (at most SAMPLE_PAIRS, drawn by a
local seeded generator, so the check is deterministic and O(sample x D)). A degenerate finding
is an error unless the caller allows it (`--allow-degenerate`); then it is logged as a warning
and returned for the results file (`degenerate`), which the commands read so that they never
print the fairness of such embeddings as parity.
"""
import logging

import numpy as np
import torch

from mfftools.errors import MfftoolsError
from mfftools.evaluation.engine.scoring import normalise_rows_

logger = logging.getLogger(__name__)

NEAR_IDENTICAL = 0.999
MIN_SPREAD = 1e-3
SAMPLE_PAIRS = 20000
# Rows an identification file is checked on: evenly spread windows of the file.
SAMPLE_WINDOWS, WINDOW_ROWS = 16, 256
_SEED = 20240611


def check_rows(rows, identity, where, allow_degenerate=False):
    """Check canonical rows (a float32 tensor [N, D], any device) whose identity labels are
    `identity` (numpy [N]); returns the findings (empty when the rows are sound)."""
    findings = []
    if not bool(torch.isfinite(rows).all()):
        findings.append("NaN or Inf after normalisation")
    else:
        findings += _impostor_findings(_sampled_impostor_scores(rows, identity))
    constant = int((rows.amax(dim=0) == rows.amin(dim=0)).sum())
    if constant:
        logger.warning("%s: %d of the %d embedding dimensions are constant over all %d rows "
                       "(they carry nothing)", where, constant, rows.shape[1], rows.shape[0])
    return _judge(findings, where, allow_degenerate)


def check_embeddings(embeddings, where=None, allow_degenerate=False):
    """check_rows on a sample of an images-layout file's rows: evenly spread windows (all rows
    of a small file), made canonical."""
    n_rows = embeddings.n_rows
    if n_rows <= SAMPLE_WINDOWS * WINDOW_ROWS:
        starts = [0]
        window = n_rows
    else:
        starts = np.linspace(0, n_rows - WINDOW_ROWS, SAMPLE_WINDOWS).astype(np.int64)
        window = WINDOW_ROWS
    rows = np.concatenate([embeddings.read(int(s), int(s) + window) for s in starts])
    identity = np.concatenate([embeddings.identity[s : s + window] for s in starts])
    return check_rows(normalise_rows_(torch.from_numpy(rows)), identity,
                      where or str(embeddings.path), allow_degenerate)


def check_pair_scores(dist, issame, where, allow_degenerate=False):
    """The pair protocol's check on its pair distances (squared L2 of unit rows): impostor
    scores are 1 - dist / 2."""
    dist = np.asarray(dist, dtype=np.float64)
    if not np.isfinite(dist).all():
        findings = ["NaN or Inf after normalisation"]
    else:
        impostor = 1.0 - dist[~np.asarray(issame, dtype=bool)] / 2.0
        if len(impostor) > SAMPLE_PAIRS:
            impostor = np.random.default_rng(_SEED).choice(impostor, SAMPLE_PAIRS, replace=False)
        findings = _impostor_findings(impostor)
    return _judge(findings, where, allow_degenerate)


def _sampled_impostor_scores(rows, identity):
    """Scores (float64) of up to SAMPLE_PAIRS random pairs of rows of different identities."""
    rng = np.random.default_rng(_SEED)
    first = rng.integers(0, len(identity), SAMPLE_PAIRS)
    second = rng.integers(0, len(identity), SAMPLE_PAIRS)
    impostor = np.asarray(identity)[first] != np.asarray(identity)[second]
    first, second = (torch.from_numpy(index[impostor]).to(rows.device)
                     for index in (first, second))
    scores = (rows[first].double() * rows[second].double()).sum(dim=1)
    return scores.cpu().numpy()


def _impostor_findings(scores):
    if len(scores) < 2:
        return []
    findings = []
    median, spread = float(np.median(scores)), float(np.std(scores))
    if median >= NEAR_IDENTICAL:
        findings.append(f"near-identical rows (median impostor score {median:.7f})")
    if spread < MIN_SPREAD:
        findings.append(f"no spread of impostor scores (standard deviation {spread:.2e})")
    return findings


def _judge(findings, where, allow_degenerate):
    if not findings:
        return []
    what = "; ".join(findings)
    if not allow_degenerate:
        raise MfftoolsError(
            f"{where}: degenerate embeddings: {what}. Every rate computed on them would be "
            "meaningless, and a fairness measure would read as parity; check the model and its "
            "input normalisation (--input-mean/--input-std), or give --allow-degenerate to "
            "evaluate anyway"
        )
    logger.warning("%s: DEGENERATE EMBEDDINGS (%s): the results mean little, and their fairness "
                   "measures are not parity", where, what)
    return findings


def describe(result):
    """`degenerate embeddings (...)`, or '' for sound ones (for lists of results)."""
    findings = result.get("degenerate")
    return f"degenerate embeddings ({'; '.join(findings)})" if findings else ""
