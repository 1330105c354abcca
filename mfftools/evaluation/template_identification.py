"""1:N identification of IJB templates, as insightface's current `ijb_evals.py` runs it.

Each gallery (IJB-C: G1 and G2) is searched on its own, with section 7's engine and templates as
rows: its templates are the gallery (one per subject), every probe template is a search, mated
when its subject is enrolled in that gallery and non-mated otherwise. The threshold at a target
FPIR comes from the non-mated searches' best scores (the exact threshold); TPIR counts the mated
searches whose mate is at rank 1 and scores above it (TPIR = 1 - FNIR at rank 1); as there, a
template tying with the mate ranks ahead of it (ident-eval's pessimistic ties). The mean of
the galleries: TPIR averaged over them (as ijb_evals.py), CMC pooled over their mated searches
(ijb_evals.py divides by every probe, which is the same when each probe is mated in one gallery).
With a calibration, every score is the calibrated one (identify's `calibration`), each template
keyed as template-eval keys it (`keys`, one per template row).
"""
import logging

import numpy as np

from mfftools.dist import DistInfo
from mfftools.errors import MfftoolsError
from mfftools.evaluation.identification import DEFAULT_RANKS, Gallery, identify
from mfftools.evaluation.engine.scoring import PRECISIONS

logger = logging.getLogger(__name__)

FPIR_TARGETS = (1e-2, 1e-1)


def _rows(templates, listed, skip_missing, missing):
    """Rows of a list's templates; those without images are an error or, when skipped, left out
    and recorded in `missing`."""
    rows = templates.rows_of(listed.templates)
    absent = rows < 0
    if absent.any():
        if not skip_missing:
            raise MfftoolsError(
                f"{listed.path}: template {int(listed.templates[absent][0])} has no images in "
                f"the embeddings file ({int(absent.sum())} such templates); give --skip-missing "
                "to leave them out (they are counted)")
        missing.update(int(t) for t in listed.templates[absent])
    return rows, ~absent


def search_gallery_list(templates, gallery_list, probe_list, template_group, group_names,
                        targets=FPIR_TARGETS, ranks=DEFAULT_RANKS, skip_missing=False,
                        missing=None, tile=8192, calibration=None, keys=None):
    """Section 7's results for one gallery list searched by every probe template; of the
    calibrated scores with a `calibration` (`keys`: each template row's calibration key)."""
    missing = set() if missing is None else missing
    gallery_rows, present = _rows(templates, gallery_list, skip_missing, missing)
    gallery_rows, subjects = gallery_rows[present], gallery_list.subjects[present]
    distinct, counts = np.unique(subjects, return_counts=True)
    if (counts > 1).any():
        raise MfftoolsError(f"{gallery_list.path}: subject {int(distinct[counts > 1][0])} has "
                            f"{int(counts.max())} templates; a gallery enrols each subject once")
    probe_rows, present = _rows(templates, probe_list, skip_missing, missing)
    probe_rows, probe_subjects = probe_rows[present], probe_list.subjects[present]
    position = {int(subject): k for k, subject in enumerate(subjects)}
    mate = np.array([position.get(int(subject), -1) for subject in probe_subjects], np.int64)
    order = np.concatenate([np.flatnonzero(mate >= 0), np.flatnonzero(mate < 0)])
    if not (mate >= 0).any():
        raise MfftoolsError(f"{gallery_list.path}: no probe's subject is enrolled in it")
    if (mate >= 0).all():
        raise MfftoolsError(f"{gallery_list.path}: every probe's subject is enrolled in it, so "
                            "there are no non-mated searches to set a threshold")
    gallery = Gallery(
        templates=templates.rows[gallery_rows],
        template_group=template_group[gallery_rows],
        template_label=subjects,
        searches=templates.rows[probe_rows[order]],
        search_group=template_group[probe_rows[order]],
        mated=mate[order][: int((mate >= 0).sum())],
    )
    if calibration is not None:
        gallery.search_keys, gallery.template_keys = keys[probe_rows[order]], keys[gallery_rows]
    result = identify(gallery, group_names, targets, rank=1, ranks=ranks, tile=tile,
                      screening=PRECISIONS["fp32"], info=DistInfo(), rank_ties="pessimistic",
                      calibration=calibration)
    for entry in result["results"]:
        entry["tpir"] = None if entry["fnir"] is None else 1.0 - entry["fnir"]
    result["engine"].pop("world_size", None)
    result.pop("calibration", None)  # recorded once, for every template (template_eval)
    return result


def evaluate_template_identification(templates, gallery_lists, probe_list, template_group,
                                     group_names, targets=FPIR_TARGETS, ranks=DEFAULT_RANKS,
                                     skip_missing=False, missing=None, calibration=None,
                                     keys=None):
    """Every gallery list searched on its own, and their mean: the `identification` entry (of
    the calibrated scores with a `calibration`, `keys` one per template row)."""
    targets = tuple(dict.fromkeys(float(target) for target in targets))
    ranks = tuple(sorted(dict.fromkeys(int(k) for k in ranks)))
    galleries = {}
    for listed in gallery_lists:
        name = listed.name
        if name in galleries:
            raise MfftoolsError(f"two galleries are named {name}: give each gallery once")
        galleries[name] = search_gallery_list(templates, listed, probe_list, template_group,
                                              group_names, targets, ranks, skip_missing,
                                              missing, calibration=calibration, keys=keys)
    values = list(galleries.values())
    mean_tpir = []
    for k, target in enumerate(targets):
        tpirs = [gallery["results"][k]["tpir"] for gallery in values]
        mean_tpir.append({"target_fpir": target,
                          "tpir": None if None in tpirs else float(np.mean(tpirs))})
    mated = sum(gallery["n_mated"] for gallery in values)
    cmc = [float(sum(gallery["cmc"]["all"][k] * gallery["n_mated"] for gallery in values) / mated)
           for k in range(len(ranks))]
    return {
        "probes": str(probe_list.path),
        "n_probe_templates": len(probe_list.templates),
        "ranks": list(ranks),
        "galleries": galleries,
        "mean": {"results": mean_tpir, "cmc": cmc},
    }
