"""Score calibration and fairness mitigation from Python: fit a method on labelled pairs, apply
it, cross-validate methods (`mfftools calibrate fit | apply | cross-val` run these functions).

Pairs are given as `mfftools.pairs` takes them: an embeddings file holding pairs (or an
images-layout file with a pair list naming its images, `pair_list`), or two arrays whose row k
is pair k, with `issame` and each pair's group.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

from mfftools import arrays
from mfftools.api.inputs import (
    EmbeddingsLike,
    Labels,
    PathLike,
    Rates,
    rates,
    without_array_source,
)
from mfftools.api.results import CalibrationResult
from mfftools.calibration import pipeline, store
from mfftools.calibration.calibrators import DEFAULT_BINS
from mfftools.calibration.methods import DEFAULT_CLUSTERS, DEFAULT_FIT_FPR, Settings
from mfftools.errors import MfftoolsError
from mfftools.evaluation import text

PairsLike = Optional[EmbeddingsLike]


@dataclass(eq=False, repr=False)
class Calibration:
    """A fitted calibration method: apply it to pairs (`apply`), pass it to `mfftools.instance`,
    `identification` or `pairs` (`calibration=`), or write its file (`save`). `file`: the
    calibration file it was read from or last written to. Its repr is what `calibrate fit`
    prints."""

    fitted: store.Calibration
    n_images: Optional[int] = None
    file: Optional[Path] = None

    @property
    def method(self) -> str:
        return self.fitted.method

    @classmethod
    def load(cls, path: PathLike) -> "Calibration":
        """A calibration file written by `save` or `mfftools calibrate fit`."""
        return cls(store.load(path), file=Path(path))

    def save(self, path: PathLike) -> Path:
        """Write the calibration file (.npz, whole or not at all), which results computed with
        this calibration name from now on; returns its path."""
        store.save(self.fitted, path)
        self.file = Path(path)
        return self.file

    def apply(self, embeddings_a: EmbeddingsLike, embeddings_b: PairsLike = None,
              issame: Labels = None, groups: Labels = None, *,
              group_names: Optional[Sequence[str]] = None, folds: Labels = None,
              pair_list: Optional[PathLike] = None, columns: Union[str, dict, None] = None,
              fpr: Rates = pipeline.TARGETS) -> CalibrationResult:
        """The measures of these pairs' calibrated scores (`calibrate apply --json`)."""
        embeddings, pair_set = read_pairs(embeddings_a, embeddings_b, issame, groups,
                                          group_names, folds, pair_list, columns)
        result, _, _ = apply_results(self.fitted, embeddings, pair_set, rates(fpr),
                                     self.file)
        return CalibrationResult(result)

    def __repr__(self) -> str:
        return text.fit_summary(self.method, self.fitted.fitted.calibrator,
                                self.fitted.origin.get("n_pairs"), self.n_images,
                                self.fitted.fitted.n_fallbacks)


def calibrate(embeddings_a: EmbeddingsLike, embeddings_b: PairsLike = None,
              issame: Labels = None, groups: Labels = None, *, method: str,
              group_names: Optional[Sequence[str]] = None, folds: Labels = None,
              pair_list: Optional[PathLike] = None, columns: Union[str, dict, None] = None,
              calibrator: str = "beta", clusters: int = DEFAULT_CLUSTERS,
              bins: int = DEFAULT_BINS, fit_fpr: float = DEFAULT_FIT_FPR,
              seed: int = 0) -> Calibration:
    """Fit `method` (baseline, beta, isotonic, binning, faircal, fsn, gst, oracle, group-norm)
    on every pair given (see the module docstring); nothing is written (`save` writes it)."""
    settings = Settings(calibrator=calibrator, clusters=clusters, bins=bins, fit_fpr=fit_fpr,
                        seed=seed)
    embeddings, pair_set = read_pairs(embeddings_a, embeddings_b, issame, groups, group_names,
                                      folds, pair_list, columns)
    n_images = pair_set.n_images
    fitted = pipeline.fit_calibration(pair_set, method, settings, embeddings=embeddings)
    return Calibration(fitted, n_images)


