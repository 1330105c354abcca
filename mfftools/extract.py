"""Model + images -> embeddings file: batched, streamed to disk, resumable.

Images are decoded by DataLoader workers while the model runs; each batch's rows are appended
to the file as soon as they are computed, so memory does not grow with the dataset and an
interrupted run continues where it stopped (`resume=True`), giving the same file as an
uninterrupted run (bit for bit with the same batch size and device).

Bad images: without `skip_bad_images` the first undecodable image is an error naming it. With
it, a first pass decodes every image to find the bad ones, which are then left out, logged, and
listed in the file (`n_skipped_images`, `skipped_images`). In the pairs layout a bad image
drops its whole pair (both rows, and the pair's `issame`/`pair_group`/`fold` entries), so pairs
never shift; a pair list (the images layout with its pairs) drops the pairs that use a bad image;
the file also records `n_skipped_pairs`.

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
from mfftools.embeddings import EmbeddingsWriter, plain
from mfftools.errors import MfftoolsError
from mfftools.sources import ExtractionSource, open_source

logger = logging.getLogger(__name__)

# HDF5 attributes are limited to 64 KiB: at most this many skipped names are stored (all are
# logged).
MAX_LISTED_SKIPPED = 500
# Not compared on resume: the checkpoint may have moved (its sha256 is compared) and the skipped
# names are compared through their count.
_NOT_COMPARED = ("checkpoint", "skipped_images")


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
            image = self.preprocessing.decode(self.images.encoded(row), self.images.describe(row))
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


def _resume_writer(out_path, attrs):
    """For --resume: (a writer positioned at the first row to compute, or None for a new file;
    whether the file is already complete).

    A resumed file must have been written with the same attributes, except the checkpoint's
    path and the list of skipped names (its count is compared).
    """
    expected = {key: value for key, value in attrs.items() if key not in _NOT_COMPARED}
    if not out_path.exists():
        logger.info("%s does not exist yet; starting from the first image", out_path)
        return None, False
    existing = _root_attrs(out_path)
    if bool(existing.get("complete", False)):
        for key, value in expected.items():
            if str(existing.get(key)) != str(value):
                raise MfftoolsError(
                    f"{out_path}: already complete, but with {key} = "
                    f"{plain(existing.get(key))}, not {plain(value)}"
                )
        logger.debug("%s is already complete; nothing to resume", out_path)
        return None, True
    return EmbeddingsWriter.resume(out_path, expected_attrs=expected), False


def _root_attrs(path):
    try:
        with h5py.File(path, "r") as handle:
            return dict(handle.attrs)
    except OSError as error:
        raise MfftoolsError(f"{path}: not a readable HDF5 file; cannot resume ({error})") from error


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
    embedder, attrs, restore_mode = _prepare_model(model_path, model, arch, output, device, amp)
    if amp and not embedder.amp:
        logger.warning("--amp applies to PyTorch models on CUDA only; extracting in float32 on "
                       "%s", embedder.device)
    preprocessing = (preprocessing or Preprocessing(size=None)).for_model(
        embedder.input_size, attrs["model"]
    )
    attrs.update(preprocessing.attrs())
    attrs.update({"flip": bool(flip), "amp": embedder.amp, "source": source.description})
    try:
        rows, kept_pairs = _rows_and_skipped(
            source, preprocessing, attrs, skip_bad_images, batch_size, workers, progress
        )
        writer, complete = _resume_writer(out_path, attrs) if resume else (None, False)
        if complete:
            return ExtractionReport(out_path, len(rows), len(rows), already_complete=True)
        rows_before = writer.rows_written if writer else 0
        if rows_before and writer.last_source_index != rows[rows_before - 1]:
            writer.close()
            raise MfftoolsError(
                f"{out_path}: cannot resume: row {rows_before - 1} came from source "
                f"row {writer.last_source_index}, expected {rows[rows_before - 1]}"
            )

        def create(dim):
            pairs = source.pair_columns(kept_pairs) if source.layout == "pairs" else None
            pair_list = (source.pair_list_columns(rows, kept_pairs)
                         if source.pair_index is not None else None)
            return EmbeddingsWriter.create(
                out_path, layout=source.layout, dim=dim, group_names=source.group_names,
                pairs=pairs, attrs=attrs, optional_columns=source.optional_columns,
                pair_list=pair_list,
            )

        _run(embedder, source, rows, writer, create, preprocessing,
             batch_size, workers, flip, progress)
    finally:
        restore_mode()
    logger.debug("wrote %d embeddings to %s", len(rows) - rows_before, out_path)
    return ExtractionReport(out_path, len(rows), rows_before)


def _rows_and_skipped(source, preprocessing, attrs, skip_bad_images, batch_size, workers,
                      progress):
    """The source rows to extract and the kept pairs (pairs layout), after finding the bad
    images when asked to skip them; records the skipped images in `attrs`."""
    bad = []
    if skip_bad_images:
        bad = find_bad_images(source, preprocessing, batch_size, workers, progress)
    rows, kept_pairs = _rows_to_extract(source, [row for row, _ in bad])
    for _, message in bad:
        logger.warning("skipped: %s", message)
    attrs["n_skipped_images"] = len(bad)
    if bad:
        attrs["skipped_images"] = np.array(
            [source.images.image_name(row) for row, _ in bad[:MAX_LISTED_SKIPPED]],
            dtype=h5py.string_dtype(),
        )
        logger.warning("%d bad images skipped", len(bad))
    if source.layout == "pairs":
        attrs["n_skipped_pairs"] = len(source) // 2 - len(kept_pairs)
    elif source.pair_index is not None:
        attrs["n_skipped_pairs"] = len(source.pair_index) - len(kept_pairs)
        attrs["identity_from"] = source.identity_from
    attrs["n_rows_expected"] = len(rows)
    if len(rows) == 0:
        raise MfftoolsError(f"{source.description}: no images left to extract")
    return rows, kept_pairs


def interrupted_progress(out_path):
    """(rows written, rows expected) of an extraction file left incomplete, or None when there is
    no such file (interrupted before the file was created, or it is complete)."""
    out_path = Path(out_path)
    if not out_path.is_file():
        return None
    attrs = _root_attrs(out_path)
    if bool(attrs.get("complete", True)):
        return None
    return int(attrs.get("rows_written", 0)), int(attrs.get("n_rows_expected", 0))


def _run(embedder, source, rows, writer, create, preprocessing, batch_size, workers, flip,
         progress):
    """Compute and append the rows after those `writer` holds; without a writer (a new file),
    `create(dim)` makes one when the first batch gives the embeddings' width. On CUDA a batch
    is written while the next one is computed (the copy back is asynchronous); on the CPU it is
    written at once."""
    start = writer.rows_written if writer else 0
    cuda = embedder.device.type == "cuda"
    pending = None
    with contextlib.ExitStack() as stack:
        if writer is not None:
            stack.enter_context(writer)
        loader = _loader(source.images, rows[start:], preprocessing, batch_size, workers,
                         pin_memory=cuda)
        bar = stack.enter_context(_progress(len(rows), start, "extract", progress))
        stack.enter_context(torch.inference_mode())
        for images, batch_rows, bad in loader:
            if bad:
                raise MfftoolsError(bad[0][1])
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


def _write(writer, source, embeddings, done, rows, bar):
    if done is not None:
        done.synchronize()
    first = writer.rows_written
    writer.append(embeddings.numpy(), **source.row_columns(rows))
    logger.debug("wrote rows %d-%d", first, writer.rows_written - 1)
    bar.update(len(rows))
