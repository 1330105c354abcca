"""Instance evaluation split over two gloo ranks equals one process, in every field."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from embedding_files import write_images_file
from mfftools.embeddings import open_embeddings
from mfftools.evaluation import top_impostors
from mfftools.evaluation.identification import evaluate_identification
from mfftools.evaluation.instance import evaluate_instance
from mfftools.files import compact

ROOT = Path(__file__).resolve().parents[2]
GROUPS = ["A", "B", "C"]

# Each rank evaluates every case in one process group; rank 0 writes the results.
RANK_SCRIPT = """
import json, sys
from mfftools import dist
from mfftools.embeddings import open_embeddings
from mfftools.evaluation.instance import evaluate_instance
from mfftools.files import compact
info = dist.init("cpu")
for path, tile, precision, out in json.loads(sys.argv[1]):
    result = evaluate_instance(open_embeddings(path), targets=(1e-2, 1e-3),
                               methods=("bisection", "exact"), tile=tile, device="cpu",
                               precision=precision, progress=False, dist_info=info)
    if info.rank == 1:
        json.dump(result, open(out + ".rank1", "w"))
    if info.is_main:
        json.dump(result, open(out, "w"))
dist.shutdown()
"""


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(argv, world_size=2, timeout=120):
    """Run `python argv...` as each rank of a gloo job (the environment torchrun would set)."""
    port = _free_port()
    processes = []
    for rank in range(world_size):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1",
                   PYTHONPATH=str(ROOT))
        processes.append(subprocess.Popen([sys.executable, *argv], env=env, cwd=ROOT,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = []
    for process in processes:
        out, err = process.communicate(timeout=timeout)
        outputs.append((process.returncode, out, err))
    return outputs


def make_file(path, rng, n_identities, lattice=False, dtype=np.float32, low_group=False):
    """Random identities in three groups; `low_group`: the last group's impostor pairs score
    below the others', so the top set holds none and its top impostors need a pass."""
    sizes = rng.integers(1, 6, size=n_identities)
    identity = np.repeat(rng.permutation(n_identities) * 5, sizes)
    group = np.repeat(np.arange(n_identities) % 3, sizes)
    if lattice:
        emb = rng.integers(-1, 2, size=(len(identity), 3)).astype(dtype)
        emb[~emb.any(axis=1)] = 1.0
    else:
        emb = (np.repeat(rng.standard_normal((n_identities, 16)), sizes, axis=0)
               + rng.standard_normal((len(identity), 16)))
        if low_group:  # the others share a direction, the last group's rows do not
            emb[group != 2, 0] += 10.0
        emb = emb.astype(dtype)
    return write_images_file(path, emb, identity, group, GROUPS)


def without_engine(result):
    """The results without `engine` and `score_distributions` (float64 Gram sums in the BLAS's
    order, which may depend on the thread count: compared by `assert_close_numbers`)."""
    return {key: value for key, value in result.items()
            if key not in ("engine", "score_distributions")}


def assert_close_numbers(found, expected, rel=1e-12):
    """Equal structure; numbers equal to a relative tolerance (never rounded then compared,
    which flips at a rounding boundary)."""
    if isinstance(expected, dict):
        assert found.keys() == expected.keys()
        for key in expected:
            assert_close_numbers(found[key], expected[key], rel)
    elif isinstance(expected, list):
        assert len(found) == len(expected)
        for one, other in zip(found, expected):
            assert_close_numbers(one, other, rel)
    elif isinstance(expected, float):
        assert found == pytest.approx(expected, rel=rel, abs=1e-15)
    else:
        assert found == expected


def assert_same_results(found, expected):
    """Bit for bit, but for `engine` and the score moments (to 1e-12 relative)."""
    assert without_engine(found) == without_engine(expected)
    assert_close_numbers(found["score_distributions"], expected["score_distributions"])


def single_process(path, tile, precision="fp32"):
    result = evaluate_instance(open_embeddings(path), targets=(1e-2, 1e-3),
                               methods=("bisection", "exact"), tile=tile, device="cpu",
                               precision=precision, progress=False)
    return json.loads(json.dumps(result))


