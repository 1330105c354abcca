"""Model + images -> embeddings file: batched, streamed to disk, resumable.

Images are decoded by DataLoader workers while the model runs; each batch's rows are appended
to the partial file (`OUT.partial`) as soon as they are computed, so memory does not grow with
the dataset, and the file appears under its real name only once it is complete. An interrupted
run continues where it stopped (`resume=True`, when the source, model and options agree: see
`mfftools.resume`), giving the same file as an uninterrupted run (bit for bit with the same
batch size and device). The output's lock is held from the start: a second extraction into the
same file is refused, naming the first's pid.

Bad images: without `skip_bad_images` the first undecodable image is an error naming it. With
it, a first pass decodes every image to find the bad ones, which are then left out, logged, and
listed in the file (`n_skipped_images`, `skipped_images`; each image once, however many rows
show it). In the pairs layout a bad image drops every pair it is in (both rows, and the pair's
`issame`/`pair_group`/`fold` entries), so pairs never shift; a pair list (the images layout with
its pairs) drops the pairs that use a bad image; the file also records `n_dropped_pairs`.

The model may be a checkpoint, a TorchScript archive or an ONNX model
(`mfftools.models.embedders`); the images are decoded to its input by a `Preprocessing`.
"""
import contextlib
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.utils.data
from tqdm import tqdm

from mfftools.data.images import Preprocessing
from mfftools.embeddings import EmbeddingsWriter, partial_path
from mfftools.errors import MfftoolsError
from mfftools.extraction_checks import warn_about_amp, warn_about_size
from mfftools.locks import output_lock
from mfftools.resume import open_to_resume, record_skipping, root_attrs, rows_sha256
from mfftools.sources import ExtractionSource, open_source

logger = logging.getLogger(__name__)

# HDF5 attributes are limited to 64 KiB: at most this many skipped names are stored (all are
# logged).
MAX_LISTED_SKIPPED = 500
# How torch's DataLoader says that a worker process died (killed by a signal, e.g. by the
# kernel's out-of-memory killer).
_WORKER_DIED = "DataLoader worker"


@dataclass(frozen=True)
class ExtractionReport:
    """What one extraction call did: the file, the rows it holds, and the rows it held before
    (those of an interrupted run that was resumed; all of them when it was already complete)."""

    path: Path
    rows: int
    rows_before: int = 0
    already_complete: bool = False


class _Guarded(torch.utils.data.Dataset):
    """Item -> (image, row, None), or (None, row, error message) for a bad image.

    Runs in the workers: a bad image is reported, not raised there, where the error would come
    back wrapped in a worker traceback."""

    def __init__(self, images, rows, preprocessing, check_only=False):
        self.images = images
        self.rows = rows
        self.preprocessing = preprocessing
        self.check_only = check_only

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, position):
        row = int(self.rows[position])
        try:
            image = self.images.decode(row, self.preprocessing)
        except MfftoolsError as error:
            return None, row, str(error)
        return (True if self.check_only else image), row, None


def _collate(batch):
    """-> (images [B, 3, H, W] or None, rows int64 [B], [(row, message) of bad images])."""
    bad = [(row, message) for image, row, message in batch if image is None]
    rows = np.array([row for _, row, _ in batch], dtype=np.int64)
    if bad or isinstance(batch[0][0], bool):
        return None, rows, bad
    return torch.stack([image for image, _, _ in batch]), rows, bad


def _loader(images, rows, preprocessing, batch_size, workers, pin_memory=False,
            check_only=False):
    return torch.utils.data.DataLoader(
        _Guarded(images, rows, preprocessing, check_only=check_only),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=_collate,
        pin_memory=pin_memory,
        prefetch_factor=4 if workers > 0 else None,
    )


def _progress(total, initial, desc, enabled):
    return tqdm(
        total=total, initial=initial, desc=desc, unit="img", dynamic_ncols=True,
        disable=not (enabled and sys.stderr.isatty()),
    )


def find_bad_images(source, preprocessing, batch_size=128, workers=2, progress=True):
    """Decode every image of `source` once; returns [(row, message)] of those that fail."""
    bad = []
    rows = np.arange(len(source))
    with _progress(len(rows), 0, "checking images", progress) as bar:
        loader = _loader(source.images, rows, preprocessing, batch_size, workers, check_only=True)
        for _, batch_rows, batch_bad in loader:
            bad.extend(batch_bad)
            bar.update(len(batch_rows))
    return bad


