"""The instance protocol on calibrated scores, tile by tile, against a dense reference that maps
every pair of the full canonical score matrix with the calibration, then counts as the
protocol's dense reference does. Thresholds and counts must be equal exactly, for every tile
size and screening precision, on random data and on adversarial data (ties, single-image
identities, float16 rows)."""
import numpy as np
import pytest
import torch

from dense import canonical_matrix, canonical_rows, dense_similarity, exact_threshold
from dense import paper_bisection
from dense import _stats_at
from embedding_files import write_images_file
from instance_data import GROUP_NAMES, lattice_data, make_data
from mfftools.calibration.kmeans import assign, fit_centroids
from mfftools.calibration.methods import PairKeys, Settings, apply_method, fit_method
from mfftools.calibration.pipeline import fit_calibration
from mfftools.calibration.protocols import group_keys
from mfftools.calibration.store import Calibration
from mfftools.data.synthetic_embeddings import biased_pairs, write_biased_pairs
from mfftools.embeddings import open_embeddings
from mfftools.errors import MfftoolsError
from mfftools.evaluation.instance import evaluate_instance
from mfftools.pair_data import read_pair_set
from test_instance import assert_matches, without_engine

METHODS = ("bisection", "exact")


def _calibration(tmp_path, method, dim, calibrator="beta", seed=0, noise=1.2):
    """A calibration of `method` fitted on pairs of other embeddings of the same (unnamed) model
    and groups (`noise` 0.1: separable pairs, a near-vertical calibration map)."""
    pairs = biased_pairs(group_names=GROUP_NAMES, identities_per_group=20, images_per_identity=4,
                         pairs_per_group=500, dim=dim, bias=0.2, seed=seed, noise=noise)
    path = write_biased_pairs(tmp_path / f"cal_{method}.h5", pairs)
    return fit_calibration(read_pair_set(open_embeddings(path)), method,
                           Settings(clusters=4, calibrator=calibrator, fit_fpr=0.01))


def dense_calibrated(emb, identity, group, targets, calibration):
    """The dense reference on calibrated scores: every pair's canonical score mapped by the
    calibration with its two images' keys, rounded to float32."""
    feats = canonical_rows(emb)
    raw = canonical_matrix(feats, feats)
    if calibration.method in ("faircal", "fsn"):
        keys = assign(feats, calibration.centroids)
    elif calibration.method in ("gst", "oracle", "group-norm"):
        keys = group_keys(calibration, GROUP_NAMES, group)
    else:
        keys = np.zeros(len(identity), dtype=np.int64)
    n = len(identity)
    mapped = apply_method(calibration.fitted, PairKeys(
        raw.astype(np.float64).reshape(-1), np.repeat(keys, n), np.tile(keys, n))).confidence
    scores = mapped.astype(np.float32).reshape(n, n)
    same = identity[:, None] == identity[None, :]
    genuine, impostor = same & ~np.eye(n, dtype=bool), ~same

    def fpr32(thr):
        fp = int(((torch.from_numpy(scores) > thr).numpy() & impostor).sum())
        return torch.tensor(fp) / torch.tensor(int(impostor.sum()))

    out = {"scores": scores, "similarity": dense_similarity(feats, identity)}
    for target in targets:
        for method in METHODS:
            if method == "bisection":
                thr, converged = paper_bisection(fpr32, target)
            else:
                thr = exact_threshold(scores[impostor], int(impostor.sum()), target)
                converged = True
            accepted = (torch.from_numpy(scores) > thr).numpy()
            out[(target, method)] = _stats_at(accepted, thr, converged, genuine, impostor,
                                              identity, group, 3, int(genuine.sum()),
                                              int(impostor.sum()))
    return out


