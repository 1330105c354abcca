"""`mfftools inst-eval` through click's CliRunner."""
import csv
import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from embedding_files import write_images_file, write_pairs_file
from mfftools.cli import main
from mfftools.embeddings import open_embeddings
from mfftools.evaluation.instance import evaluate_instance

GROUPS = ["African", "Asian", "Caucasian", "Indian"]
ENTRY_KEYS = {"target_fpr", "method", "threshold", "tpr", "fpr", "converged", "instance",
              "groups", "fairness"}


@pytest.fixture
def embeddings_file(tmp_path, rng):
    n_ids = 60
    sizes = rng.integers(1, 6, size=n_ids)
    identity = np.repeat(np.arange(n_ids) * 3 + 11, sizes)
    group = np.repeat(np.arange(n_ids) % 4, sizes)
    centres = rng.standard_normal((n_ids, 24))
    emb = (np.repeat(centres, sizes, axis=0) + rng.standard_normal((len(identity), 24)))
    return write_images_file(tmp_path / "emb.h5", emb.astype(np.float32), identity, group, GROUPS,
                             model="toy")


def run(*args):
    return CliRunner().invoke(main, ["inst-eval", *map(str, args)])


def test_json_csv_and_plots(tmp_path, embeddings_file):
    out = run(embeddings_file, "--fpr", "1e-2", "--fpr", "1e-3", "--method", "both", "--tile", "50",
              "--device", "cpu", "--json", tmp_path / "r.json", "--per-identity",
              tmp_path / "ids.csv", "--plots", tmp_path / "figs")
    assert out.exit_code == 0, out.output
    assert "target FPR 0.01 (bisection" in out.output and "Caucasian" in out.output
    data = json.loads((tmp_path / "r.json").read_text())
    assert {"protocol", "n_images", "n_identities", "dim", "group_names", "results",
            "similarity"} <= set(data)
    assert data["protocol"] == "instance" and data["model"] == "toy"
    assert [(e["target_fpr"], e["method"]) for e in data["results"]] == [
        (1e-2, "bisection"), (1e-2, "exact"), (1e-3, "bisection"), (1e-3, "exact")]
    expected = evaluate_instance(open_embeddings(embeddings_file), targets=(1e-2, 1e-3),
                                 methods=("bisection", "exact"), tile=50, device="cpu",
                                 progress=False)
    for entry, want in zip(data["results"], expected["results"]):
        assert ENTRY_KEYS <= set(entry)
        assert set(entry["instance"]) == {"tpr_mean", "tpr_std", "fpr_mean", "fpr_std"}
        assert set(entry["groups"]) == set(GROUPS)
        for stats in entry["groups"].values():
            assert set(stats) == {"tpr_mean", "tpr_std", "fpr_mean", "fpr_std", "fmr", "fnmr",
                                  "fmr_probe_group", "fmr_relative"}
        assert entry["reference_group"] in GROUPS
        assert set(entry["ladder"]) == {"target_fpr", "threshold", "identity_tp", "identity_fp"}
        assert set(entry["fairness"]) == {"fdr", "fpd", "fnd", "garbe", "fmr_max_geomean",
                                          "fnmr_max_geomean"}
        for key in ("threshold", "tpr", "fpr", "converged", "instance", "groups", "fairness"):
            assert entry[key] == want[key]
    assert set(data["images"]) == {"n", "paths_sha256", "identities_sha256"}
    assert data["images"]["n"] == data["n_images"]
    for stats in data["similarity"].values():
        assert set(stats) == {"intra_mean", "intra_std", "inter_mean", "inter_std",
                              "intra_mean_multi", "intra_std_multi"}
    rows = list(csv.DictReader((tmp_path / "ids.csv").open()))
    assert len(rows) == data["n_identities"] == 60
    assert rows[0]["identity"] == "11" and rows[0]["group"] == "African"
    singles = [row for row in rows if row["n_images"] == "1"]
    assert singles and all(row["tpr_0.01_bisection"] == "" for row in singles)
    # the report's figures: three per target and method, then similarity, ROC and scores
    slugs = ("fpr1e-02_bisection", "fpr1e-02_exact", "fpr1e-03_bisection", "fpr1e-03_exact")
    figures = {f"instance_{kind}_{slug}.png" for slug in slugs
               for kind in ("group_means", "fmr_matrix", "per_identity")}
    figures |= {"instance_similarity.png", "instance_roc.png", "instance_score_distributions.png"}
    assert {p.name for p in (tmp_path / "figs").iterdir()} == figures
    for name in figures:
        assert f"figure written to {tmp_path / 'figs' / name}" in out.output


# Draws inst-eval's figures in a fresh interpreter, then prints matplotlib's backend and the
# figures pyplot holds.
PLOTS_AND_PYPLOT_STATE = """
import sys
import matplotlib
from mfftools.cli import main
main(["inst-eval", sys.argv[1], "--fpr", "1e-2", "--device", "cpu", "--plots", sys.argv[2]],
     standalone_mode=False)
from matplotlib import pyplot
print(matplotlib.get_backend(), pyplot.get_fignums())
"""