def _rows_to_extract(source, bad_rows):
    """Source rows kept after skipping bad images, and the kept pair indices (pairs layout, or
    a pair list)."""
    n_rows = len(source)
    if source.layout == "pairs":
        bad_pairs = np.unique(np.asarray(bad_rows, dtype=np.int64) // 2)
        kept_pairs = np.setdiff1d(np.arange(n_rows // 2), bad_pairs)
        rows = np.stack([2 * kept_pairs, 2 * kept_pairs + 1], axis=1).reshape(-1)
        return rows, kept_pairs
    rows = np.setdiff1d(np.arange(n_rows), np.asarray(bad_rows, dtype=np.int64))
    return rows, (source.kept_pairs(rows) if source.pair_index is not None else None)


def _prepare_model(model_path, model, arch, output, device, amp):
    """(embedder, attrs describing it, a function restoring an in-memory model's mode)."""
    from mfftools.models.embedders import in_memory_embedder, load_embedder

    if (model_path is None) == (model is None):
        raise ValueError("give exactly one of model_path and model")
    if model_path is not None:
        embedder, attrs = load_embedder(model_path, arch=arch, output=output, device=device,
                                        amp=amp)
        return embedder, attrs, lambda: None
    was_training = model.training
    model.eval()
    embedder, attrs = in_memory_embedder(model, device=device, amp=amp)
    return embedder, attrs, lambda: model.train(was_training)


def embed_batch(model, images, flip):
    """f(x) + f(flip(x)) in one forward pass of 2B images, or f(x) without flip."""
    if not flip:
        return model(images)
    both = model(torch.cat([images, torch.flip(images, dims=[3])]))
    return both[: len(images)] + both[len(images):]


def extract(source, model_path=None, out_path=None, **options):
    """Embed every image of `source` into the embeddings file `out_path`; returns its Path.

    The arguments are those of `run_extraction`, which also says what the call did.
    """
    return run_extraction(source, model_path, out_path, **options).path


def run_extraction(source, model_path=None, out_path=None, *, model=None, arch=None,
                   output=None, preprocessing=None, batch_size=128, workers=2, device="auto",
                   flip=True, amp=False, skip_bad_images=False, resume=False, progress=True):
    """Embed every image of `source` and write the embeddings file `out_path`; returns an
    ExtractionReport.

    source: any source of `mfftools.sources.open_source` (a path), or an `ExtractionSource`.
    model_path / model: a model file (a checkpoint, TorchScript archive or ONNX model: see
        `mfftools.models.embedders`) or an in-memory nn.Module (put in eval mode for the
        extraction, its mode restored after). `arch`: a checkpoint's IResNet; `output`: the
        embedding output of an ONNX model with several.
    preprocessing: a `Preprocessing` (mean, std, channel order, size: None for the model's own);
        the default is insightface's at the model's size. Recorded in the file's attributes.
    amp: float16 autocast, PyTorch models on CUDA only (ignored with a warning elsewhere).
    resume: continue an incomplete `out_path` written from the same source, weights and options.
    """
    if out_path is None:
        raise ValueError("out_path is required")
    if batch_size < 1:
        raise MfftoolsError(f"batch size must be at least 1, got {batch_size}")
    out_path = Path(out_path)
    if not isinstance(source, ExtractionSource):
        source = open_source(source)
    with output_lock(out_path):
        embedder, attrs, restore_mode = _prepare_model(model_path, model, arch, output, device,
                                                       amp)
        try:
            return _extract_locked(source, out_path, embedder, attrs, preprocessing, batch_size,
                                   workers, flip, amp, skip_bad_images, resume, progress)
        finally:
            restore_mode()


def _extract_locked(source, out_path, embedder, attrs, preprocessing, batch_size, workers, flip,
                    amp, skip_bad_images, resume, progress):
    """run_extraction once the output's lock is held and the model is ready."""
    warn_about_amp(amp, embedder, attrs["model_format"])
    given = preprocessing or Preprocessing(size=None, mean=None, std=None)
    preprocessing = given.for_model(embedder.input_size, attrs["model"], embedder.input_mean,
                                    embedder.input_std)
    if attrs["model_format"] != "module" and not (source.attrs or {}).get("aligned"):
        warn_about_size(source, preprocessing, given.size, embedder.input_size, attrs["model"])
    attrs.update(preprocessing.attrs())
    attrs.update({"flip": bool(flip), "amp": embedder.amp, "source": source.description,
                  "rows_sha256": rows_sha256(source)})
    attrs.update(source.attrs or {})
    if source.options is not None:
        attrs.update(source.options.attrs())
    rows, kept_pairs = _rows_and_skipped(
        source, preprocessing, attrs, skip_bad_images, batch_size, workers, progress
    )
    pairs = source.pair_columns(kept_pairs) if source.layout == "pairs" else None
    pair_list = (source.pair_list_columns(rows, kept_pairs)
                 if source.pair_index is not None else None)
    writer, complete = open_to_resume(out_path, attrs, rows) if resume else (None, False)
    if complete:
        return ExtractionReport(out_path, len(rows), len(rows), already_complete=True)
    rows_before = writer.rows_written if writer else 0
    if writer is not None:
        record_skipping(writer, attrs, pairs, pair_list)

    def create(dim):
        return EmbeddingsWriter.create(
            out_path, layout=source.layout, dim=dim, group_names=source.group_names,
            pairs=pairs, attrs=attrs, optional_columns=source.optional_columns,
            pair_list=pair_list,
        )

    _run(embedder, source, rows, writer, create, preprocessing, batch_size, workers, flip,
         progress, out_path)
    logger.debug("wrote %d embeddings to %s", len(rows) - rows_before, out_path)
    return ExtractionReport(out_path, len(rows), rows_before)


def _rows_and_skipped(source, preprocessing, attrs, skip_bad_images, batch_size, workers,
                      progress):
    """The source rows to extract and the kept pairs (pairs layout), after finding the bad
    images when asked to skip them; records the skipped images in `attrs`.

    An image is counted and listed once however many rows show it (an image of a pair list in
    several pairs); the pairs it drops are counted apart (`n_dropped_pairs`).
    """
    bad = []
    if skip_bad_images:
        bad = find_bad_images(source, preprocessing, batch_size, workers, progress)
    rows, kept_pairs = _rows_to_extract(source, [row for row, _ in bad])
    messages = {}
    for row, message in bad:
        messages.setdefault(source.images.image_name(row), message)
    for message in messages.values():
        logger.warning("skipped: %s", message)
    attrs["skip_bad_images"] = bool(skip_bad_images)
    attrs["n_skipped_images"] = len(messages)
    if messages:
        attrs["skipped_images"] = np.array(list(messages)[:MAX_LISTED_SKIPPED],
                                           dtype=h5py.string_dtype())
        logger.warning("%d bad images skipped", len(messages))
    if source.layout == "pairs":
        attrs["n_dropped_pairs"] = len(source) // 2 - len(kept_pairs)
    elif source.pair_index is not None:
        attrs["n_dropped_pairs"] = len(source.pair_index) - len(kept_pairs)
        attrs["identity_from"] = source.identity_from
    attrs["n_rows_expected"] = len(rows)
    if len(rows) == 0:
        raise MfftoolsError(f"{source.description}: no images left to extract")
    return rows, kept_pairs


def interrupted_progress(out_path):
    """(the partial file, rows written, rows expected) of an extraction into `out_path` left
    incomplete, or None when there is none (interrupted before any row was written)."""
    partial = partial_path(out_path)
    if not partial.is_file():
        return None
    attrs = root_attrs(partial)
    if bool(attrs.get("complete", False)):
        return None
    return partial, int(attrs.get("rows_written", 0)), int(attrs.get("n_rows_expected", 0))


def _run(embedder, source, rows, writer, create, preprocessing, batch_size, workers, flip,
         progress, out_path):
    """Compute and append the rows after those `writer` holds; without a writer (a new file),
    `create(dim)` makes one when the first batch gives the embeddings' width. On CUDA a batch
    is written while the next one is computed (the copy back is asynchronous); on the CPU it is
    written at once. A bad image, or a decoding worker that died, stops the run with one line
    saying how to go on."""
    start = writer.rows_written if writer else 0
    cuda = embedder.device.type == "cuda"
    pending = None
    with _worker_deaths(out_path), contextlib.ExitStack() as stack:
        if writer is not None:
            stack.enter_context(writer)
        loader = _loader(source.images, rows[start:], preprocessing, batch_size, workers,
                         pin_memory=cuda)
        bar = stack.enter_context(_progress(len(rows), start, "extract", progress))
        stack.enter_context(torch.inference_mode())
        for images, batch_rows, bad in loader:
            if bad:
                raise MfftoolsError(f"{bad[0][1]}; {_how_to_go_on(out_path, bad=True)}")
            embeddings = embed_batch(embedder, images, flip)
            if writer is None:
                writer = stack.enter_context(create(embeddings.shape[1]))
            host = embeddings.to("cpu", non_blocking=True)
            done = None
            if cuda:
                done = torch.cuda.Event()
                done.record()
            if pending is not None:
                _write(writer, source, *pending, bar)
                pending = None
            if cuda:
                pending = (host, done, batch_rows)
            else:
                _write(writer, source, host, done, batch_rows, bar)
        if pending is not None:
            _write(writer, source, *pending, bar)


@contextlib.contextmanager
def _worker_deaths(out_path):
    """A decoding worker's death as one MfftoolsError. torch raises it as a RuntimeError from its
    SIGCHLD handler or from the loader, wherever the main process then is."""
    try:
        yield
    except RuntimeError as error:
        if _WORKER_DIED not in str(error):
            raise
        first_line = str(error).splitlines()[0].rstrip(". ")
        raise MfftoolsError(
            f"an image-decoding worker died ({first_line}; the system may have run out of "
            f"memory: fewer --workers or a smaller --batch-size use less); "
            f"{_how_to_go_on(out_path)}"
        ) from None


def _how_to_go_on(out_path, bad=False):
    """What the user can do after an extraction stopped: skip bad images, resume."""
    hint = "add --skip-bad-images to leave out undecodable images; " if bad else ""
    partial = partial_path(out_path)
    if partial.is_file():
        return f"{hint}the rows written so far are in {partial}: rerun with --resume to continue"
    return f"{hint}nothing was written yet"


def _write(writer, source, embeddings, done, rows, bar):
    if done is not None:
        done.synchronize()
    first = writer.rows_written
    writer.append(embeddings.numpy(), **source.row_columns(rows))
    logger.debug("wrote rows %d-%d", first, writer.rows_written - 1)
    bar.update(len(rows))
