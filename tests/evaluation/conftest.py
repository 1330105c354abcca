"""Evaluation tests run on the CPU always, and on CUDA when it is available."""
import pytest
import torch


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="CUDA is not available"))])
def device(request):
    return request.param
