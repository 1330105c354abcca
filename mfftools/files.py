"""Files written whole or not at all, and the results file every protocol writes.

A file is written under a temporary name in its own folder and moved into place with
`os.replace` only when complete (and flushed to disk), so a crash or an error never leaves a
truncated file under the real name (and never replaces a good one with a broken one). The
output's lock (`mfftools.locks`) is held meanwhile, so two processes never write it at once.
"""
import contextlib
import json
import os
from pathlib import Path

from mfftools.locks import output_lock

# Significant digits of the long per-identity, ROC and DET lists of a results file: they feed plots
# and tables, and rounding keeps the file small. Every other number is written exactly.
ROUND_DIGITS = 6
_ROUNDED_KEYS = ("per_identity", "roc", "det")


@contextlib.contextmanager
def atomic_output(path):
    """Yield a temporary path beside `path`; it replaces `path` on success, is removed on error.

    The lock on `path` is taken first: an MfftoolsError when another process is writing it.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    with output_lock(path):
        try:
            yield temporary
            publish(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)


def publish(temporary, path):
    """Move the finished file `temporary` to `path`: its data flushed to disk first, then the
    rename, then the folder's entry, so `path` is the old file or the whole new one."""
    with open(temporary, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    folder = os.open(Path(path).parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def write_bytes(path, data):
    """Write `data` to `path` atomically, creating its folder; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as temporary:
        temporary.write_bytes(data)
    return path


def write_text(path, text):
    """Write `text` to `path` atomically, in UTF-8; returns the path."""
    with atomic_output(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)


def compact(result):
    """A copy of a results dict with the numbers under `per_identity`, `roc` and `det` keys
    rounded to ROUND_DIGITS significant digits (at any depth); everything else unchanged."""
    def rounded(value):
        if isinstance(value, float):
            return float(f"{value:.{ROUND_DIGITS}g}")
        if isinstance(value, dict):
            return {key: rounded(item) for key, item in value.items()}
        if isinstance(value, list):
            return [rounded(item) for item in value]
        return value

    def walk(value):
        if isinstance(value, dict):
            return {
                key: rounded(item) if key in _ROUNDED_KEYS else walk(item)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [walk(item) for item in value]
        return value

    return walk(result)


def write_results(result, path):
    """The results file of any protocol: compacted JSON, NaN refused (undefined values are None,
    written as null), written atomically. Returns the path."""
    return write_text(path, json.dumps(compact(result), indent=1, allow_nan=False) + "\n")