@pytest.mark.parametrize("method", ["baseline", "faircal", "fsn", "gst", "oracle", "group-norm"])
def test_every_method_equals_the_dense_reference(tmp_path, rng, method):
    emb, identity, group = make_data(rng, 60, 5, 16)
    calibration = _calibration(tmp_path, method, 16)
    path = write_images_file(tmp_path / "e.h5", emb, identity, group, GROUP_NAMES)
    targets = (0.01, 0.05)
    reference = dense_calibrated(emb, identity, group, targets, calibration)
    results = []
    for tile, precision in ((64, "fp32"), (37, "bf16"), (4096, "fp32")):
        result = evaluate_instance(open_embeddings(path), targets=targets, methods=METHODS,
                                   tile=tile, precision=precision, device="cpu",
                                   progress=False, calibration=calibration)
        assert_matches(result, reference, identity)
        assert result["calibration"]["method"] == method
        assert "score_distributions" not in result
        results.append(without_engine(result))
    assert len(set(results)) == 1  # the same file whatever the tiles and the screening


@pytest.mark.parametrize("method", ["faircal", "gst"])
def test_ties_single_images_and_float16(tmp_path, rng, method):
    emb, identity, group = lattice_data(rng)  # few distinct scores, each shared by many pairs
    calibration = _calibration(tmp_path, method, 3, calibrator="isotonic")
    for rows in (emb, emb.astype(np.float16)):
        path = write_images_file(tmp_path / "l.h5", rows, identity, group, GROUP_NAMES)
        reference = dense_calibrated(rows.astype(np.float32), identity, group, (0.02, 0.1),
                                     calibration)
        result = evaluate_instance(open_embeddings(path), targets=(0.02, 0.1), methods=METHODS,
                                   tile=48, precision="bf16", device="cpu", progress=False,
                                   calibration=calibration)
        assert_matches(result, reference, identity)


def _steep_calibration(rng, method, emb):
    """A calibration fitted on separable pairs (every genuine score above every impostor
    score): its beta maps jump from 0 to 1 within a few thousandths of raw score."""
    n = 2000
    key_a, key_b = rng.integers(0, 4, n), rng.integers(0, 4, n)
    issame = rng.random(n) < 0.3
    scores = np.where(issame, rng.uniform(0.45, 0.9, n), rng.uniform(-0.5, 0.44, n))
    fitted = fit_method(method, PairKeys(scores, key_a, key_b, issame), 4 if method == "faircal"
                        else 0, Settings(clusters=4))
    centroids = fit_centroids(canonical_rows(emb), 4) if method == "faircal" else None
    return Calibration(fitted=fitted, settings=Settings(clusters=4), group_names=GROUP_NAMES,
                       dim=emb.shape[1], data_sha256="", origin={}, centroids=centroids,
                       cluster_of_image=None)


@pytest.mark.parametrize("method", ["baseline", "faircal"])
def test_a_near_vertical_calibration_map(tmp_path, rng, method):
    """Screening through the map's preimages stays exact when its slope is in the hundreds."""
    emb, identity, group = make_data(rng, 60, 5, 16)
    calibration = _steep_calibration(rng, method, emb)
    a, b, _ = calibration.fitted.bank.params[0]
    assert a + b > 100
    path = write_images_file(tmp_path / "e.h5", emb, identity, group, GROUP_NAMES)
    reference = dense_calibrated(emb, identity, group, (0.01, 0.05), calibration)
    result = evaluate_instance(open_embeddings(path), targets=(0.01, 0.05), methods=METHODS,
                               tile=50, precision="bf16", device="cpu", progress=False,
                               calibration=calibration)
    assert_matches(result, reference, identity)


def test_a_binning_calibration_and_det_are_refused(tmp_path, rng):
    emb, identity, group = make_data(rng, 20, 4, 16)
    path = write_images_file(tmp_path / "e.h5", emb, identity, group, GROUP_NAMES)
    binning = _calibration(tmp_path, "faircal", 16, calibrator="binning")
    with pytest.raises(MfftoolsError, match="binning calibrator is not monotone"):
        evaluate_instance(open_embeddings(path), targets=(0.05,), device="cpu",
                          progress=False, calibration=binning)
    with pytest.raises(MfftoolsError, match="--det is not available with --calibration"):
        evaluate_instance(open_embeddings(path), targets=(0.05,), device="cpu", progress=False,
                          calibration=_calibration(tmp_path, "gst", 16), det=True)