def test_two_gloo_ranks_equal_one_process(tmp_path, rng, monkeypatch):
    """Bit for bit, whatever the split, the tile and the screening precision (bf16 on the ranks
    against fp32 in one process)."""
    cases = [
        (make_file(tmp_path / "uneven.h5", rng, 70), 17),     # N not divisible, many tiles
        (make_file(tmp_path / "small.h5", rng, 40), 8192),    # one tile: a rank scores nothing
        (make_file(tmp_path / "ties.h5", rng, 60, lattice=True), 23),  # ties at the cut-off
        (make_file(tmp_path / "half.h5", rng, 50, dtype=np.float16), 29),  # a float16 file
        # a group's top impostors found by a pass of its own, merged over the ranks
        (make_file(tmp_path / "low.h5", rng, 60, low_group=True), 21),
    ]
    jobs = [(str(path), tile, "bf16", str(tmp_path / f"{path.stem}.json")) for path, tile in cases]
    outputs = launch(["-c", RANK_SCRIPT, json.dumps(jobs)])
    for code, out, err in outputs:
        assert code == 0, err
    passes = []
    real = top_impostors._Scopes.passed
    monkeypatch.setattr(top_impostors._Scopes, "passed",
                        lambda self, *args: passes.append(args) or real(self, *args))
    for (path, tile), (*_, out) in zip(cases, jobs):
        expected = single_process(path, 64, "fp32")
        ranks = [json.loads(Path(name).read_text()) for name in (out, out + ".rank1")]
        for result in ranks:
            assert result["engine"]["world_size"] == 2
            assert_same_results(result, expected)
    assert passes  # the low group's


def test_cli_under_two_ranks(tmp_path, rng):
    path = make_file(tmp_path / "e.h5", rng, 50)
    out = tmp_path / "r.json"
    outputs = launch(["-m", "mfftools", "inst-eval", str(path), "--fpr", "1e-2", "--fpr", "1e-3",
                      "--method", "both", "--tile", "19", "--device", "cpu", "--json", str(out)])
    assert [code for code, _, _ in outputs] == [0, 0], outputs[0][2] + outputs[1][2]
    assert "target FPR 0.01" in outputs[0][1] and outputs[1][1] == ""
    expected = json.loads(json.dumps(compact(single_process(path, 19))))
    written = json.loads(out.read_text())
    assert written.pop("source") == str(path)
    assert_same_results(written, expected)


def test_bad_input_is_reported_once(tmp_path, rng):
    path = make_file(tmp_path / "e.h5", rng, 20)
    outputs = launch(["-m", "mfftools", "inst-eval", str(path), "--fpr", "1e-9", "--device", "cpu"])
    assert [code for code, _, _ in outputs] == [1, 1]
    errors = [err for _, _, err in outputs]
    assert "cannot be resolved" in errors[0]
    assert "cannot be resolved" not in errors[1] and "Error" not in errors[1]


FAILING_SCRIPT = """
import os, sys
from mfftools import dist
if int(os.environ["RANK"]) == 1:
    dist.init("cpu")
    os._exit(3)  # dies before its share of the work is merged
from mfftools.cli import main
main(sys.argv[1:])
"""


def test_a_dead_rank_fails_the_job_with_a_clear_message(tmp_path, rng):
    path = make_file(tmp_path / "e.h5", rng, 50)
    out = tmp_path / "r.json"
    outputs = launch(["-c", FAILING_SCRIPT, "inst-eval", str(path), "--fpr", "1e-2", "--tile",
                      "19", "--device", "cpu", "--json", str(out)], timeout=90)
    (code, _, err), (code_dead, _, _) = outputs
    assert code_dead == 3
    assert code == 1
    assert "distributed evaluation failed on rank 0 of 2" in err
    assert "no results were written" in err
    assert not out.exists()


IDENT_SCRIPT = """
import json, sys
from mfftools import dist
from mfftools.embeddings import open_embeddings
from mfftools.evaluation import top_impostors
from mfftools.evaluation.identification import evaluate_identification
info = dist.init("cpu")
path, out = sys.argv[1:]
result = evaluate_identification(open_embeddings(path), targets=(0.05, 0.1), ranks=(1, 3),
                                 tile=23, device="cpu", precision="bf16", progress=False,
                                 dist_info=info)
json.dump(result, open(out + f".rank{info.rank}", "w"))
dist.shutdown()
"""


def test_identification_split_over_two_ranks_equals_one_process(tmp_path, rng):
    path = make_file(tmp_path / "e.h5", rng, 90)
    outputs = launch(["-c", IDENT_SCRIPT, str(path), str(tmp_path / "r.json")])
    for code, _, err in outputs:
        assert code == 0, err
    single = evaluate_identification(open_embeddings(path), targets=(0.05, 0.1), ranks=(1, 3),
                                     device="cpu", precision="fp32", progress=False)
    for rank in (0, 1):
        result = json.loads((tmp_path / f"r.json.rank{rank}").read_text())
        assert result.pop("engine")["world_size"] == 2
        assert result == json.loads(json.dumps(without_engine(single)))
