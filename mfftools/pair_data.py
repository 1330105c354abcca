"""The pairs of an embeddings file, with each image held once, for the pair protocol and calibration.

Pairs come in three forms, all read into one `PairSet` (rows of distinct images, and per pair the
row indices of its two images, `issame` and maybe a fold):
  * an images-layout file with its own pair list (`pair_index`, `pair_issame`, `pair_fold`);
  * an images-layout file and a pair list (.csv/.tsv: path1, path2, issame, optional fold) whose
    paths name the file's images by its `path` dataset;
  * a pairs-layout file (rows 2k and 2k+1 form pair k): rows with the same bytes and the same
    group are one image, so an image that appears in many pairs is held (and clustered) once.
An image's group is its `group` (images layout) or its pair's `pair_group` (pairs layout); a
pair's group is that of its first image.

`data_sha256` is the SHA-256 of the file's embedding rows as read (float32, row-major, file order):
a calibration records it, and knows the file it was fitted on again by it.
"""
import hashlib
import logging
from dataclasses import dataclass

import numpy as np

from mfftools.errors import MfftoolsError

logger = logging.getLogger(__name__)

PAIR_TABLE_COLUMNS = ("path1", "path2", "issame", "fold")
_READ_ROWS = 65536


@dataclass
class PairSet:
    """Pairs over distinct images.

    rows: float32 [N, D], the embeddings as stored (not normalised), or their canonical rows
    once `normalise_in_place` ran. pair_index: int64 [P, 2]. issame: bool [P]. fold: int64 [P]
    or None (the file assigns no folds). image_group: int64 [N]. group_names: the file's.
    data_sha256: see the module docstring. source: for messages.
    """

    rows: np.ndarray
    pair_index: np.ndarray
    issame: np.ndarray
    fold: np.ndarray
    image_group: np.ndarray
    group_names: list
    data_sha256: str
    source: str
    normalised: bool = False

    def __post_init__(self):
        self.dim = int(self.rows.shape[1])
        self.n_images = int(len(self.rows))

    def release_rows(self):
        """Let the rows go (the largest array: IJB-C's are 0.96 GB) once scores and keys are
        taken from them; `dim` and `n_images` stay."""
        self.rows = None

    def normalise_in_place(self):
        """Replace `rows` by their canonical rows (no copy: IJB-C's 469k x 512 rows are 0.96 GB);
        returns them as a torch tensor sharing that memory."""
        if self.rows is None:
            raise ValueError("the rows were released (release_rows): read the pairs again")
        if not self.normalised:
            canonical = canonical_rows(self.rows, copy=False)
            self.normalised = True
            return canonical
        import torch

        return torch.from_numpy(self.rows)

    @property
    def n_pairs(self):
        return len(self.pair_index)

    @property
    def pair_group(self):
        """Each pair's group: the group of its first image."""
        return self.image_group[self.pair_index[:, 0]]

    @property
    def same_group(self):
        """Whether both images of each pair are in the same group."""
        return self.image_group[self.pair_index[:, 0]] == self.image_group[self.pair_index[:, 1]]

    def distances(self, block_pairs=65536):
        """The pair protocol's squared L2 distances (float64, insightface's arithmetic), the same
        bits as a pairs-layout file holding these rows gives."""
        from mfftools.evaluation.pair import pair_distances

        if self.normalised:
            raise ValueError("distances are of the stored rows, which were normalised in place")
        dist = np.empty(self.n_pairs, dtype=np.float64)
        for first in range(0, self.n_pairs, block_pairs):
            index = self.pair_index[first : first + block_pairs]
            dist[first : first + len(index)] = pair_distances(self.rows[index[:, 0]],
                                                              self.rows[index[:, 1]])
        return dist


def evaluate_pair_set(pair_set, groups=None, distances=None, grid=None):
    """The pair protocol's results dict (mfftools.evaluation.pair) of a PairSet, on the file's
    folds when it assigns them; `distances`: the pairs' distances when not the embeddings' own
    (calibrated ones); `grid`: the accuracy grid (default by name)."""
    from mfftools.evaluation.pair import evaluate_pair_distances

    dist = pair_set.distances() if distances is None else distances
    results = evaluate_pair_distances(dist, pair_set.issame, pair_set.pair_group,
                                      pair_set.group_names, fold=pair_set.fold, groups=groups,
                                      where=pair_set.source, grid=grid)
    results["dim"] = pair_set.dim
    results["source"] = pair_set.source
    return results


