"""Open-set identification, 1:N (NIST FRVT 1:N style), per demographic group.

A gallery of templates (one per enrolled identity) and searches (images): a search is mated when
its identity has a template, else non-mated. With one embeddings file, within each group
(an identity's group is that of its first image) the identities sorted by label at even
positions are enrolled, with their first K images in file order as the template and the rest as
mated searches; every image of the others is a non-mated search. With two files, the gallery's
identities are the templates (all their images) and every probe image is a search.

A template is the canonical mean of its canonical rows; templates are ordered by (group, label),
and every score is canonical. The recipe: score each mated search's own template; one pass over
mated searches x templates counts, per search, the other templates scoring strictly above its
mated one (rank = 1 + that count); one pass over non-mated searches x templates keeps each
search's best template (ties to the first in order). Thresholds, FNIR, FPIR, CMC and the
false-positive matrix all come from those per-search numbers; each search's outcome at each
threshold (missed, false positive) is recorded too, so that two runs on the same searches (before
and after a calibration) can be paired search by search.
"""
import logging
import math
from dataclasses import dataclass

import numpy as np
import torch

from mfftools.dist import DistInfo, resolve_device
from mfftools.errors import MfftoolsError
from mfftools.evaluation import fairness, sanity, threshold as search
from mfftools.evaluation.engine import distributed
from mfftools.evaluation.engine.blocks import Scorer, fill_pairs
from mfftools.evaluation.engine.counts import RowCounter
from mfftools.evaluation.engine.scoring import (
    PRECISIONS, canonical_means, canonical_scores, resolve_precision)
from mfftools.evaluation.engine.tiles import plan_rectangle
from mfftools.evaluation.engine.topk import RowTopK
from mfftools.evaluation.identities import identity_runs
from mfftools.evaluation.instance import load_rows
from mfftools.evaluation.skipped import skipped_counts
from mfftools.fingerprint import images_fingerprint

logger = logging.getLogger(__name__)

DEFAULT_RANKS = (1, 5, 10, 20)
# Non-mated searches recorded with their best template, overall and in each group.
TOP_NONMATED = 10
RANK_TIES = ("optimistic", "pessimistic")


@dataclass
class Gallery:
    """Templates and searches, canonical, on the device.

    templates        float32 [T, D], ordered by (group, label)
    template_group   [T] group index;  template_label [T] identity label
    searches         float32 [S, D]: the mated searches first, then the non-mated, each in file
                     order
    search_group     [S] group index of the search image
    mated            [n_mated] index of each mated search's template
    search_rows      [S] the file row of each search (of the probe file, with two files)
    search_keys, template_keys   [S] and [T] calibration keys (None without a calibration)
    """

    templates: torch.Tensor
    template_group: np.ndarray
    template_label: np.ndarray
    searches: torch.Tensor
    search_group: np.ndarray
    mated: np.ndarray
    search_rows: np.ndarray = None
    search_keys: np.ndarray = None
    template_keys: np.ndarray = None

    def score_map(self, calibration, first, stop):
        """The score map of searches [first, stop) against the templates (None without a
        calibration)."""
        if calibration is None:
            return None
        from mfftools.calibration.protocols import score_map

        return score_map(calibration, self.search_keys[first:stop], self.template_keys)

    @property
    def n_mated(self):
        return len(self.mated)

    @property
    def n_nonmated(self):
        return len(self.searches) - len(self.mated)


def _templates(rows, group, identity, enrolled, images):
    """Templates of the enrolled identities: canonical means of their first `images` rows
    (in file order); ordered by (group, label). Returns (templates, groups, labels, their rows)."""
    runs = identity_runs(identity)
    order, labels, starts, sizes = runs.order, runs.labels, runs.starts, runs.sizes
    first_group = group[order[starts]]  # stable sort: the first image in file order
    keep = np.flatnonzero(np.isin(labels, enrolled))
    keep = keep[np.lexsort((labels[keep], first_group[keep]))]
    counts = np.minimum(sizes[keep], images)
    template_rows = np.concatenate(
        [order[start : start + count] for start, count in zip(starts[keep], counts)]
        + [np.empty(0, dtype=np.int64)])
    members = rows[torch.from_numpy(template_rows).to(rows.device)]
    means = canonical_means(members, np.cumsum(counts) - counts, counts)
    return means, first_group[keep], labels[keep], template_rows


