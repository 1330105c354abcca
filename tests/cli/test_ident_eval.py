"""`mfftools ident-eval` through click's CliRunner."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from embedding_files import write_images_file
from mfftools.cli import main
from mfftools.embeddings import open_embeddings
from mfftools.evaluation.identification import evaluate_identification

NAMES = ["African", "Asian", "Caucasian"]


def run(*args):
    return CliRunner().invoke(main, ["ident-eval", *map(str, args)])


@pytest.fixture
def embeddings_file(tmp_path, rng):
    sizes = rng.integers(1, 5, size=120)
    identity = np.repeat(np.arange(120) * 2 + 1, sizes)
    group = np.repeat(np.arange(120) % 3, sizes)
    emb = (np.repeat(rng.standard_normal((120, 12)), sizes, axis=0)
           + 0.7 * rng.standard_normal((len(identity), 12))).astype(np.float32)
    return write_images_file(tmp_path / "e.h5", emb, identity, group, NAMES, model="toy")


def test_table_and_json(tmp_path, embeddings_file):
    out = run(embeddings_file, "--fpir", "0.05", "--fpir", "0.1", "--ranks", "1,3", "--rank", "3",
              "--device", "cpu", "--json", tmp_path / "r.json")
    assert out.exit_code == 0, out.output
    data = json.loads((tmp_path / "r.json").read_text())
    expected = evaluate_identification(open_embeddings(embeddings_file), targets=(0.05, 0.1),
                                       rank=3, ranks=(1, 3), device="cpu", progress=False)
    assert {"protocol", "group_names", "n_templates", "n_mated", "n_nonmated", "rank", "ranks",
            "results", "cmc"} <= set(data)
    assert data["protocol"] == "identification" and data["model"] == "toy"
    assert data["results"] == json.loads(json.dumps(expected["results"]))
    assert data["cmc"] == expected["cmc"]
    for key in ("target_fpir", "threshold", "fnir", "fpir", "groups", "fairness",
                "false_positive_matrix"):
        assert key in data["results"][0]
    first = expected["results"][0]
    assert f"target FPIR 0.05: threshold {first['threshold']:.6f}" in out.output
    caucasian = first["groups"]["Caucasian"]
    assert any(line.split()[:3] == ["Caucasian", str(caucasian["n_mated"]),
                                    str(caucasian["n_nonmated"])] for line in out.output.splitlines())
    assert "rank 3" in out.output


def test_plots_are_the_reports_identification_figures(tmp_path, embeddings_file):
    out = run(embeddings_file, "--fpir", "0.05", "--fpir", "0.1", "--device", "cpu",
              "--plots", tmp_path / "figs")
    assert out.exit_code == 0, out.output
    figures = ["identification_false_positives_fpir5e-02.png",
               "identification_false_positives_fpir1e-01.png",
               "identification_cmc.png", "identification_det.png"]
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == sorted(figures)
    for name in figures:
        assert f"figure written to {tmp_path / 'figs' / name}" in out.output


def test_two_files(tmp_path, embeddings_file):
    out = run("--gallery", embeddings_file, "--probes", embeddings_file, "--fpir", "0.5",
              "--device", "cpu", "--match-by", "label")
    assert out.exit_code == 1 and "no non-mated searches" in out.output
    out = run("--gallery", embeddings_file, "--probes", embeddings_file, "--fpir", "0.5",
              "--device", "cpu")
    assert out.exit_code == 1 and "give --match-by label" in out.output


@pytest.mark.parametrize("args, message", [
    ([], "give one embeddings file to split, or --gallery G.h5 --probes P.h5"),
    (["--gallery", "x.h5"], "--gallery and --probes go together"),
    (["--ranks", "1,x"], "is not a comma-separated list of integers"),
    (["--fpir", "1e-9"], "cannot be resolved"),
    (["--gallery", "g.h5", "--probes", "p.h5", "--gallery-images", "2"],
     "--gallery-images applies to one file split into a gallery"),
    (["--match-by", "name"], "--match-by applies to --gallery G.h5 --probes P.h5"),
])
def test_bad_options(embeddings_file, args, message):
    if args and args[0] in ("--ranks", "--fpir", "--match-by"):
        args = [embeddings_file, *args]
    out = run(*args, "--device", "cpu")
    assert out.exit_code != 0
    assert message in out.output