def evaluate_embeddings(embeddings, groups=None, calibration=None, grid=None,
                        allow_dropped_pairs=False, allow_degenerate=False, calibration_file=None):
    """The pair protocol's results of an opened embeddings file holding pairs, on the scores
    calibrated by `calibration` (a store.Calibration checked against these embeddings; its
    `calibration_file`, when it was read from one, is recorded) when one is given; `grid`: the
    accuracy grid (default by name). A file that lost pairs at extraction is refused unless it
    has its own folds or `allow_dropped_pairs`; degenerate embeddings unless `allow_degenerate`
    (see `sanity`)."""
    from mfftools.evaluation.pair import evaluate_pairs, file_results
    from mfftools.evaluation.skipped import check_folds

    if not embeddings.has_pairs:
        raise MfftoolsError(
            f"{embeddings.path}: an images-layout file without a pair list (the instance "
            "protocol's input: use inst-eval); pair-eval needs pairs"
        )
    if calibration is None and embeddings.layout == "pairs":
        return evaluate_pairs(embeddings, groups=groups, grid=grid,
                              allow_dropped_pairs=allow_dropped_pairs,
                              allow_degenerate=allow_degenerate)
    check_folds(embeddings, allow_dropped_pairs)
    pair_set = read_pair_set(embeddings)
    distances = pair_set.distances()
    calibrated, extra = None, None
    if calibration is not None:
        from mfftools.calibration.pipeline import ScoredPairs, calibrated_distances

        calibrated, applied = calibrated_distances(calibration,
                                                   ScoredPairs.of(pair_set, in_place=True))
        extra = {"calibration": {
            **({} if calibration_file is None else {"file": str(calibration_file)}),
            "method": calibration.method, "calibrator": calibration.fitted.calibrator,
            "fallback_pairs": int(applied.fallback.sum())}}
    return file_results(embeddings, distances, pair_set.issame, pair_set.pair_group,
                        pair_set.fold, groups, grid, allow_degenerate, calibrated, extra)


def canonical_rows(rows, copy=True):
    """The canonical rows (float32 torch tensor) of float32 rows, normalised as every protocol
    normalises them (float64 norm, rounded to float32); `rows` itself is left unchanged unless
    `copy` is false (then the tensor shares its memory)."""
    import torch

    from mfftools.evaluation.engine.scoring import normalise_rows_

    rows = np.array(rows, dtype=np.float32, copy=copy or None)
    return normalise_rows_(torch.from_numpy(rows))


def pair_scores(rows, pair_index):
    """Canonical cosine scores (float32 [P]) of the pairs `pair_index` over canonical `rows` (a
    torch tensor from `canonical_rows`): the scores the instance protocol compares."""
    import torch

    from mfftools.evaluation.engine.scoring import canonical_scores

    index = torch.from_numpy(np.ascontiguousarray(pair_index, dtype=np.int64))
    return canonical_scores(rows, rows, index[:, 0], index[:, 1]).numpy()


def read_pair_set(embeddings, pair_table=None, columns=None):
    """The PairSet of an opened embeddings file (see the module docstring); `pair_table`: a pair
    list naming an images-layout file's images by path (`columns` maps its column names)."""
    if pair_table is not None:
        if embeddings.layout != "images":
            raise MfftoolsError(
                f"{pair_table}: a pair list names the images of an images-layout file; "
                f"{embeddings.path} is a pairs-layout file, which holds its pairs already"
            )
        rows, digest = _read_rows(embeddings)
        index, issame, fold = read_named_pairs(pair_table, embeddings, columns)
        return PairSet(rows, index, issame, fold, embeddings.group, embeddings.group_names,
                       digest, f"{embeddings.path} with {pair_table}")
    if embeddings.layout == "images":
        if embeddings.pair_index is None:
            raise MfftoolsError(
                f"{embeddings.path}: an images-layout file without a pair list (datasets "
                "pair_index, pair_issame); give a pair list naming its images, or a "
                "pairs-layout file"
            )
        rows, digest = _read_rows(embeddings)
        return PairSet(rows, embeddings.pair_index, embeddings.pair_issame, embeddings.pair_fold,
                       embeddings.group, embeddings.group_names, digest, str(embeddings.path))
    return _distinct_pairs(embeddings)


def _read_rows(embeddings, keep=True):
    """All rows (float32; None unless `keep`) and their SHA-256."""
    rows = np.empty((embeddings.n_rows, embeddings.dim), dtype=np.float32) if keep else None
    digest = hashlib.sha256()
    for first, block in embeddings.iter_blocks(block_rows=_READ_ROWS):
        if keep:
            rows[first : first + len(block)] = block
        digest.update(np.ascontiguousarray(block).tobytes())
    return rows, digest.hexdigest()


