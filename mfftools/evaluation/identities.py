"""Rows sorted by identity, and the genuine pairs that this order makes block-diagonal.

The engine works on rows sorted (stably) by identity: identity k then occupies the contiguous
rows [start_k, start_k + n_k), its genuine pairs form a square on the diagonal of the score
matrix, and a tile knows from row numbers alone which of its scores are genuine.
"""
import functools
import logging
from dataclasses import dataclass

import numpy as np

from mfftools.evaluation.engine.blocks import fill_pairs

logger = logging.getLogger(__name__)


@dataclass
class IdentityLayout:
    """Identities and groups of the rows, in sorted order.

    order          sorted position -> row of the file
    identity       sorted position -> identity index 0..n_identities-1 (labels ascending)
    labels         identity index -> the file's identity label
    starts, sizes  identity index -> first sorted row and number of images
    identity_group identity index -> group index (the group of its first image in the file)
    group          sorted position -> group index of the image
    genuine_i/j    every genuine pair (i < j) in sorted positions, ordered by (i, j)
    genuine_offsets sorted position i -> index of its first pair in genuine_i (length N + 1)
    n_groups       number of group names (groups may hold no image)

    The denominators of every rate (genuine and impostor pairs per row, per group of the probe
    image, per pair of groups) are computed once, from the sizes alone.
    """

    order: np.ndarray
    identity: np.ndarray
    labels: np.ndarray
    starts: np.ndarray
    sizes: np.ndarray
    identity_group: np.ndarray
    group: np.ndarray
    genuine_i: np.ndarray
    genuine_j: np.ndarray
    genuine_offsets: np.ndarray
    n_mixed_group_identities: int
    n_groups: int

    @property
    def n_rows(self):
        return len(self.order)

    @property
    def n_identities(self):
        return len(self.labels)

    @functools.cached_property
    def genuine_per_row(self):
        """Sorted position -> genuine pairs of that image (the other images of its identity)."""
        return self.sizes[self.identity] - 1

    @functools.cached_property
    def impostor_per_row(self):
        """Sorted position -> impostor pairs of that image (every image of another identity)."""
        return self.n_rows - self.sizes[self.identity]

    @functools.cached_property
    def genuine_per_group(self):
        """Group -> ordered genuine pairs whose probe image is in the group."""
        return np.bincount(self.group, weights=self.genuine_per_row, minlength=self.n_groups)

    @functools.cached_property
    def impostor_per_group(self):
        """Group -> ordered impostor pairs whose probe image is in the group."""
        return np.bincount(self.group, weights=self.impostor_per_row, minlength=self.n_groups)

    @functools.cached_property
    def impostor_per_group_pair(self):
        """[a, b] -> ordered impostor pairs with the probe in group a and the other image in b:
        n_a n_b - sum over identities k of n_ka n_kb."""
        per_group = np.bincount(self.group, minlength=self.n_groups).astype(np.int64)
        contingency = np.zeros((self.n_identities, self.n_groups), dtype=np.int64)
        np.add.at(contingency, (self.identity, self.group), 1)
        return np.outer(per_group, per_group) - contingency.T @ contingency

    @property
    def n_genuine_ordered(self):
        """Ordered genuine pairs: sum of n_k (n_k - 1)."""
        return int(2 * len(self.genuine_i))

    @property
    def n_impostor_ordered(self):
        """Ordered impostor pairs: N (N - 1) - sum of n_k (n_k - 1)."""
        n = self.n_rows
        return n * (n - 1) - self.n_genuine_ordered

    def genuine_in_tile(self, tile):
        """Indices (into genuine_i/j) of the genuine pairs scored by `tile`."""
        if tile.symmetric:
            first_row, stop_row = tile.row_start, tile.row_stop
        else:
            # Columns lie after rows, so only the identity holding the first column can reach
            # back into the tile's rows (identities are contiguous).
            owner = self.identity[tile.col_start]
            first_row = max(tile.row_start, int(self.starts[owner]))
            stop_row = tile.row_stop
            if first_row >= stop_row:
                return np.empty(0, dtype=np.int64)
        lo, hi = self.genuine_offsets[first_row], self.genuine_offsets[stop_row]
        cols = self.genuine_j[lo:hi]
        inside = (cols >= tile.col_start) & (cols < tile.col_stop)
        return lo + np.flatnonzero(inside)

    def mask_genuine(self, tile, scores):
        """Set the genuine cells of a tile's scores (and their mirrors) to -inf."""
        pairs = self.genuine_in_tile(tile)
        fill_pairs(scores, tile, self.genuine_i[pairs], self.genuine_j[pairs])


def ordered_impostor_pairs(identity_labels):
    """N (N - 1) - sum of n_k (n_k - 1): the instance protocol's ordered impostor pairs."""
    sizes = np.unique(identity_labels, return_counts=True)[1].astype(np.int64)
    n = int(sizes.sum())
    return n * (n - 1) - int((sizes * (sizes - 1)).sum())


@dataclass
class IdentityRuns:
    """Rows sorted (stably) by identity label, so each identity's rows are one run.

    order   sorted position -> row;  identity  sorted position -> identity index
    labels  identity index -> label (ascending);  starts, sizes  identity index -> its run
    The first row of a run is the identity's first row in file order.
    """

    order: np.ndarray
    identity: np.ndarray
    labels: np.ndarray
    starts: np.ndarray
    sizes: np.ndarray


def identity_runs(identity_labels):
    """The IdentityRuns of a file's identity labels (any sortable labels)."""
    labels, identity_of_row = np.unique(identity_labels, return_inverse=True)
    identity_of_row = identity_of_row.reshape(-1)
    order = np.argsort(identity_of_row, kind="stable")
    sizes = np.bincount(identity_of_row, minlength=len(labels))
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    return IdentityRuns(order, identity_of_row[order], labels, starts, sizes)


def build_layout(identity_labels, groups, n_groups):
    """Sort rows by identity label and list the genuine pairs; `groups` are group indices."""
    runs = identity_runs(identity_labels)
    order, identity, labels, starts, sizes = (
        runs.order, runs.identity, runs.labels, runs.starts, runs.sizes)
    group = np.asarray(groups, dtype=np.int64)[order]
    identity_group = group[starts]  # stable sort: the first image in file order
    mixed = np.bincount(identity[group != identity_group[identity]], minlength=len(labels))
    n_mixed = int(np.count_nonzero(mixed))
    if n_mixed:
        logger.warning(
            "%d identities have images in more than one group; each is counted in the group "
            "of its first image", n_mixed
        )
    n_rows = len(order)
    position = np.arange(n_rows)
    ends = (starts + sizes)[identity]
    pairs_per_row = ends - position - 1
    offsets = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(pairs_per_row, out=offsets[1:])
    genuine_i = np.repeat(position, pairs_per_row)
    genuine_j = genuine_i + 1 + (np.arange(offsets[-1]) - np.repeat(offsets[:-1], pairs_per_row))
    row_dtype = np.int32 if n_rows < 2**31 else np.int64  # 8 bytes a genuine pair, not 16
    return IdentityLayout(
        order=order,
        identity=identity,
        labels=labels,
        starts=starts,
        sizes=sizes,
        identity_group=identity_group,
        group=group,
        genuine_i=genuine_i.astype(row_dtype),
        genuine_j=genuine_j.astype(row_dtype),
        genuine_offsets=offsets,
        n_mixed_group_identities=n_mixed,
        n_groups=n_groups,
    )
