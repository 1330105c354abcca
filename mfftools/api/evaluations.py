"""The protocols from Python: the instance protocol, the pair protocol, open-set identification
and IJB templates, on arrays or embeddings files.

Each public function reads its inputs into the embeddings objects the protocols take
(`mfftools.arrays`: an array is read as a file is), then calls the same function the command
calls (`instance_results`, `pair_results`, `identification_results`, `template_results`), so
the command line and Python give the same numbers by one path. Nothing is written, nothing
printed, and no process-wide setting is left changed.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np

from mfftools import arrays
from mfftools.api.calibration import Calibration, resolve_calibration
from mfftools.api.inputs import (
    Device,
    EmbeddingsLike,
    Labels,
    PathLike,
    Rates,
    device_for,
    name_model,
    rates,
    source_of,
    without_array_source,
)
from mfftools.api.results import (
    IdentificationResult,
    InstanceResult,
    PairResult,
    TemplateResult,
)
from mfftools.errors import MfftoolsError
from mfftools.evaluation.identification import DEFAULT_RANKS
from mfftools.evaluation.template_identification import FPIR_TARGETS
from mfftools.evaluation.template_verification import TARGETS as FAR_TARGETS

CalibrationLike = Optional[Union[Calibration, PathLike]]


def instance(embeddings: EmbeddingsLike, identities: Labels = None, groups: Labels = None, *,
             group_names: Optional[Sequence[str]] = None, fpr: Rates = 1e-5,
             method: str = "bisection", det: bool = False,
             reference_group: Optional[str] = None, calibration: CalibrationLike = None,
             allow_degenerate: bool = False, tile: int = 8192, device: Device = "auto",
             precision: str = "auto", name: Optional[str] = None,
             progress: bool = False) -> InstanceResult:
    """The instance protocol (`mfftools inst-eval`) on `embeddings`: an array [N, D] (numpy, or
    a torch tensor on any device) with each row's identity and group, or an images-layout
    embeddings file (its path, or `mfftools.load`'s object), which holds its own labels.

    `fpr`: one target FPR or several; `method`: bisection, exact or both; `calibration`: a
    `mfftools.calibrate` result or a calibration file; `name`: the model's name in the results.
    `device="auto"` computes where a CUDA tensor lives, else on CUDA when there is one.
    """
    source = arrays.images(embeddings, identities, groups, group_names)
    data = instance_results(source, fpr=fpr, method=method, det=det,
                            reference_group=reference_group, calibration=calibration,
                            allow_degenerate=allow_degenerate, tile=tile,
                            device=device_for(device, embeddings), precision=precision,
                            name=name, progress=progress)
    return InstanceResult(data, _identity_names(source))


def instance_results(embeddings, *, fpr=1e-5, method="bisection", det=False,
                     reference_group=None, calibration=None, allow_degenerate=False,
                     tile=8192, device="auto", precision="auto", name=None, progress=False,
                     dist_info=None) -> dict:
    """inst-eval's results dict of an images-layout embeddings file (a path or an opened
    Embeddings), its `source`, calibration file and model recorded as the command records
    them; `dist_info`: this process's place in a torchrun job."""
    from mfftools.evaluation.instance import evaluate_instance

    embeddings = arrays.images(embeddings)
    fitted, calibration_file = resolve_calibration(calibration, embeddings)
    methods = ("bisection", "exact") if method == "both" else (
        (method,) if isinstance(method, str) else tuple(method))
    result = evaluate_instance(
        embeddings, targets=rates(fpr, "fpr"), methods=methods, tile=tile, device=device,
        precision=precision, progress=progress, dist_info=dist_info,
        reference_group=reference_group, det=det, allow_degenerate=allow_degenerate,
        calibration=fitted)
    return _recorded(result, name, (embeddings,), calibration_file)


def pairs(embeddings_a: EmbeddingsLike, embeddings_b: Optional[EmbeddingsLike] = None,
          issame: Labels = None, groups: Labels = None, *,
          group_names: Optional[Sequence[str]] = None, folds: Labels = None,
          only_groups: Optional[Sequence[str]] = None, grid: Optional[str] = None,
          calibration: CalibrationLike = None, allow_dropped_pairs: bool = False,
          allow_degenerate: bool = False, name: Optional[str] = None) -> PairResult:
    """The pair protocol (`mfftools pair-eval`): two arrays [P, D] whose row k is pair k, with
    `issame` [P] and each pair's group (names or indices), or an embeddings file holding pairs.

    `folds`: each pair's fold (default: 10 contiguous folds per group, as RFW's); `only_groups`:
    the groups to evaluate (pair-eval --groups); `grid`: insightface or mixfairface."""
    source = arrays.pairs(embeddings_a, embeddings_b, issame, groups, group_names, folds)
    return PairResult(pair_results(source, only_groups=only_groups, grid=grid,
                                   calibration=calibration,
                                   allow_dropped_pairs=allow_dropped_pairs,
                                   allow_degenerate=allow_degenerate, name=name))