def rows_sha256(embeddings):
    """The `data_sha256` of an embeddings file (module docstring), read block by block."""
    return _read_rows(embeddings, keep=False)[1]


def _distinct_pairs(embeddings):
    """A pairs-layout file as distinct images: a row equal in every byte to an earlier row of
    the same group is that image again."""
    n_pairs = embeddings.n_rows // 2
    row_group = np.repeat(embeddings.pair_group, 2)
    image_of_row = np.empty(embeddings.n_rows, dtype=np.int64)
    seen, kept = {}, []
    digest = hashlib.sha256()
    for first, block in embeddings.iter_blocks(block_rows=_READ_ROWS):
        block = np.ascontiguousarray(block)
        digest.update(block.tobytes())
        for offset, row in enumerate(block):
            key = (hashlib.blake2b(row.tobytes(), digest_size=16).digest(),
                   int(row_group[first + offset]))
            image = seen.get(key)
            if image is None:
                image = seen[key] = len(kept)
                kept.append(row.copy())  # not a view: the block is let go
            image_of_row[first + offset] = image
    rows = np.array(kept, dtype=np.float32).reshape(len(kept), embeddings.dim)
    image_group = np.empty(len(kept), dtype=np.int64)
    image_group[image_of_row] = row_group
    logger.info("%s: %d pairs over %d distinct images", embeddings.path, n_pairs, len(kept))
    return PairSet(rows, image_of_row.reshape(n_pairs, 2), embeddings.issame, embeddings.fold,
                   image_group, embeddings.group_names, digest.hexdigest(), str(embeddings.path))


def read_named_pairs(path, embeddings, columns=None):
    """A pair list whose path1/path2 are names of an images-layout file's `path` dataset ->
    (pair_index [P, 2], issame [P], fold [P] or None). Fold labels are numbered 0, 1, ... in
    order of first appearance. Every unknown name and bad value is an error naming its line."""
    from mfftools.data.pair_list import ISSAME_VALUES
    from mfftools.data.table import Problems, Table

    if embeddings.image_paths is None:
        raise MfftoolsError(
            f"{embeddings.path}: the file has no 'path' dataset, so a pair list cannot name its "
            "images"
        )
    row_of = {}
    for row, name in enumerate(embeddings.image_paths):
        row_of.setdefault(str(name), row)
    table = Table(path, columns, known=PAIR_TABLE_COLUMNS)
    table.require(("path1", "path2", "issame"), "a pair list (path1, path2, issame)")
    positions = {name: table.position(name) for name in PAIR_TABLE_COLUMNS if table.has(name)}
    problems = Problems()
    index, issame, folds = [], [], []
    for line, values in table.rows(problems):
        pair = []
        for name in ("path1", "path2"):
            row = row_of.get(values[positions[name]])
            if row is None:
                problems.add(f"{table.where(line, positions[name])}: no image "
                             f"{values[positions[name]]!r} in {embeddings.path}")
            pair.append(-1 if row is None else row)
        same = ISSAME_VALUES.get(values[positions["issame"]].lower())
        if same is None:
            problems.add(f"{table.where(line, positions['issame'])}: "
                         f"{values[positions['issame']]!r} is not 1/0 or true/false")
        index.append(pair)
        issame.append(bool(same))
        if "fold" in positions:
            folds.append(values[positions["fold"]])
    if not table.records:
        problems.add(f"{table.path}: no rows after the header")
    problems.raise_any()
    fold = None
    if folds:
        numbers = {label: number for number, label in enumerate(dict.fromkeys(folds))}
        fold = np.array([numbers[label] for label in folds], dtype=np.int64)
    return np.array(index, dtype=np.int64), np.array(issame, dtype=bool), fold


def contiguous_folds(pair_group, n_folds, group_names):
    """Each pair's fold when the file assigns none: each group's pairs, in file order, cut into
    `n_folds` contiguous folds as the pair protocol cuts them (scikit-learn's KFold: the first
    P % n_folds folds one pair longer); fold k is the k-th part of every group."""
    from mfftools.evaluation.pair import kfold_bounds

    pair_group = np.asarray(pair_group, dtype=np.int64)
    fold = np.empty(len(pair_group), dtype=np.int64)
    for group in np.unique(pair_group):
        members = np.flatnonzero(pair_group == group)
        if len(members) < n_folds:
            raise MfftoolsError(
                f"group {group_names[group]!r} has {len(members)} pairs, fewer than the "
                f"{n_folds} folds asked for"
            )
        for number, (start, stop) in enumerate(kfold_bounds(len(members), n_folds)):
            fold[members[start:stop]] = number
    return fold
