"""One writer per output file: an exclusive lock taken before anything of the file is touched.

The lock is an advisory `flock` on a small file beside the output (`.NAME.lock`, holding the
writer's pid), so two mfftools processes never write the same file at once: the second is told
which process holds it, and the first's file is left alone. The operating system releases the
lock when its holder exits, however it exits (a killed writer leaves at most the small lock
file, which the next writer takes over). Within one process the lock is reentrant: an
extraction holds it from its first look at the output to the final rename, and the writer it
creates takes it again.
"""
import contextlib
import fcntl
import os
import time
from pathlib import Path

from mfftools.errors import MfftoolsError

# How long a writer that has just taken the lock may take to write its pid there.
_PID_WAIT_S = 0.5
# Outputs this process holds the lock of: path -> [descriptor, depth].
_held = {}


def lock_path(path):
    """The lock file of output `path`."""
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


@contextlib.contextmanager
def output_lock(path):
    """Hold the lock on writing `path` for the duration of the block; an MfftoolsError naming
    the holder's pid when another process holds it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = str(path.resolve())
    if key in _held:
        _held[key][1] += 1
    else:
        _held[key] = [_acquire(path), 1]
    try:
        yield
    finally:
        _held[key][1] -= 1
        if _held[key][1] == 0:
            descriptor = _held.pop(key)[0]
            lock_path(path).unlink(missing_ok=True)
            os.close(descriptor)


def _acquire(path):
    lock = lock_path(path)
    while True:
        descriptor = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(descriptor)
            os.close(descriptor)
            raise MfftoolsError(
                f"{path} is being written by another mfftools process (pid {holder}); wait for "
                "it to finish, or write to another file"
            ) from None
        # A holder releasing its lock unlinks the lock file first: when ours was unlinked
        # between opening and locking it, lock the file now at that name instead.
        try:
            current = os.stat(lock).st_ino
        except FileNotFoundError:
            current = None
        if current != os.fstat(descriptor).st_ino:
            os.close(descriptor)
            continue
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        return descriptor


def _holder(descriptor):
    """The pid written in a held lock file, or `unknown` if its holder has not written it yet."""
    deadline = time.monotonic() + _PID_WAIT_S
    while True:
        text = os.pread(descriptor, 32, 0).decode(errors="replace").strip()
        if text.isdigit() or time.monotonic() > deadline:
            return text if text.isdigit() else "unknown"
        time.sleep(0.01)