def _enrolled_by_rule(identity, group):
    """Within each group (an identity's group is that of its first image), identities sorted by
    label at even positions."""
    runs = identity_runs(identity)
    first_group = group[runs.order[runs.starts]]
    labels = runs.labels
    enrolled = []
    for g in np.unique(first_group):
        members = np.sort(labels[first_group == g])
        enrolled.append(members[0::2])
    return np.concatenate(enrolled)


def split_counts(identity, group, gallery_images=1):
    """(mated, non-mated) searches of one file split by the rule, from its labels alone: what a
    caller can check before any embedding exists."""
    runs = identity_runs(identity)
    enrolled = np.isin(runs.labels, _enrolled_by_rule(identity, group))
    return (int(np.maximum(runs.sizes[enrolled] - gallery_images, 0).sum()),
            int(runs.sizes[~enrolled].sum()))


def _check_pair(gallery, probes):
    if gallery.dim != probes.dim:
        raise MfftoolsError(
            f"{gallery.path} has {gallery.dim}-dimensional embeddings but {probes.path} has "
            f"{probes.dim}: gallery and probes must come from the same model"
        )
    if list(gallery.group_names) != list(probes.group_names):
        raise MfftoolsError(
            f"{gallery.path} names groups {list(gallery.group_names)} but {probes.path} names "
            f"{list(probes.group_names)}: both files must use the same group names, in order"
        )


MATCH_BY = ("name", "label")


def resolve_match(gallery, probes, match_by=None):
    """How searches of `probes` find their template in `gallery`: by `identity_name` (the
    default, when both files have names) or by the integer `identity` label (`label`, which
    only means the same person in both files when they were labelled together)."""
    if match_by not in (None,) + MATCH_BY:
        raise MfftoolsError(f"unknown --match-by {match_by!r}: use one of {', '.join(MATCH_BY)}")
    if match_by == "label":
        return "label"
    unnamed = [str(file.path) for file in (gallery, probes) if file.identity_names is None]
    if unnamed:
        raise MfftoolsError(
            f"{' and '.join(unnamed)} {'has' if len(unnamed) == 1 else 'have'} no identity names "
            "(dataset 'identity_name'), so searches cannot be matched to templates by name; "
            "extract both files with mfftools, or give --match-by label if the two files' "
            "integer identity labels were assigned together (extract numbers identities per "
            "source, so separately extracted files disagree)"
        )
    for file in (gallery, probes):
        _check_names(file)
    return "name"


def _check_names(embeddings):
    """Refuse a file where one identity name carries two integer labels, or the reverse."""
    pairs = np.unique(np.stack([embeddings.identity.astype(str),
                                embeddings.identity_names.astype(str)], axis=1), axis=0)
    for column, what, other in ((1, "name", "labels"), (0, "label", "names")):
        values, counts = np.unique(pairs[:, column], return_counts=True)
        if (counts > 1).any():
            value = str(values[np.argmax(counts > 1)])
            found = sorted(str(v) for v in pairs[pairs[:, column] == value][:, 1 - column])
            raise MfftoolsError(
                f"{embeddings.path}: identity {what} {value!r} has two {other} "
                f"({', '.join(map(repr, found[:2]))}): each identity needs one label and one "
                "name; re-extract the file"
            )


