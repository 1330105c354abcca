"""Fixtures of the report tests."""
import pytest

from result_builders import instance_result, pair_result, write_json


@pytest.fixture
def result_files(tmp_path, rng):
    """Two models, each with an instance and a pair result; model "b" without extras."""
    folder = tmp_path / "results"
    folder.mkdir()
    return [
        write_json(folder / "a_inst.json", instance_result(rng, "model-a")),
        write_json(folder / "a_pair.json", pair_result(rng, "model-a")),
        write_json(folder / "b_inst.json", instance_result(rng, "model-b", extras=False)),
        write_json(folder / "b_pair.json", pair_result(rng, "model-b", extras=False)),
    ]
