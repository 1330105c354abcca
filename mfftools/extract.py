"""Model + images -> embeddings file: batched, streamed to disk, resumable.

Images are decoded by DataLoader workers while the model runs; each batch's rows are appended
to the file as soon as they are computed, so memory does not grow with the dataset and an
interrupted run continues where it stopped (`resume=True`), giving the same file as an
uninterrupted run (bit for bit with the same batch size and device).

Bad images: without `skip_bad_images` the first undecodable image is an error naming it. With
it, a first pass decodes every image to find the bad ones, which are then left out, logged, and
listed in the file (`n_skipped_images`, `skipped_images`). In the pairs layout a bad image
drops its whole pair (both rows, and the pair's `issame`/`pair_group` entries), so pairs never
shift; the file also records `n_skipped_pairs`.
"""
import logging
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.utils.data
from tqdm import tqdm

from mfftools.dist import resolve_device
from mfftools.embeddings import EmbeddingsWriter, plain
from mfftools.errors import MfftoolsError

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


@dataclass
class ExtractionSource:
    """Images to embed: `dataset` item k -> (image [3, 112, 112] or None, k), plus row labels.

    `image_names[k]` names row k in messages. The images layout needs `identity`, `group` and
    `paths`; the pairs layout needs `issame` and `pair_group` (rows 2k, 2k+1 form pair k).
    """

    dataset: torch.utils.data.Dataset
    layout: str
    group_names: list
    description: str
    image_names: list
    identity: np.ndarray = None
    group: np.ndarray = None
    paths: list = None
    issame: np.ndarray = None
    pair_group: np.ndarray = None

    def __len__(self):
        return len(self.image_names)

    def row_columns(self, rows):
        """The writer's per-row columns for source rows `rows`."""
        if self.layout == "pairs":
            return {"source_index": rows}
        return {
            "identity": self.identity[rows],
            "group": self.group[rows],
            "path": [self.paths[row] for row in rows],
            "source_index": rows,
        }


def open_source(path):
    """An RFW instance zip (images layout) or a folder of `<Group>_test.bin` (pairs layout)."""
    path = Path(path)
    if path.is_dir():
        from mfftools.data.pair_bin import PairBinFolder

        folder = PairBinFolder(path)
        return ExtractionSource(
            dataset=folder,
            layout="pairs",
            group_names=list(folder.group_names),
            description=str(path.resolve()),
            image_names=[f"{name} image {position}" for name, position in folder.sources],
            issame=folder.issame,
            pair_group=folder.pair_group,
        )
    if path.is_file() and zipfile.is_zipfile(path):
        from mfftools.data.rfw import RfwInstanceZip

        archive = RfwInstanceZip(path)
        return ExtractionSource(
            dataset=archive,
            layout="images",
            group_names=list(archive.group_names),
            description=str(path.resolve()),
            image_names=list(archive.paths),
            identity=archive.identity,
            group=archive.group,
            paths=list(archive.paths),
        )
    if not path.exists():
        raise MfftoolsError(f"{path}: no such file or folder")
    raise MfftoolsError(
        f"{path}: SOURCE must be an RFW instance zip or a folder of <Group>_test.bin files"
    )


class _Guarded(torch.utils.data.Dataset):
    """Item -> (image, row, None), or (None, row, error message or None) for a bad image.

    Runs in the workers: a bad image is reported, not raised there, where the error would come
    back wrapped in a worker traceback."""

    def __init__(self, dataset, rows, check_only=False):
        self.dataset = dataset
        self.rows = rows
        self.check_only = check_only

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, position):
        row = int(self.rows[position])
        try:
            image, _ = self.dataset[row]
        except MfftoolsError as error:
            return None, row, str(error)
        if image is None:
            return None, row, None
        return (True if self.check_only else image), row, None


def _collate(batch):
    """-> (images [B, 3, 112, 112] or None, rows int64 [B], [(row, message) of bad images])."""
    bad = [(row, message) for image, row, message in batch if image is None]
    rows = np.array([row for _, row, _ in batch], dtype=np.int64)
    if bad or isinstance(batch[0][0], bool):
        return None, rows, bad
    return torch.stack([image for image, _, _ in batch]), rows, bad


