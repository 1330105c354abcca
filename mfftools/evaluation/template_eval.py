"""`template-eval`: IJB-B / IJB-C templates, 1:1 and 1:N, overall and per demographic group.

The embeddings file holds one row per image with its template, media and detector score
(`mfftools extract IJBC/ --ijb`). Templates are built once (templates.py); the 1:1 pair list is
streamed (template_verification.py); each 1:N gallery is searched by the probe templates
(template_identification.py). Groups come from the subject metadata, joined to templates through
the 1:N lists (TEMPLATE_ID -> SUBJECT_ID): a template whose subject has no metadata is in the
group `unannotated` (counted), a template in no list has no group (counted; 1:1 only).

With a calibration (`mfftools calibrate fit`, for this model) every score, 1:1 and 1:N, is the
calibrated confidence of its two templates (calibration.protocols keys each template: the nearest
centroid of its row, or its subject's group, which needs --metadata).
"""
import logging

import numpy as np

from mfftools.data.ijb_protocol import read_metadata, read_template_list, read_template_pairs
from mfftools.errors import MfftoolsError
from mfftools.evaluation.identification import DEFAULT_RANKS
from mfftools.evaluation.template_identification import (
    FPIR_TARGETS,
    evaluate_template_identification,
)
from mfftools.evaluation.template_verification import TARGETS, evaluate_verification
from mfftools.evaluation.templates import TemplateSettings, build_templates
from mfftools.fingerprint import images_fingerprint

logger = logging.getLogger(__name__)

UNANNOTATED = "unannotated"
DEFAULT_GROUP_BY = ("skintone", "gender")


def template_groups(templates, lists, metadata, group_by=DEFAULT_GROUP_BY):
    """(group names, each template's group index (-1: in no list), the counts of templates in
    no list and of templates whose subject has no metadata)."""
    subject_of = {}
    for listed in lists:
        for template, subject in zip(listed.templates.tolist(), listed.subjects.tolist()):
            if subject_of.setdefault(template, subject) != subject:
                raise MfftoolsError(f"{listed.path}: template {template} belongs to subject "
                                    f"{subject} here and to {subject_of[template]} in another "
                                    "list")
    groups = read_metadata(metadata, group_by)
    names = list(groups.group_names)
    index = {name: k for k, name in enumerate(names)}
    template_group = np.full(len(templates), -1, dtype=np.int64)
    unannotated = 0
    for row, template in enumerate(templates.ids.tolist()):
        if template not in subject_of:
            continue
        name = groups.group_of.get(subject_of[template])
        if name is None:
            unannotated += 1
            if UNANNOTATED not in index:
                index[UNANNOTATED] = len(names)
                names.append(UNANNOTATED)
            name = UNANNOTATED
        template_group[row] = index[name]
    if unannotated:
        logger.warning("%d templates' subjects have no metadata: group %s", unannotated,
                       UNANNOTATED)
    return names, template_group, int(np.count_nonzero(template_group < 0)), unannotated


def evaluate_templates(embeddings, pairs=None, galleries=(), probes=None, metadata=None,
                       group_by=DEFAULT_GROUP_BY, settings=TemplateSettings(), far_targets=TARGETS,
                       fpir_targets=FPIR_TARGETS, ranks=DEFAULT_RANKS, skip_missing=False,
                       calibration=None):
    """The results dict of `template-eval` (see docs/template-eval.md for its keys); of the
    calibrated scores with a `calibration` (mfftools.calibration.store.Calibration, refused
    when fitted for another model)."""
    if embeddings.layout != "images":
        raise MfftoolsError(f"{embeddings.path}: template-eval needs an 'images'-layout file")
    if pairs is None and not galleries:
        raise MfftoolsError("nothing to evaluate: give --pairs (1:1) and/or --gallery and "
                            "--probes (1:N)")
    if bool(galleries) != (probes is not None):
        raise MfftoolsError("1:N needs both --gallery (one or more) and --probes")
    if metadata is not None and not galleries:
        raise MfftoolsError("--metadata joins subjects to templates through the 1:N lists: "
                            "give --gallery and --probes too")
    if calibration is not None:
        _check_calibration(calibration, embeddings, metadata)
    gallery_lists = [read_template_list(path) for path in galleries]
    probe_list = read_template_list(probes) if probes is not None else None
    templates = build_templates(embeddings, settings)
    attrs = embeddings.attrs
    result = {
        "protocol": "template",
        "embeddings": str(embeddings.path),
        "n_images": embeddings.n_rows,
        "n_templates": len(templates),
        "n_media": int(templates.n_media.sum()),
        "settings": {
            "norm": settings.norm,
            "detector_score": settings.detector_score,
            "flip": bool(attrs["flip"]) if "flip" in attrs else None,
            "aligned": bool(attrs["aligned"]) if "aligned" in attrs else None,
            "alignment_template": (str(attrs["alignment_template"])
                                   if "alignment_template" in attrs else None),
        },
    }
    if embeddings.model_name is not None:
        result["model"] = embeddings.model_name
    result["images"] = images_fingerprint(embeddings)
    template_group, group_names = None, None
    if metadata is not None:
        group_names, template_group, outside, unannotated = template_groups(
            templates, gallery_lists + [probe_list], metadata, group_by)
        result.update({"metadata": str(metadata), "group_by": list(group_by),
                       "group_names": group_names, "n_templates_in_no_list": outside,
                       "n_unannotated_templates": unannotated})
    keys = score_map = None
    if calibration is not None:
        keys, score_map = _calibration_keys(calibration, templates, template_group, group_names)
    missing = set()
    skipped_pairs = 0
    if pairs is not None:
        listed = read_template_pairs(pairs, templates.ids, skip_missing=skip_missing)
        missing.update(listed.missing)
        skipped_pairs = listed.n_skipped
        result["pairs"] = str(pairs)
        result.update(evaluate_verification(templates, listed, far_targets, template_group,
                                            group_names, score_map=score_map))
    if galleries:
        names = group_names if group_names is not None else ["all"]
        groups = template_group if template_group is not None else np.zeros(len(templates),
                                                                              np.int64)
        result["identification"] = evaluate_template_identification(
            templates, gallery_lists, probe_list, groups, names, fpir_targets, ranks,
            skip_missing, missing, calibration=calibration, keys=keys)
    if calibration is not None:
        from mfftools.calibration.protocols import describe

        result["calibration"] = describe(calibration, keys, counted="templates")
    result["skipped"] = {"pairs": skipped_pairs, "n_templates": len(missing),
                         "templates": sorted(missing)[:100]}
    return result


def _check_calibration(calibration, embeddings, metadata):
    """Refuse a calibration for another model, or one keyed by group without --metadata."""
    from mfftools.calibration.methods import key_kind

    calibration.check_embeddings(embeddings)
    if key_kind(calibration.method) == "group" and metadata is None:
        raise MfftoolsError(
            f"a {calibration.method} calibration keys each template by its subject's group: "
            "give --metadata (with --gallery and --probes, which join subjects to templates)")


def _calibration_keys(calibration, templates, template_group, group_names):
    """Each template's calibration key (calibration.protocols.template_keys; no group: -1) and
    the score map of template pairs."""
    from mfftools.calibration import protocols

    if template_group is None:
        template_group, group_names = np.full(len(templates), -1, dtype=np.int64), []
    keys = protocols.template_keys(calibration, templates.rows, template_group, group_names)
    return keys, protocols.score_map(calibration, keys, keys)