def build_gallery(embeddings, probes=None, gallery_images=1, device="cpu", match_by=None):
    """The Gallery of one images-layout file split by the rule, or of a gallery and probe file
    whose searches find their templates by `resolve_match(..., match_by)`."""
    if gallery_images < 1:
        raise MfftoolsError(f"--gallery-images must be at least 1, got {gallery_images}")
    rows = load_rows(embeddings, np.arange(embeddings.n_rows), device)
    if probes is None:
        enrolled = _enrolled_by_rule(embeddings.identity, embeddings.group)
        templates, template_group, template_label, template_rows = _templates(
            rows, embeddings.group, embeddings.identity, enrolled, gallery_images)
        is_search = np.ones(embeddings.n_rows, dtype=bool)
        is_search[template_rows] = False
        search_rows, search_identity = rows, embeddings.identity
        search_group = embeddings.group
        template_key = template_label
    else:
        _check_pair(embeddings, probes)
        by_name = resolve_match(embeddings, probes, match_by) == "name"
        templates, template_group, template_label, _ = _templates(
            rows, embeddings.group, embeddings.identity, np.unique(embeddings.identity),
            embeddings.n_rows)
        del rows
        search_rows = load_rows(probes, np.arange(probes.n_rows), device)
        search_identity = probes.identity_names if by_name else probes.identity
        search_group = probes.group
        is_search = np.ones(probes.n_rows, dtype=bool)
        template_key = template_label
        if by_name:
            name_of = dict(zip(embeddings.identity, embeddings.identity_names))
            template_key = [name_of[label] for label in template_label]
    position = {key: k for k, key in enumerate(template_key)}
    template_of = np.array([position.get(key, -1) for key in search_identity], dtype=np.int64)
    mated_rows = np.flatnonzero(is_search & (template_of >= 0))
    nonmated_rows = np.flatnonzero(is_search & (template_of < 0))
    order = np.concatenate([mated_rows, nonmated_rows])
    return Gallery(
        templates=templates,
        template_group=template_group,
        template_label=template_label,
        searches=search_rows[torch.from_numpy(order).to(search_rows.device)],
        search_group=search_group[order],
        mated=template_of[mated_rows],
        search_rows=order,
    )


