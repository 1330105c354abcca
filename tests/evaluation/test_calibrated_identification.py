"""1:N identification on calibrated scores against the dense reference of test_identification.py,
whose search x template matrix is mapped by the calibration: every best template, rank, count
and rate equal, for every tile size and screening precision, on random and tied data."""
import numpy as np
import pytest

from mfftools.calibration.kmeans import assign
from mfftools.calibration.methods import PairKeys, Settings, apply_method
from mfftools.calibration.pipeline import fit_calibration
from mfftools.calibration.protocols import group_keys
from mfftools.data.synthetic_embeddings import biased_pairs, write_biased_pairs
from mfftools.embeddings import open_embeddings
from mfftools.pair_data import read_pair_set
from test_identification import NAMES, assert_matches, dense_identification, make_data, run


def _calibration(tmp_path, method, dim, calibrator="beta"):
    pairs = biased_pairs(group_names=NAMES, identities_per_group=20, images_per_identity=4,
                         pairs_per_group=500, dim=dim, bias=0.2, seed=1)
    path = write_biased_pairs(tmp_path / f"cal_{method}.h5", pairs)
    return fit_calibration(read_pair_set(open_embeddings(path)), method,
                           Settings(clusters=4, calibrator=calibrator, fit_fpr=0.01))


def _mapper(calibration):
    def mapped(scores, search_feats, search_group, template_feats, template_group):
        if calibration.method in ("faircal", "fsn"):
            left = assign(search_feats, calibration.centroids)
            right = assign(template_feats, calibration.centroids)
        else:
            left = group_keys(calibration, NAMES, search_group)
            right = group_keys(calibration, NAMES, template_group)
        n, m = scores.shape
        found = apply_method(calibration.fitted, PairKeys(
            scores.astype(np.float64).reshape(-1), np.repeat(left, m), np.tile(right, n)))
        return found.confidence.astype(np.float32).reshape(n, m)

    return mapped


@pytest.mark.parametrize("method", ["faircal", "fsn", "gst", "oracle", "group-norm"])
@pytest.mark.parametrize("case", ["random", "ties", "tile_7_bf16"])
def test_matches_the_mapped_dense_reference(tmp_path, rng, method, case):
    dim = 4 if case == "ties" else 16
    emb, identity, group = make_data(rng, lattice=case == "ties", dim=dim)
    calibration = _calibration(tmp_path, method, dim,
                               calibrator="isotonic" if case == "ties" else "beta")
    tile, precision = (7, "bf16") if case == "tile_7_bf16" else (64, "fp32")
    targets, ranks = (0.05, 0.2), (1, 2, 5)
    result = run(tmp_path, emb, identity, group, targets=targets, rank=2, ranks=ranks,
                 tile=tile, device="cpu", precision=precision, calibration=calibration)
    reference = dense_identification(emb, identity, group, targets, 2, ranks,
                                     score_map=_mapper(calibration))
    assert_matches(result, reference)
    assert result["calibration"]["method"] == method
