"""The engine's thread policy: a width from the work, and the caller's thread count restored."""
import pytest
import torch

from mfftools.evaluation.engine import threads


def test_the_width_follows_the_work():
    per = threads.CELLS_PER_THREAD
    assert threads.width(0, 8) == 1
    assert threads.width(per - 1, 8) == 1
    assert threads.width(3 * per, 8) == 3
    assert threads.width(100 * per, 8) == 8
    assert threads.width(100 * per, 1) == 1


def test_the_thread_count_is_restored_also_when_a_step_raises():
    saved = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with threads.for_work("cpu", 0):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with pytest.raises(ValueError):
            with threads.for_work("cpu", 0):
                raise ValueError("a failing step")
        assert torch.get_num_threads() == 2
        with threads.for_work("cpu", 10 * threads.CELLS_PER_THREAD):
            assert torch.get_num_threads() == 2  # never more than the caller had
    finally:
        torch.set_num_threads(saved)


def test_an_evaluation_leaves_the_thread_count_as_it_found_it(tmp_path, rng):
    from instance_data import evaluate_file, make_data

    emb, identity, group = make_data(rng, 40, 4, 8)
    saved = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        evaluate_file(tmp_path, emb, identity, group, targets=(1e-2,), device="cpu", det=True)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(saved)