def _share(count, info):
    """The contiguous range of `count` rows this rank scores."""
    return (count * info.rank // info.world_size, count * (info.rank + 1) // info.world_size)


def _mated_searches(gallery, rows, score_map=None):
    """The mated searches in `rows`, their templates, and their scores with them (canonical,
    mapped by `score_map` when there is one)."""
    first, stop = rows
    searches = gallery.searches[first:stop]
    mated = torch.from_numpy(gallery.mated[first:stop]).to(searches.device)
    local = torch.arange(stop - first, device=searches.device)
    scores = canonical_scores(searches, gallery.templates, local, mated)
    if score_map is not None and len(scores):
        scores = score_map(scores, local, mated)
    return searches, mated, scores


def _nonmated_searches(gallery, rows):
    """The non-mated searches in `rows` (counted after the mated ones)."""
    first, stop = rows
    return gallery.searches[gallery.n_mated + first : gallery.n_mated + stop]


def _mated_pass(gallery, screening, rows, tile, progress, ties_ahead, calibration=None):
    """Per mated search in `rows`: its template's canonical score, how many other templates
    score strictly above it (at or above it with `ties_ahead`), and the pairs rescored. With a
    calibration, every score is the calibrated one."""
    score_map = gallery.score_map(calibration, *rows)
    searches, mated, scores = _mated_searches(gallery, rows, score_map)
    local = torch.arange(len(searches), device=searches.device)
    tiles = plan_rectangle(len(searches), len(gallery.templates), tile)
    scorer = Scorer(searches, gallery.templates, screening, tiles, score_map)
    # Canonical scores are float32: s >= t exactly when s > the float32 just below t.
    below = torch.nextafter(scores, torch.full_like(scores, -math.inf)) if ties_ahead else scores
    counter = RowCounter(below, scorer)

    def mask(block_tile, block_scores):  # a search's own template is not among the others
        rows_in = local[block_tile.row_start : block_tile.row_stop]
        cols = mated[rows_in]
        inside = (cols >= block_tile.col_start) & (cols < block_tile.col_stop)
        fill_pairs(block_scores, block_tile, rows_in[inside], cols[inside])

    try:
        for block in scorer.blocks(tiles, mask=mask, progress=progress):
            counter.add(block)
    finally:
        scorer.close()
    return scores, counter.counts, scorer.n_rescored


def _best_pass(gallery, screening, rows, tile, progress, calibration=None):
    """Per non-mated search in `rows` (counted after the mated ones): its best template's
    canonical (or calibrated) score and index, and the pairs rescored."""
    searches = _nonmated_searches(gallery, rows)
    tiles = plan_rectangle(len(searches), len(gallery.templates), tile)
    first, stop = rows
    score_map = gallery.score_map(calibration, gallery.n_mated + first, gallery.n_mated + stop)
    scorer = Scorer(searches, gallery.templates, screening, tiles, score_map)
    best = RowTopK(len(searches), 1, scorer)
    try:
        for block in scorer.blocks(tiles, progress=progress):
            best.add(block)
        values, cols = best.finalize()
    finally:
        scorer.close()
    return values[:, 0], cols[:, 0], scorer.n_rescored


def _gather(tensor, info):
    if not info.distributed:
        return tensor.cpu()
    return torch.cat(distributed.all_gather_rows(tensor))


def search_gallery(gallery, max_rank, tile, precision, info, progress, ties_ahead=False,
                   calibration=None):
    """Per-search numbers, gathered over ranks: (mated scores, other templates above each mated
    one (at or above it with `ties_ahead`), best scores and best templates of the non-mated
    searches) as numpy arrays, and the pairs rescored (summed over ranks). With a
    `calibration` (the gallery's keys set), every score is the calibrated one."""
    rows_mated = _share(gallery.n_mated, info)
    rows_nonmated = _share(gallery.n_nonmated, info)
    mated_scores, counts, rescored_mated = _mated_pass(gallery, precision, rows_mated, tile,
                                                       progress, ties_ahead, calibration)
    best, best_index, rescored_best = _best_pass(gallery, precision, rows_nonmated, tile, progress,
                                                 calibration)
    parts, rescored = [mated_scores, counts, best, best_index], rescored_mated + rescored_best
    if info.distributed:
        rescored = distributed.sum_over_ranks(rescored)
    return [_gather(part, info).numpy() for part in parts], rescored


def check_targets(targets, n_nonmated):
    """Refuse a target FPIR outside (0, 1) or one `n_nonmated` searches cannot resolve."""
    search.check_targets(targets, n_nonmated, rate="FPIR", negatives="non-mated searches",
                         more="more searches")


def _rate(count, total):
    return float(count / total) if total else None


def _results_at(target, threshold, numbers, gallery, group_names, rank):
    mated_scores, ranks, best, best_index = numbers
    missed = (ranks > rank) | (mated_scores <= threshold)
    false_positive = best > threshold
    mated_group = gallery.search_group[: gallery.n_mated]
    nonmated_group = gallery.search_group[gallery.n_mated :]
    groups = {}
    for g, name in enumerate(group_names):
        in_mated, in_nonmated = mated_group == g, nonmated_group == g
        groups[name] = {
            "fnir": _rate(np.count_nonzero(missed & in_mated), np.count_nonzero(in_mated)),
            "fpir": _rate(np.count_nonzero(false_positive & in_nonmated),
                          np.count_nonzero(in_nonmated)),
            "n_mated": int(np.count_nonzero(in_mated)),
            "n_nonmated": int(np.count_nonzero(in_nonmated)),
        }
    size = len(group_names)
    matrix = np.zeros((size, size), dtype=np.int64)
    np.add.at(matrix, (nonmated_group[false_positive],
                       gallery.template_group[best_index[false_positive]]), 1)
    return {
        "target_fpir": target,
        "threshold": threshold,
        "fnir": _rate(np.count_nonzero(missed), len(missed)),
        "fpir": _rate(np.count_nonzero(false_positive), len(best)),
        "groups": groups,
        "fairness": {
            "fnir_max_geomean": fairness.max_geomean(
                [s["fnir"] for s in groups.values() if s["fnir"] is not None]),
            "fpir_max_geomean": fairness.max_geomean(
                [s["fpir"] for s in groups.values() if s["fpir"] is not None]),
        },
        "false_positive_matrix": matrix.tolist(),
        "missed": np.flatnonzero(missed).tolist(),
        "false_positives": np.flatnonzero(false_positive).tolist(),
    }


def _cmc(ranks_of_mated, mated_group, group_names, ranks):
    def rates(selected):
        if not len(selected):
            return [None] * len(ranks)
        return [float(np.count_nonzero(selected <= k) / len(selected)) for k in ranks]

    out = {"all": rates(ranks_of_mated)}
    for g, name in enumerate(group_names):
        out[name] = rates(ranks_of_mated[mated_group == g])
    return out


def _det(numbers, gallery, group_names, rank):
    """FNIR(t, rank) against FPIR(t), overall and per group of the search, at thresholds
    spread over the ranks of the non-mated best scores (`threshold.thresholds_at_ranks`)."""
    mated_scores, ranks_of_mated, best, _ = numbers
    thresholds = search.thresholds_at_ranks(np.sort(best)[::-1])
    # A mate beyond the rank is missed at every threshold: it scores -inf.
    found = np.where(ranks_of_mated > rank, -np.inf, mated_scores)
    mated_group = gallery.search_group[: gallery.n_mated]
    nonmated_group = gallery.search_group[gallery.n_mated :]

    def curve(mated_mask, nonmated_mask):
        hits = search.rates_above(found[mated_mask], thresholds)
        return {
            "threshold": [float(t) for t in thresholds],
            "fpir": search.rates_above(best[nonmated_mask], thresholds),
            "fnir": [None if hit is None else 1.0 - hit for hit in hits],
        }

    out = {"all": curve(slice(None), slice(None))}
    for g, name in enumerate(group_names):
        out[name] = curve(mated_group == g, nonmated_group == g)
    return out


def evaluate_identification(
    embeddings,
    probes=None,
    gallery_images=1,
    targets=(1e-2,),
    rank=1,
    ranks=DEFAULT_RANKS,
    tile=8192,
    device="auto",
    precision="auto",
    progress=False,
    dist_info=None,
    match_by=None,
    rank_ties="optimistic",
    allow_degenerate=False,
    calibration=None,
):
    """Open-set identification on an images-layout `Embeddings` split by the rule, or with
    `probes` on a gallery file and a probe file: the results-file dict (one entry per target).

    `match_by` (two files): how searches find their template, by identity `name` (the default)
    or integer `label` (`resolve_match`). `rank_ties`: `optimistic` gives the mate the best
    rank among templates tying with it (rank = 1 + templates scoring strictly higher),
    `pessimistic` the worst (1 + the others scoring at least as high). Degenerate embeddings
    are refused unless `allow_degenerate` (see `sanity`). `calibration`: a fitted calibration
    (mfftools.calibration.store.Calibration) whose calibrated scores replace the canonical
    ones: a search's best template and a mate's rank are then by calibrated score.
    `progress`: progress bars over the tiles (on the main process).
    """
    for source in (embeddings, probes):
        if source is not None and source.layout != "images":
            raise MfftoolsError(f"{source.path}: identification needs an 'images'-layout "
                                f"embeddings file, this one has layout {source.layout!r}")
    targets = tuple(dict.fromkeys(float(target) for target in targets))
    ranks = tuple(sorted(dict.fromkeys(int(k) for k in ranks)))
    if not targets:
        raise MfftoolsError("at least one target FPIR is needed")
    if rank < 1 or not ranks or ranks[0] < 1:
        raise MfftoolsError("ranks must be at least 1")
    if tile < 1:
        raise MfftoolsError(f"--tile must be at least 1, got {tile}")
    if rank_ties not in RANK_TIES:
        raise MfftoolsError(f"unknown --rank-ties {rank_ties!r}: use one of "
                            f"{', '.join(RANK_TIES)}")
    degenerate = [finding for source in (embeddings, probes) if source is not None
                  for finding in sanity.check_embeddings(source, None, allow_degenerate)]
    info = dist_info or DistInfo()
    device = resolve_device(device, info.local_rank)
    screening = resolve_precision(precision, device)
    progress = progress and info.is_main
    gallery = build_gallery(embeddings, probes, gallery_images, device, match_by)
    if gallery.n_mated == 0:
        raise MfftoolsError("no mated searches: no search's identity has a template in the "
                            "gallery (with one file: every enrolled identity has at most "
                            f"{gallery_images} image(s), all used for its template)")
    if gallery.n_nonmated == 0:
        raise MfftoolsError("no non-mated searches: every search's identity is enrolled, so no "
                            "threshold at a target FPIR can be set")
    if calibration is not None:
        _set_keys(gallery, calibration, embeddings if probes is None else probes,
                  embeddings.group_names)
    search_file = embeddings if probes is None else probes
    searched = identify(gallery, list(embeddings.group_names), targets, rank, ranks, tile,
                        screening, info, progress, rank_ties, calibration,
                        _SearchDescriber(gallery, search_file, embeddings,
                                         gallery_images if probes is None else None))
    return {
        "protocol": "identification",
        **{key: searched[key] for key in ("group_names", "n_templates", "n_mated", "n_nonmated",
                                          "rank", "ranks", "results", "cmc")},
        "gallery_images": gallery_images if probes is None else None,
        "match_by": None if probes is None else resolve_match(embeddings, probes, match_by),
        **{key: searched[key] for key in ("rank_ties", "template_groups", "det", "searches")},
        "images": images_fingerprint(*(file for file in (embeddings, probes) if file is not None)),
        "engine": searched["engine"],
        **skipped_counts(embeddings, probes),
        "degenerate": degenerate,
        **({"calibration": searched["calibration"]} if "calibration" in searched else {}),
        "top_nonmated": searched["top_nonmated"],
    }


class _SearchDescriber:
    """A non-mated search and the template it hit, as the results file lists them: file rows
    (of the probe file and the gallery file with two files), labels, names, paths, groups."""

    def __init__(self, gallery, search_file, gallery_file, template_images):
        self.gallery, self.search_file, self.gallery_file = gallery, search_file, gallery_file
        self.template_images = template_images  # None: every image of the identity
        self.group_names = list(gallery_file.group_names)

    def __call__(self, k, template, score):
        row = int(self.gallery.search_rows[self.gallery.n_mated + k])
        label = self.gallery.template_label[template]
        rows = np.flatnonzero(self.gallery_file.identity == label)[: self.template_images]
        return {
            "row": row,
            "score": score,
            **_image_labels(self.search_file, row),
            "group": self.group_names[int(self.gallery.search_group[self.gallery.n_mated + k])],
            "template": {
                "rows": [int(r) for r in rows],
                "identity": int(label),
                "identity_name": _image_labels(self.gallery_file, int(rows[0]))["identity_name"],
                "path": (None if self.gallery_file.image_paths is None
                         else [str(self.gallery_file.image_paths[r]) for r in rows]),
                "group": self.group_names[int(self.gallery.template_group[template])],
            },
        }


def _image_labels(embeddings, row):
    """A row's identity label, identity name and path (None where the file has none)."""
    names, paths = embeddings.identity_names, embeddings.image_paths
    return {"identity": int(embeddings.identity[row]),
            "identity_name": None if names is None else str(names[row]),
            "path": None if paths is None else str(paths[row])}


def identify(gallery, group_names, targets, rank=1, ranks=DEFAULT_RANKS, tile=8192,
             screening=PRECISIONS["fp32"], info=None, progress=False, rank_ties="optimistic",
             calibration=None, describe_search=None):
    """Search a built Gallery (templates and searches may be any canonical rows: images, or
    IJB templates): thresholds at the target FPIRs, FNIR and FPIR overall and per group, the
    false-positive matrix, CMC and DET, as the results file's keys. With a `calibration` (the
    gallery's keys set by `_set_keys`), every score is the calibrated one. With
    `describe_search(k, template, score)` (k counts the non-mated searches from 0), also
    `top_nonmated`, the best-scoring non-mated searches."""
    info = info or DistInfo()
    check_targets(targets, gallery.n_nonmated)
    numbers, rescored = search_gallery(gallery, max(max(ranks), rank), tile, screening, info,
                                       progress, ties_ahead=rank_ties == "pessimistic",
                                       calibration=calibration)
    mated_scores, counts, best, best_index = numbers
    ranks_of_mated = counts + 1
    numbers = (mated_scores, ranks_of_mated, best, best_index)
    results = [
        _results_at(target, search.threshold_of_scores(np.sort(best)[::-1], target), numbers,
                    gallery, group_names, rank)
        for target in targets
    ]
    logger.info("%d templates, %d mated and %d non-mated searches", len(gallery.templates),
                gallery.n_mated, gallery.n_nonmated)
    result = {
        "group_names": group_names,
        "n_templates": len(gallery.templates),
        "n_mated": gallery.n_mated,
        "n_nonmated": gallery.n_nonmated,
        "rank": rank,
        "ranks": list(ranks),
        "results": results,
        "cmc": _cmc(ranks_of_mated, gallery.search_group[: gallery.n_mated], group_names, ranks),
        "rank_ties": rank_ties,
        "template_groups": np.bincount(gallery.template_group,
                                       minlength=len(group_names)).tolist(),
        "det": _det(numbers, gallery, group_names, rank),
        "searches": {"mated_group": gallery.search_group[: gallery.n_mated].tolist(),
                     "nonmated_group": gallery.search_group[gallery.n_mated :].tolist()},
        "engine": {"precision": screening.name, "n_rescored_pairs": rescored, "tile": tile,
                   "device": gallery.templates.device.type, "world_size": info.world_size},
    }
    if calibration is not None:
        from mfftools.calibration.protocols import describe

        result["calibration"] = describe(calibration, gallery.search_keys)
    if describe_search is not None:
        result["top_nonmated"] = top_nonmated(best, best_index, gallery, group_names,
                                              describe_search)
    return result


def top_nonmated(best, best_index, gallery, group_names, describe_search, count=TOP_NONMATED):
    """{"count", "all": [...], "groups": {name: [...]}}: the `count` non-mated searches with the
    highest best scores, overall and per group of the search, each as `describe_search(k,
    template, score)` gives it; ties go to the search counted first (the lower file row)."""
    order = np.lexsort((np.arange(len(best)), -best.astype(np.float64)))
    nonmated_group = gallery.search_group[gallery.n_mated :][order]

    def listed(picked):
        return [describe_search(int(k), int(best_index[k]), float(best[k]))
                for k in picked[:count]]

    return {"count": count, "all": listed(order),
            "groups": {name: listed(order[nonmated_group == g])
                       for g, name in enumerate(group_names)}}


def _set_keys(gallery, calibration, search_file, group_names):
    """The calibration keys of the gallery's searches (rows of `search_file`) and templates."""
    from mfftools.calibration.protocols import row_keys, template_keys

    gallery.search_keys = row_keys(calibration, search_file, gallery.searches,
                                   gallery.search_rows)
    gallery.template_keys = template_keys(calibration, gallery.templates,
                                          gallery.template_group, group_names)
