"""Shared fixtures; file-writing helpers live in embedding_files.py (tests/ is on the path)."""
import os

import numpy as np
import pytest

from extraction_sources import load_tiny_model_module

# Two cores: keep torch from oversubscribing when several test processes run.
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def tiny_model(tmp_path):
    model = load_tiny_model_module(tmp_path).TinyNet()
    model.norm.running_mean.normal_()
    return model.eval()
