"""Thread use of the engine's memory-bound work on the CPU."""
import contextlib

import torch


@contextlib.contextmanager
def serial(device):
    """One CPU thread for the memory-bound work between the products (masking and scanning tiles,
    the top sets, centroids, counts).

    That work is many short operations. With several threads each of them waits for the whole
    thread pool, and on a shared machine a descheduled thread stalls it: measured on two loaded
    cores, one thread scanned a tile and extracted its candidates up to 5x faster, and a scan
    bound by memory bandwidth gains little from a second thread anyway. The matrix products keep
    every thread. The previous thread count is restored on exit; on other devices nothing changes.
    """
    if torch.device(device).type != "cpu":
        yield
        return
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)
