"""What extraction left out, carried into every results file: `n_skipped_images` (bad images
left out by `extract --skip-bad-images`) and `n_dropped_pairs` (pairs lost with them).

Each is the sum over the embeddings files a result comes from, or None when none of them records
it (a file written by other tools; `n_dropped_pairs` of an images-layout file). A result built
on a file that lost images says so on the console.
"""
import logging

from mfftools.errors import MfftoolsError

logger = logging.getLogger(__name__)

KEYS = ("n_skipped_images", "n_dropped_pairs")
# Earlier versions' name for `n_dropped_pairs`.
_EARLIER = {"n_dropped_pairs": "n_skipped_pairs"}


def _count(embeddings, key):
    for name in (key, _EARLIER.get(key)):
        if name is not None and name in embeddings.attrs:
            return int(embeddings.attrs[name])
    return None


def skipped_counts(*files):
    """{n_skipped_images, n_dropped_pairs} of the embeddings files (None entries ignored), for a
    results dict; warns when any image was left out."""
    files = [embeddings for embeddings in files if embeddings is not None]
    counts = {}
    for key in KEYS:
        found = [count for count in (_count(embeddings, key) for embeddings in files)
                 if count is not None]
        counts[key] = sum(found) if found else None
    if counts["n_skipped_images"]:
        dropped = counts["n_dropped_pairs"]
        logger.warning(
            "%s: %d bad images were left out at extraction%s; the results cover the rest only",
            ", ".join(str(embeddings.path) for embeddings in files), counts["n_skipped_images"],
            f" ({dropped} pairs dropped with them)" if dropped else "",
        )
    return counts


def check_folds(embeddings, allow_dropped_pairs):
    """Refuse the pair protocol's contiguous folds on a file that lost pairs: they no longer are
    the benchmark's folds (every later pair has moved), unless the user accepts it."""
    dropped = _count(embeddings, "n_dropped_pairs")
    folds = embeddings.fold if embeddings.layout == "pairs" else embeddings.pair_fold
    if not dropped or folds is not None or allow_dropped_pairs:
        return
    raise MfftoolsError(
        f"{embeddings.path}: {dropped} pairs were dropped at extraction (bad images), so the 10 "
        "contiguous folds cut from the remaining pairs are not the benchmark's folds; give "
        "--allow-dropped-pairs to evaluate them anyway, or fix the images and extract again "
        "without --skip-bad-images"
    )


def describe(result):
    """`3 bad images skipped, 4 pairs dropped at extraction`, or '' when nothing was left out
    (for the report's list of result files)."""
    images, pairs = (result.get(key) for key in KEYS)
    if not images:
        return ""
    text = f"{images} bad image{'s' if images != 1 else ''} skipped"
    if pairs:
        text += f", {pairs} pair{'s' if pairs != 1 else ''} dropped"
    return text + " at extraction"