def _bad_image_message(source, row, message):
    return message or f"cannot decode image {source.image_names[row]}"


def _loader(dataset, rows, batch_size, workers, pin_memory=False, check_only=False):
    return torch.utils.data.DataLoader(
        _Guarded(dataset, rows, check_only=check_only),
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


def find_bad_images(source, batch_size=128, workers=2, progress=True):
    """Decode every image of `source` once; returns [(row, message)] of those that fail."""
    bad = []
    rows = np.arange(len(source))
    with _progress(len(rows), 0, "checking images", progress) as bar:
        loader = _loader(source.dataset, rows, batch_size, workers, check_only=True)
        for _, batch_rows, batch_bad in loader:
            bad.extend((row, _bad_image_message(source, row, text)) for row, text in batch_bad)
            bar.update(len(batch_rows))
    return bad


def _rows_to_extract(source, bad_rows):
    """Source rows kept after skipping bad images, and the kept pair indices (pairs layout)."""
    n_rows = len(source)
    if source.layout == "pairs":
        bad_pairs = np.unique(np.asarray(bad_rows, dtype=np.int64) // 2)
        kept_pairs = np.setdiff1d(np.arange(n_rows // 2), bad_pairs)
        rows = np.stack([2 * kept_pairs, 2 * kept_pairs + 1], axis=1).reshape(-1)
        return rows, kept_pairs
    return np.setdiff1d(np.arange(n_rows), np.asarray(bad_rows, dtype=np.int64)), None


def _prepare_model(model_path, model, arch, device):
    """(model on device, attrs describing it); a loaded model is ours to convert."""
    if (model_path is None) == (model is None):
        raise ValueError("give exactly one of model_path and model")
    if model is not None:
        from mfftools.models.loading import weights_sha256

        attrs = {
            "model": type(model).__name__,
            "checkpoint": "(in memory)",
            "checkpoint_sha256": weights_sha256(model),
        }
        return model.to(device), attrs
    from mfftools.models.loading import load_model

    model, info = load_model(model_path, arch=arch)
    attrs = {
        "model": info.name,
        "checkpoint": str(Path(model_path).resolve()),
        "checkpoint_sha256": info.sha256,
    }
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model, attrs


def _open_writer(out_path, source, attrs, kept_pairs, resume, model, device):
    """A writer positioned at the first row to compute, or None when a resumed file is complete.

    A resumed file must have been written with the same attributes, except the checkpoint's
    path and the list of skipped names (its count is compared).
    """
    expected = {key: value for key, value in attrs.items() if key not in _NOT_COMPARED}
    if resume and out_path.exists():
        existing = _root_attrs(out_path)
        if bool(existing.get("complete", False)):
            for key, value in expected.items():
                if str(existing.get(key)) != str(value):
                    raise MfftoolsError(
                        f"{out_path}: already complete, but with {key} = "
                        f"{plain(existing.get(key))}, not {plain(value)}"
                    )
            logger.debug("%s is already complete; nothing to resume", out_path)
            return None
        return EmbeddingsWriter.resume(out_path, expected_attrs=expected)
    if resume:
        logger.info("%s does not exist yet; starting from the first image", out_path)
    pairs = None
    if source.layout == "pairs":
        pairs = {"issame": source.issame[kept_pairs], "pair_group": source.pair_group[kept_pairs]}
    return EmbeddingsWriter.create(
        out_path, layout=source.layout, dim=_embedding_dim(model, device),
        group_names=source.group_names, pairs=pairs, attrs=attrs,
    )


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


def _embedding_dim(model, device):
    """Width of the (eval-mode) model's output, from one forward pass of a blank image."""
    with torch.inference_mode():
        return int(model(torch.zeros(1, 3, 112, 112, device=device)).shape[1])


def extract(source, model_path=None, out_path=None, **options):
    """Embed every image of `source` into the embeddings file `out_path`; returns its Path.

    The arguments are those of `run_extraction`, which also says what the call did.
    """
    return run_extraction(source, model_path, out_path, **options).path


def run_extraction(source, model_path=None, out_path=None, *, model=None, arch=None,
                   batch_size=128, workers=2, device="auto", flip=True, amp=False,
                   skip_bad_images=False, resume=False, progress=True):
    """Embed every image of `source` and write the embeddings file `out_path`; returns an
    ExtractionReport.

    source: an RFW instance zip (images layout), a folder of `<Group>_test.bin` (pairs layout),
        or an `ExtractionSource`.
    model_path / model: a checkpoint (see `mfftools.models.loading`) or an in-memory nn.Module
        (put in eval mode for the extraction, its mode restored after).
    amp: float16 autocast, CUDA only (ignored with a warning elsewhere).
    resume: continue an incomplete `out_path` written from the same source, weights and options.
    """
    if out_path is None:
        raise ValueError("out_path is required")
    if batch_size < 1:
        raise MfftoolsError(f"batch size must be at least 1, got {batch_size}")
    out_path = Path(out_path)
    device = resolve_device(device)
    use_amp = bool(amp) and device.type == "cuda"
    if amp and not use_amp:
        logger.warning("--amp applies on CUDA only; extracting in float32 on %s", device)
    if not isinstance(source, ExtractionSource):
        source = open_source(source)
    model, attrs = _prepare_model(model_path, model, arch, device)
    attrs.update({"flip": bool(flip), "amp": use_amp, "source": source.description})

    bad = find_bad_images(source, batch_size, workers, progress) if skip_bad_images else []
    rows, kept_pairs = _rows_to_extract(source, [row for row, _ in bad])
    for row, message in bad:
        logger.warning("skipped: %s", message)
    attrs["n_skipped_images"] = len(bad)
    if bad:
        attrs["skipped_images"] = np.array(
            [source.image_names[row] for row, _ in bad[:MAX_LISTED_SKIPPED]],
            dtype=h5py.string_dtype(),
        )
        logger.warning("%d bad images skipped", len(bad))
    if source.layout == "pairs":
        attrs["n_skipped_pairs"] = len(source) // 2 - len(kept_pairs)
    attrs["n_rows_expected"] = len(rows)
    if len(rows) == 0:
        raise MfftoolsError(f"{source.description}: no images left to extract")

    was_training = model.training
    model.eval()
    try:
        writer = _open_writer(out_path, source, attrs, kept_pairs, resume, model, device)
        if writer is None:
            return ExtractionReport(out_path, len(rows), len(rows), already_complete=True)
        with writer:
            rows_before = writer.rows_written
            if rows_before and writer.last_source_index != rows[rows_before - 1]:
                raise MfftoolsError(
                    f"{out_path}: cannot resume: row {rows_before - 1} came from source "
                    f"row {writer.last_source_index}, expected {rows[rows_before - 1]}"
                )
            _run(model, source, rows, writer, device, batch_size, workers, flip, use_amp, progress)
    finally:
        model.train(was_training)
    logger.debug("wrote %d embeddings to %s", len(rows) - rows_before, out_path)
    return ExtractionReport(out_path, len(rows), rows_before)


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


def _run(model, source, rows, writer, device, batch_size, workers, flip, use_amp, progress):
    """Compute and append rows[writer.rows_written:]. On CUDA a batch is written while the next
    one is computed (the copy back is asynchronous); on the CPU it is written at once."""
    start = writer.rows_written
    cuda = device.type == "cuda"
    loader = _loader(source.dataset, rows[start:], batch_size, workers, pin_memory=cuda)
    pending = None
    with _progress(len(rows), start, "extract", progress) as bar, torch.inference_mode():
        for images, batch_rows, bad in loader:
            if bad:
                raise MfftoolsError(_bad_image_message(source, *bad[0]))
            images = images.to(device, non_blocking=True)
            if cuda:
                images = images.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=torch.float16, enabled=use_amp):
                embeddings = embed_batch(model, images, flip)
            host = embeddings.float().to("cpu", non_blocking=True)
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
