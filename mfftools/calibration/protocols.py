"""A calibration inside the instance and identification protocols: the keys of their rows and
the score map their engine passes use (mfftools.calibration.score_map).

Each image's key is its cluster (faircal, fsn) or its group (gst, oracle, group-norm), as for the
pairs a calibration is fitted on (pipeline.image_keys_for): an image of the very embeddings it was
fitted on (the same data_sha256) keeps its recorded cluster, any other image gets its nearest
centroid; a group is matched by name (-1 for a group the calibration never saw). A template of
1:N identification, or an IJB template of template-eval, is keyed like an image: its cluster is
the nearest centroid of its (canonical) row, its group the identity's (the subject's); a template
in no group (-1) has the key -1, as a group the calibration never saw.
"""
import numpy as np

from mfftools.calibration.kmeans import assign
from mfftools.calibration.methods import key_kind
from mfftools.calibration.score_map import ScoreMap
from mfftools.pair_data import rows_sha256


def group_keys(calibration, group_names, group):
    """The calibration's group index of each group index `group` of a file with these names
    (-1 for a group it never saw, and for the group index -1: no group)."""
    position = {name: index for index, name in enumerate(calibration.group_names)}
    mapping = np.array([position.get(name, -1) for name in group_names] + [-1], dtype=np.int64)
    group = np.asarray(group, dtype=np.int64)
    return mapping[np.where(group < 0, len(group_names), group)]


def row_keys(calibration, embeddings, rows, order):
    """Keys of the rows `order` (file rows, in the order of `rows`) of `embeddings`, whose
    canonical rows are `rows` (a torch tensor)."""
    kind = key_kind(calibration.method)
    if kind == "cluster":
        recorded = calibration.cluster_of_image
        if (recorded is not None and len(recorded) == embeddings.n_rows
                and rows_sha256(embeddings) == calibration.data_sha256):
            return np.asarray(recorded, dtype=np.int64)[order]
        return assign(rows.cpu().numpy(), calibration.centroids)
    if kind == "group":
        return group_keys(calibration, embeddings.group_names, embeddings.group[order])
    return np.zeros(len(order), dtype=np.int64)


def template_keys(calibration, templates, template_group, group_names):
    """Keys of templates (canonical rows, torch) of groups `template_group`."""
    kind = key_kind(calibration.method)
    if kind == "cluster":
        return assign(templates.cpu().numpy(), calibration.centroids)
    if kind == "group":
        return group_keys(calibration, group_names, template_group)
    return np.zeros(len(templates), dtype=np.int64)


def score_map(calibration, left_keys, right_keys):
    """The engine's score map for pairs of rows with these keys (None without calibration)."""
    if calibration is None:
        return None
    return ScoreMap(calibration.fitted, left_keys, right_keys)


def describe(calibration, keys, counted="images"):
    """The results file's `calibration` entry: what was applied, and how many images (keys;
    `counted` names what they key: `<counted>_with_fallback`) fell back (a group the
    calibration never saw, or a cluster or group fitted globally)."""
    fallback = calibration.fitted.fallback
    keys = np.asarray(keys, dtype=np.int64)
    fell_back = 0
    if fallback is not None:
        slots = np.where(keys < 0, calibration.fitted.n_keys, keys)
        fell_back = int(fallback[slots].sum())
    return {
        "method": calibration.method,
        "calibrator": calibration.fitted.calibrator,
        "settings": calibration.meta()["settings"],
        "data_sha256": calibration.data_sha256,
        "fallbacks": calibration.fitted.n_fallbacks,
        f"{counted}_with_fallback": fell_back,
        "score": "the calibrated confidence p in [0, 1], rounded to float32",
    }