def test_plots_leave_matplotlibs_global_state_alone(tmp_path, embeddings_file):
    done = subprocess.run(
        [sys.executable, "-c", PLOTS_AND_PYPLOT_STATE, str(embeddings_file),
         str(tmp_path / "figs")],
        capture_output=True, text=True, check=True, env=dict(os.environ, MPLBACKEND="svg"),
    )
    assert done.stdout.splitlines()[-1] == "svg []"  # the user's backend, no figure left open
    assert len(list((tmp_path / "figs").glob("*.png"))) == 6


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tile", "0"], "--tile must be at least 1"),
        (["--fpr", "1.5"], "outside (0, 1)"),
        (["--fpr", "1e-12"], "cannot be resolved"),
    ],
)
def test_bad_options(embeddings_file, args, message):
    out = run(embeddings_file, "--device", "cpu", *args)
    assert out.exit_code == 1
    assert message in out.output


def test_bad_files(tmp_path, embeddings_file, rng):
    out = run(tmp_path / "missing.h5")
    assert out.exit_code == 1 and "not found" in out.output
    with h5py.File(embeddings_file, "r+") as handle:
        handle.attrs["complete"] = False
    out = run(embeddings_file)
    assert out.exit_code == 1 and "incomplete" in out.output
    pairs = write_pairs_file(tmp_path / "p.h5", rng.standard_normal((4, 3)).astype(np.float32),
                             np.array([True, False]), np.zeros(2, dtype=np.int64), ["A"])
    out = run(pairs)
    assert out.exit_code == 1 and "'images'-layout" in out.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error when CUDA is absent")
def test_cuda_asked_but_absent(embeddings_file):
    out = run(embeddings_file, "--device", "cuda")
    assert out.exit_code == 1 and "CUDA is not available" in out.output


def test_name_overrides_the_model_attribute(tmp_path, embeddings_file):
    out = run(embeddings_file, "--fpr", "1e-2", "--device", "cpu", "--name", "model-a",
              "--json", tmp_path / "r.json")
    assert out.exit_code == 0, out.output
    assert json.loads((tmp_path / "r.json").read_text())["model"] == "model-a"


def test_table_keeps_its_columns_when_a_value_is_null(tmp_path, rng):
    """A group of one-image identities has no TPR: a dash in the column's width, not a shift."""
    identity = np.concatenate([np.repeat(np.arange(20), 3), np.arange(100, 110)])
    group = np.where(identity >= 100, 1, 0)
    emb = rng.standard_normal((len(identity), 8)).astype(np.float32)
    path = write_images_file(tmp_path / "e.h5", emb, identity, group, ["A", "B"])
    out = run(path, "--fpr", "1e-2", "--device", "cpu")
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    header = next(line for line in lines if "TPR mean" in line)
    row_a = next(line for line in lines if line.startswith("A "))
    row_b = next(line for line in lines if line.startswith("B "))
    assert len(row_a) == len(row_b) == len(header)
    assert row_b.split()[1:3] == ["-", "-"]
    fpr_column = header.index("FPR mean") + len("FPR mean")
    assert row_a[fpr_column - 1] != " " and row_b[fpr_column - 1] != " "


def test_precision_option_and_what_it_did(tmp_path, embeddings_file):
    outputs = {}
    for precision in ("fp32", "bf16"):
        out = run(embeddings_file, "--fpr", "1e-2", "--device", "cpu", "--precision", precision,
                  "--json", tmp_path / f"{precision}.json")
        assert out.exit_code == 0, out.output
        assert f"screened in {precision} (bound " in out.output
        data = json.loads((tmp_path / f"{precision}.json").read_text())
        assert data.pop("engine")["precision"] == precision
        outputs[precision] = data
    assert outputs["fp32"] == outputs["bf16"]
    out = run(embeddings_file, "--precision", "fp8")
    assert out.exit_code == 2 and "Invalid value for '--precision'" in out.output


def test_one_group_prints_no_fairness_numbers(tmp_path, rng):
    identity = np.repeat(np.arange(30), 3)
    emb = rng.standard_normal((len(identity), 8)).astype(np.float32)
    path = write_images_file(tmp_path / "e.h5", emb, identity, np.zeros_like(identity), ["A"])
    out = run(path, "--fpr", "1e-2", "--device", "cpu")
    assert out.exit_code == 0, out.output
    assert "fairness: n/a (fewer than two groups with genuine and impostor pairs)" in out.output
    assert "1.0000" not in out.output


def test_reference_group_divides_every_matched_fmr(tmp_path, embeddings_file):
    out = run(embeddings_file, "--fpr", "1e-2", "--device", "cpu", "--reference-group", "Indian",
              "--json", tmp_path / "r.json")
    assert out.exit_code == 0, out.output
    entry = json.loads((tmp_path / "r.json").read_text())["results"][0]
    assert entry["reference_group"] == "Indian"
    base = entry["groups"]["Indian"]["fmr"]
    assert base > 0
    for stats in entry["groups"].values():
        assert stats["fmr_relative"] == pytest.approx(stats["fmr"] / base, rel=1e-15)
    assert "relative to Indian" in out.output


def test_an_unknown_reference_group_is_refused(embeddings_file):
    out = run(embeddings_file, "--fpr", "1e-2", "--device", "cpu", "--reference-group", "Martian")
    assert out.exit_code == 1
    assert "--reference-group 'Martian' is not one of the groups (African, Asian" in out.output