def pair_results(embeddings, *, only_groups=None, grid=None, calibration=None,
                 allow_dropped_pairs=False, allow_degenerate=False, name=None) -> dict:
    """pair-eval's results dict of an embeddings file holding pairs (a path or an opened
    Embeddings), the calibration file and model recorded as the command records them."""
    from mfftools.pair_data import evaluate_embeddings

    embeddings = arrays.pairs(embeddings)
    fitted, calibration_file = resolve_calibration(calibration, embeddings)
    result = evaluate_embeddings(embeddings, only_groups, calibration=fitted, grid=grid,
                                 allow_dropped_pairs=allow_dropped_pairs,
                                 allow_degenerate=allow_degenerate,
                                 calibration_file=calibration_file)
    name_model(result, name, embeddings)
    return without_array_source(result, embeddings)


def identification(embeddings: EmbeddingsLike, identities: Labels = None,
                   groups: Labels = None, *, group_names: Optional[Sequence[str]] = None,
                   probes: Optional[EmbeddingsLike] = None, probe_identities: Labels = None,
                   probe_groups: Labels = None, gallery_images: Optional[int] = None,
                   fpir: Rates = 1e-2, rank: int = 1, ranks: Sequence[int] = DEFAULT_RANKS,
                   rank_ties: str = "optimistic", match_by: Optional[str] = None,
                   calibration: CalibrationLike = None, allow_degenerate: bool = False,
                   tile: int = 8192, device: Device = "auto",
                   precision: str = "auto", name: Optional[str] = None,
                   progress: bool = False) -> IdentificationResult:
    """Open-set identification, 1:N (`mfftools ident-eval`): `embeddings` split into a gallery
    (`gallery_images` per template, default 1) and searches, or with `probes` the gallery
    (every identity a template) and the searches, each an array with its identities and
    groups or an images-layout embeddings file. Searches find their template by identity name
    (an array's names are its labels as text) unless `match_by="label"`."""
    if probes is None and (probe_identities is not None or probe_groups is not None):
        raise MfftoolsError("probe_identities and probe_groups go with probes")
    embeddings, probes = arrays.opened(embeddings), arrays.opened(probes)
    names = group_names
    if probes is not None and names is None:  # arrays name their groups as the other input
        names = next((source.group_names for source in (embeddings, probes)
                      if not arrays.is_array(source)), None) or \
            arrays.shared_group_names(groups, probe_groups)
    gallery = arrays.images(embeddings, identities, groups,
                            names if arrays.is_array(embeddings) else group_names)
    searches = None if probes is None else arrays.images(
        probes, probe_identities, probe_groups,
        names if arrays.is_array(probes) else group_names, name="probes")
    return IdentificationResult(identification_results(
        gallery, searches, gallery_images=gallery_images, fpir=fpir, rank=rank, ranks=ranks,
        rank_ties=rank_ties, match_by=match_by, calibration=calibration,
        allow_degenerate=allow_degenerate, tile=tile,
        device=device_for(device, embeddings, probes), precision=precision, name=name,
        progress=progress))


def identification_results(embeddings, probes=None, *, gallery_images=None, fpir=1e-2,
                           rank=1, ranks=DEFAULT_RANKS, rank_ties="optimistic", match_by=None,
                           calibration=None, allow_degenerate=False, tile=8192, device="auto",
                           precision="auto", name=None, progress=False,
                           dist_info=None) -> dict:
    """ident-eval's results dict of one images-layout file split into a gallery, or of a
    gallery file and a probe file (paths or opened Embeddings), recorded as the command
    records them; `dist_info`: this process's place in a torchrun job."""
    from mfftools.evaluation.identification import evaluate_identification

    if probes is None and match_by is not None:
        raise MfftoolsError("--match-by applies to --gallery G.h5 --probes P.h5; one file split "
                            "into a gallery has one set of labels")
    if probes is not None and gallery_images is not None:
        raise MfftoolsError("--gallery-images applies to one file split into a gallery; with "
                            "--gallery every image of an identity joins its template")
    first = arrays.images(embeddings)
    second = arrays.images(probes) if probes is not None else None
    fitted, calibration_file = resolve_calibration(calibration, first, second)
    result = evaluate_identification(
        first, second, gallery_images=gallery_images or 1, targets=rates(fpir, "fpir"),
        rank=rank, ranks=ranks, tile=tile, device=device, precision=precision,
        progress=progress, dist_info=dist_info, match_by=match_by, rank_ties=rank_ties,
        allow_degenerate=allow_degenerate, calibration=fitted)
    return _recorded(result, name, (first, second), calibration_file)