def cross_validate(embeddings_a: EmbeddingsLike, embeddings_b: PairsLike = None,
                   issame: Labels = None, groups: Labels = None, *,
                   methods: Union[str, Sequence[str]],
                   group_names: Optional[Sequence[str]] = None, folds: Labels = None,
                   pair_list: Optional[PathLike] = None, columns: Union[str, dict, None] = None,
                   n_folds: Optional[int] = None, fpr: Rates = pipeline.TARGETS,
                   calibrator: str = "beta", clusters: int = DEFAULT_CLUSTERS,
                   bins: int = DEFAULT_BINS, fit_fpr: float = DEFAULT_FIT_FPR, seed: int = 0,
                   progress: bool = False) -> CalibrationResult:
    """Each fold tested with every method fitted on the other folds (`calibrate cross-val`):
    the pairs' own folds (`folds`, or the file's), else `n_folds` (10) contiguous folds per
    group. `progress`: a progress bar over the folds."""
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(unit="fold", desc="cross-validation")

    def advance(number, total):
        bar.total = total
        bar.update(1)

    try:
        result = cross_validation_results(
            embeddings_a, embeddings_b, issame, groups, methods=methods,
            group_names=group_names, folds=folds, pair_list=pair_list, columns=columns,
            n_folds=n_folds, fpr=fpr, calibrator=calibrator, clusters=clusters, bins=bins,
            fit_fpr=fit_fpr, seed=seed, on_fold=advance if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
    return CalibrationResult(result)


def cross_validation_results(embeddings_a, embeddings_b=None, issame=None, groups=None, *,
                             methods, group_names=None, folds=None, pair_list=None,
                             columns=None, n_folds=None, fpr=pipeline.TARGETS,
                             calibrator="beta", clusters=DEFAULT_CLUSTERS, bins=DEFAULT_BINS,
                             fit_fpr=DEFAULT_FIT_FPR, seed=0, on_fold=None) -> dict:
    """`calibrate cross-val`'s results dict (see `cross_validate`); `on_fold(number, total)` is
    called as each fold starts."""
    settings = Settings(calibrator=calibrator, clusters=clusters, bins=bins, fit_fpr=fit_fpr,
                        seed=seed)
    embeddings, pair_set = read_pairs(embeddings_a, embeddings_b, issame, groups, group_names,
                                      folds, pair_list, columns)
    if n_folds is not None and (isinstance(n_folds, bool) or not isinstance(n_folds, int)
                                or n_folds < 2):
        raise MfftoolsError(f"--folds must be an integer of at least 2, got {n_folds!r}")
    methods = [methods] if isinstance(methods, str) else list(methods)
    result = pipeline.cross_validate(pair_set, methods, settings, n_folds=n_folds,
                                     targets=rates(fpr), on_fold=on_fold)
    return without_array_source(result, embeddings)


def read_pairs(first, second=None, issame=None, groups=None, group_names=None, folds=None,
               pair_list=None, columns=None) -> tuple:
    """(embeddings, PairSet) of pairs given as the module docstring says; `columns` maps a pair
    list's column names (a dict, or `path1=p1,...` as --columns takes it)."""
    from mfftools.data.table import parse_column_map
    from mfftools.pair_data import read_pair_set

    embeddings = arrays.pairs(first, second, issame, groups, group_names, folds)
    if isinstance(columns, str):
        columns = parse_column_map(columns)
    return embeddings, read_pair_set(embeddings, pair_list, columns)


def resolve_calibration(calibration, *embeddings) -> Tuple[Optional[store.Calibration],
                                                           Optional[Path]]:
    """(the fitted calibration, the file it was read from) of a Calibration, a calibration
    file's path or None; checked against each of `embeddings` (None entries skipped)."""
    if calibration is None:
        return None, None
    if arrays.is_path(calibration):
        fitted, file = store.load(calibration), Path(calibration)
    elif isinstance(calibration, Calibration):
        fitted, file = calibration.fitted, calibration.file
    else:
        raise MfftoolsError("calibration must be a Calibration (mfftools.calibrate) or a "
                            f"calibration file's path, not {type(calibration).__name__}")
    for source in embeddings:
        if source is not None:
            fitted.check_embeddings(source)
    return fitted, file


def apply_results(fitted, embeddings, pair_set, targets, calibration_file=None):
    """(`calibrate apply`'s results dict, the ScoredPairs, the Applied output) of a fitted
    calibration on the pairs of `embeddings` (read into `pair_set`)."""
    fitted.check_embeddings(embeddings)
    scored = pipeline.ScoredPairs.of(pair_set, in_place=True)
    applied = pipeline.apply_calibration(fitted, scored, release_rows=True)
    measures = pipeline.evaluate_applied(applied, scored, targets, fitted.settings.bins)
    measures["fallbacks"] = {"fitted": fitted.fitted.n_fallbacks,
                             "test_pairs": int(applied.fallback.sum())}
    result = {"protocol": "calibration", "folds": 1, "fold_assignment": "none",
              "group_names": list(pair_set.group_names),
              "targets": list(measures["tpr_at_fpr"]), "n_pairs": int(pair_set.n_pairs),
              "n_images": pair_set.n_images,
              "calibration_file": None if calibration_file is None else str(calibration_file),
              "methods": {fitted.method: measures}, "source": pair_set.source}
    return without_array_source(result, embeddings), scored, applied
