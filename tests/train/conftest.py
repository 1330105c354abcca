"""Trainer tests run tiny networks: one torch thread each avoids OpenMP contention on a busy
machine (the work per operation is far too small to gain from threads)."""
import pytest
import torch


@pytest.fixture(autouse=True)
def single_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
