"""k-means clusters of face embeddings for FairCal and FSN, with FAISS.

`fit_centroids` runs `faiss.Kmeans(D, K, niter=25, seed=seed, max_points_per_centroid=256)` on
canonical (L2-normalised) rows: Lloyd's algorithm from K rows drawn with the seed, 25 iterations,
squared L2 distances; FAISS trains on at most 256 x K rows drawn with the same seed (25,600 for
K = 100: all of BFW's 20k images, a sample of IJB-C's 469k). The same rows, K and seed give the
same centroids on a given machine; across machines the float sums may differ, which is why the
calibration file records every image's cluster (`cluster_of_image`) besides the centroids.
`assign` gives each row its nearest centroid (squared L2; FAISS's exact flat index).
FairCal itself uses scikit-learn's KMeans on the raw embeddings; the clusters here are of the
normalised rows, the ones every score is computed from.
"""
import contextlib
import logging

import numpy as np

from mfftools.errors import MfftoolsError

logger = logging.getLogger(__name__)

ITERATIONS = 25
MAX_POINTS_PER_CENTROID = 256
# FAISS's own advice: fewer rows than this per centroid make poor clusters (logged, not printed).
_FEW_POINTS_PER_CENTROID = 39


def _faiss():
    """The faiss module, imported without its loader's INFO lines about CPU builds."""
    loader = logging.getLogger("faiss.loader")
    level = loader.level
    loader.setLevel(logging.WARNING)
    try:
        import faiss
    finally:
        loader.setLevel(level)
    return faiss


@contextlib.contextmanager
def _one_thread(faiss):
    """FAISS on one OpenMP thread, the previous count restored on exit. Measured on two shared,
    loaded cores: k-means of 1,200 rows into 16 clusters took 0.3 s with two threads after torch
    was loaded and 0.01 s with one (threads wait on each other at every small step); at BFW's
    size (20k rows, 100 clusters, D = 512) one thread does it in about a second."""
    saved = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(saved)


def fit_centroids(rows, n_clusters, seed=0):
    """float32 [K, D] centroids of the float32 canonical `rows` (see the module docstring)."""
    faiss = _faiss()
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    if n_clusters < 1:
        raise MfftoolsError(f"--clusters must be at least 1, not {n_clusters}")
    if len(rows) < n_clusters:
        raise MfftoolsError(
            f"{n_clusters} clusters need at least as many distinct images; the calibration "
            f"pairs have {len(rows)}: lower --clusters"
        )
    if len(rows) < _FEW_POINTS_PER_CENTROID * n_clusters:
        logger.info("k-means: %d images for %d clusters (FAISS advises at least %d per cluster)",
                    len(rows), n_clusters, _FEW_POINTS_PER_CENTROID)
    kmeans = faiss.Kmeans(rows.shape[1], n_clusters, niter=ITERATIONS, seed=seed,
                          max_points_per_centroid=MAX_POINTS_PER_CENTROID,
                          min_points_per_centroid=1, verbose=False)
    with _one_thread(faiss):
        kmeans.train(rows)
    return np.array(kmeans.centroids, dtype=np.float32).reshape(n_clusters, rows.shape[1])


def assign(rows, centroids, block_rows=65536):
    """int64 [N]: the nearest centroid of each row (squared L2)."""
    faiss = _faiss()
    centroids = np.ascontiguousarray(centroids, dtype=np.float32)
    index = faiss.IndexFlatL2(centroids.shape[1])
    index.add(centroids)
    out = np.empty(len(rows), dtype=np.int64)
    with _one_thread(faiss):
        for first in range(0, len(rows), block_rows):
            block = np.ascontiguousarray(rows[first : first + block_rows], dtype=np.float32)
            _, nearest = index.search(block, 1)
            out[first : first + len(block)] = nearest[:, 0]
    return out
