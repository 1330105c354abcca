"""How many CPU threads the engine's memory-bound work uses.

The matrix products use every thread torch has. The work between them (masking and scanning
tiles, top sets, counts, canonical rescoring) is many operations bound by memory bandwidth: a
thread pool wider than an operation's work only waits for its slowest thread (measured on two
loaded cores, one thread scanned a small block and extracted its candidates up to 5x faster
than two), while a large scan does gain from more threads, up to what memory can feed. So the
width follows the work: one thread per CELLS_PER_THREAD cells, at most the threads torch has
(`for_work`). torch's thread count is process-wide: it is set for one step and restored right
after it, also when the step raises, so a caller never finds it changed.
"""
import contextlib

import torch

# Cells (scores, or products summed) worth one more thread: 8 M float32 cells, 32 MB.
CELLS_PER_THREAD = 1 << 23


def width(cells, available):
    """Threads for `cells` cells of memory-bound work: one per CELLS_PER_THREAD, at least one,
    at most `available`."""
    return max(1, min(available, int(cells) // CELLS_PER_THREAD))


@contextlib.contextmanager
def for_work(device, cells):
    """Run the block with `width(cells, torch.get_num_threads())` threads on the CPU; the thread
    count is restored on exit. On other devices nothing changes."""
    if torch.device(device).type != "cpu":
        yield
        return
    saved = torch.get_num_threads()
    wanted = width(cells, saved)
    if wanted == saved:
        yield
        return
    torch.set_num_threads(wanted)
    try:
        yield
    finally:
        torch.set_num_threads(saved)
