"""Files from Python: the embeddings file (`load`, `save`) and the report of results (`report`),
written whole or not at all, only where asked."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import numpy as np

from mfftools import arrays
from mfftools.api.inputs import EmbeddingsLike, Labels, PathLike
from mfftools.api.results import Result
from mfftools.embeddings import Embeddings, EmbeddingsWriter, open_embeddings, partial_path
from mfftools.errors import MfftoolsError
from mfftools.reporting.build import PERMUTATIONS, ReportFiles, write_report
from mfftools.reporting.claims import ALPHA

_BLOCK_ROWS = 65536


def load(path: PathLike) -> Embeddings:
    """An embeddings file, opened and checked: its labels in memory (`identity`, `group`,
    `group_names`, `identity_names`, `issame`, ...), its rows read on demand (`read()`). Pass
    it wherever the API takes embeddings, to read its labels once for several evaluations."""
    return open_embeddings(path)


def save(path: PathLike, embeddings: EmbeddingsLike, identities: Labels,
         groups: Labels = None, *,
         group_names: Optional[Sequence[str]] = None,
         image_paths: Optional[Sequence[str]] = None,
         model: Optional[str] = None) -> Path:
    """Write an images-layout embeddings file (docs/embeddings-file.md) of an array [N, D]
    (numpy, or a torch tensor on any device) and its labels, read back as `mfftools.load` and
    every command reads it: the rows as float32 (float16 rows as they are; every reader reads
    float32), each identity's label (integers as they are, other labels numbered in sorted
    order) and name (the label as text), groups, `image_paths` (default: each row's number) and
    `model` (the model's name in results). Whole or not at all: under a temporary name until
    complete. Returns the path."""
    source = arrays.images(embeddings, identities, groups, group_names)
    paths = (np.arange(source.n_rows).astype(str) if image_paths is None
             else np.asarray(image_paths, dtype=str))
    if paths.shape != (source.n_rows,):
        raise MfftoolsError(f"image_paths must hold one path per embedding ({source.n_rows}), "
                            f"found shape {paths.shape}")
    # every reader reads rows as float32: float16 rows are kept as they are, others as float32
    dtype = np.dtype(np.float16 if source.dtype == np.float16 else np.float32)
    attrs = {} if model is None else {"model": str(model)}
    writer = EmbeddingsWriter.create(path, layout="images", dim=source.dim, dtype=dtype,
                                     group_names=source.group_names, attrs=attrs,
                                     optional_columns=("identity_name",))
    try:
        for first, rows in source.iter_blocks(block_rows=_BLOCK_ROWS):
            stop = first + len(rows)
            writer.append(rows.astype(dtype), identity=source.identity[first:stop],
                          group=source.group[first:stop], path=paths[first:stop].tolist(),
                          identity_name=source.identity_names[first:stop].tolist())
    except BaseException:
        writer.close()
        partial_path(path).unlink(missing_ok=True)  # nothing to resume: the arrays are at hand
        raise
    writer.finish()
    return Path(path)


ResultLike = Union[Result, dict, PathLike]


def report(results: Union[Sequence[ResultLike], Mapping[str, Union[ResultLike,
                                                                  Sequence[ResultLike]]]],
           out_dir: PathLike, *, bootstrap: int = 1000, permutations: int = PERMUTATIONS,
           alpha: float = ALPHA, seed: int = 0,
           title: str = "mfftools report", images: bool = True) -> ReportFiles:
    """The report of `results` (`mfftools report`) in `out_dir`: report.html, report.md,
    claims.json (the significance statements, with their tests and p-values) and the figures.

    `results`: results of any protocols and models, each a result object of this API, a results
    dict or a results file's path; or a mapping from each model's name to its result(s). A
    result takes its model from the mapping, else its `model`, else "result K" (its position).
    Instance results of two models on the same images are compared by paired tests over
    identities. `images=False` leaves the faces out of the galleries (`--no-images`). Returns
    the paths written (`html`, `markdown`, `claims`, `figures`)."""
    if isinstance(results, Mapping):
        named = [(model, item) for model, found in results.items()
                 for item in ([found] if _is_one(found) else found)]
    else:
        named = [(None, item) for item in results]
    files = [_result_file(item, model, k + 1) for k, (model, item) in enumerate(named)]
    return write_report(files, out_dir, bootstrap=bootstrap, seed=seed, title=title,
                        alpha=alpha, permutations=permutations, images=images)


def _is_one(value):
    return isinstance(value, (Result, dict)) or arrays.is_path(value)


def _result_file(item, model, position):
    """A ResultFile of a result object, a results dict or a results file's path."""
    from mfftools.reporting.results import load_result, result_file

    if arrays.is_path(item):
        return load_result(item, model)
    if isinstance(item, Result):
        item = item.to_dict()
    if not isinstance(item, dict):
        raise MfftoolsError(f"result {position}: a result of mfftools, a results dict or a "
                            f"results file's path, not {type(item).__name__}")
    label = f"result {position}"
    if model is None and not (isinstance(item.get("model"), str) and item["model"].strip()):
        model = label
    return result_file(item, f"<{label}>", model)