def template(embeddings: EmbeddingsLike, templates: Labels = None, media: Labels = None,
             detector_scores: Labels = None, *,
             pairs: Optional[PathLike] = None,
             galleries: Union[PathLike, Sequence[PathLike]] = (),
             probes: Optional[PathLike] = None, metadata: Optional[PathLike] = None,
             group_by: Sequence[str] = ("skintone", "gender"), norm: str = "keep",
             detector_score: str = "weight", far: Rates = FAR_TARGETS,
             fpir: Rates = FPIR_TARGETS, ranks: Sequence[int] = DEFAULT_RANKS,
             skip_missing: bool = False, calibration: CalibrationLike = None,
             name: Optional[str] = None) -> TemplateResult:
    """IJB-B / IJB-C templates (`mfftools template-eval`): 1:1 on the template pair list
    `pairs`, 1:N on each gallery list against the probe list, per group of the subject
    `metadata`. `embeddings`: an IJB embeddings file (`extract --ijb`), or an array [N, D] with
    each image's template and media ids and detector score (needed unless
    `detector_score="ignore"`). The protocol lists are IJB's own files. `calibration`: scores
    calibrated by a `mfftools.calibrate` result or a calibration file (checked by
    evaluate_templates against the embeddings and --metadata)."""
    if arrays.is_array(embeddings):
        if templates is None or media is None:
            raise MfftoolsError("give each image's template and media ids (templates=..., "
                                "media=...) with an array of embeddings")
        source = arrays.images(embeddings, templates, template=templates, media=media,
                               detector_score=detector_scores)
    else:
        given = [label for label, value in (("templates", templates), ("media", media),
                                            ("detector_scores", detector_scores))
                 if value is not None]
        if given:
            raise MfftoolsError(f"{arrays.file_name(embeddings)}: an IJB embeddings file "
                                "holds its own templates, media and detector scores; "
                                f"{', '.join(given)} go with arrays")
        source = arrays.images(embeddings)
    if arrays.is_path(galleries):
        galleries = (galleries,)
    return TemplateResult(template_results(
        source, pairs=pairs, galleries=tuple(galleries), probes=probes, metadata=metadata,
        group_by=tuple(group_by), norm=norm, detector_score=detector_score, far=far,
        fpir=fpir, ranks=ranks, skip_missing=skip_missing, calibration=calibration,
        name=name))


def template_results(embeddings, *, pairs=None, galleries=(), probes=None, metadata=None,
                     group_by=("skintone", "gender"), norm="keep", detector_score="weight",
                     far=FAR_TARGETS, fpir=FPIR_TARGETS, ranks=DEFAULT_RANKS,
                     skip_missing=False, calibration=None, name=None) -> dict:
    """template-eval's results dict of an IJB embeddings file (a path or an opened
    Embeddings), its calibration file and model recorded as the command records them."""
    from mfftools.evaluation.template_eval import evaluate_templates
    from mfftools.evaluation.templates import TemplateSettings

    embeddings = arrays.images(embeddings)
    fitted, calibration_file = resolve_calibration(calibration)
    result = evaluate_templates(
        embeddings, pairs=pairs, galleries=galleries, probes=probes, metadata=metadata,
        group_by=tuple(group_by), settings=TemplateSettings(norm, detector_score),
        far_targets=rates(far, "far"), fpir_targets=rates(fpir, "fpir"), ranks=ranks,
        skip_missing=skip_missing, calibration=fitted)
    if calibration_file is not None:
        result["calibration"]["file"] = str(calibration_file)
    name_model(result, name, embeddings)
    return result


def _recorded(result, name, embeddings, calibration_file):
    """The results as the commands record them: the files they come from (`source`), the
    calibration file, the model's name."""
    source = source_of(*embeddings)
    if source is not None:
        result["source"] = source
    if calibration_file is not None:
        result["calibration"]["file"] = str(calibration_file)
    name_model(result, name, embeddings[0])
    return result


def _identity_names(embeddings):
    """Each identity's name, identities in ascending order of their labels (as the results
    list them); None when the embeddings name none."""
    if embeddings.identity_names is None:
        return None
    labels, first = np.unique(embeddings.identity, return_index=True)
    return np.asarray(embeddings.identity_names)[first]
