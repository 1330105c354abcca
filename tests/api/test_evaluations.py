"""The protocols from Python: the same results file and table as the commands, on files or on
the same data held as arrays or tensors."""
import csv
import json

import numpy as np
import torch
from click.testing import CliRunner

import mfftools
from embedding_files import write_images_file
from mfftools.cli import main

from .conftest import GROUPS


def command(*args):
    """Run a command; its printed output."""
    result = CliRunner().invoke(main, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output
    return result.output


def written(path):
    return json.loads(path.read_text())


def without(data, *keys):
    """The results without `keys`, and without how the input names the images of the pairs and
    searches it lists (paths, identity names and labels: a file's or the arrays')."""
    kept = {key: value for key, value in data.items() if key not in keys}
    for key in ("top_impostors", "top_nonmated"):
        if key in kept:
            kept[key] = _unnamed(kept[key])
    return kept


def _unnamed(value):
    if isinstance(value, dict):
        return {key: _unnamed(item) for key, item in value.items()
                if key not in ("identity", "identity_name", "path")}
    if isinstance(value, list):
        return [_unnamed(item) for item in value]
    return value


def test_instance_gives_the_commands_file_table_and_per_identity_table(tmp_path, images_file):
    printed = command("inst-eval", images_file, "--fpr", "1e-2", "--fpr", "1e-3", "--method",
                      "both", "--det", "--tile", "50", "--device", "cpu", "--name", "mine",
                      "--json", tmp_path / "r.json", "--per-identity", tmp_path / "ids.csv")
    result = mfftools.instance(images_file, fpr=[1e-2, 1e-3], method="both", det=True, tile=50,
                               device="cpu", name="mine")
    assert result.to_dict() == written(tmp_path / "r.json")
    assert result.to_dict()["source"] == str(images_file) and result.model == "mine"
    assert repr(result) in printed and repr(result).startswith(f"{result.data['n_images']} images")
    with open(tmp_path / "ids.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    table = result.per_identity
    header = rows[0]
    assert [key for key in table if key != "name"] == header
    for column, values in zip(header, zip(*rows[1:])):
        if column == "group":
            assert table[column].tolist() == list(values)
        else:
            found = np.array([np.nan if value == "" else float(value) for value in values])
            np.testing.assert_array_equal(table[column], found)
    assert table["name"].tolist() == [f"id{label}" for label in table["identity"]]
    # without --name the file's model names the results, as on the command line
    command("inst-eval", images_file, "--fpr", "1e-2", "--device", "cpu", "--json",
            tmp_path / "plain.json")
    assert mfftools.instance(images_file, fpr=1e-2, device="cpu").to_dict() == written(
        tmp_path / "plain.json")


def test_instance_of_arrays_and_tensors_is_that_of_their_file(tmp_path, faces):
    rows, identity, group = faces
    names = np.array(GROUPS)[group]
    path = mfftools.save(tmp_path / "saved.h5", rows, identity, names, model="toy")
    from_file = mfftools.instance(path, fpr=1e-2, device="cpu").to_dict()
    assert from_file["model"] == "toy" and from_file["group_names"] == GROUPS
    expected = without(from_file, "source", "model", "images")
    for given in (rows, torch.from_numpy(rows), rows.astype(np.float64), list(rows)):
        result = mfftools.instance(given, identity, names, fpr=1e-2, device="cpu")
        assert without(result.to_dict(), "images") == expected
    # groups as indices with their names, identities as any labels (here sorted as the integers
    # are, so that identities come in the same order): the same numbers
    labels = np.array([f"person-{label:05d}" for label in identity])
    result = mfftools.instance(rows, labels, group, group_names=GROUPS, fpr=1e-2, device="cpu")
    assert without(result.to_dict(), "images", "identities") == without(expected, "identities")
    assert set(result.per_identity["name"]) == set(labels.tolist())
    # a file holds float16 rows as they are: an array of them gives the same numbers
    half = mfftools.save(tmp_path / "half.h5", rows.astype(np.float16), identity, names)
    assert mfftools.load(half).dtype == np.float16
    from_half = without(mfftools.instance(half, fpr=1e-2, device="cpu").to_dict(), "source",
                        "images")
    for given in (rows.astype(np.float16), torch.from_numpy(rows).half()):
        result = mfftools.instance(given, identity, names, fpr=1e-2, device="cpu")
        assert without(result.to_dict(), "images") == from_half


def test_the_callers_arrays_are_left_as_they_were(faces, pairs):
    rows, identity, group = faces
    tensor = torch.from_numpy(rows.copy())
    copies = rows.copy(), tensor.clone()
    mfftools.instance(rows, identity, group, fpr=1e-2, device="cpu")
    mfftools.instance(tensor, identity, group, fpr=1e-2, device="cpu")
    mfftools.identification(rows, identity, group, fpir=0.1, device="cpu")
    first, second, issame, names = pairs
    before = first.copy(), second.copy()
    mfftools.pairs(first, second, issame, names)
    mfftools.calibrate(first, second, issame, names, method="faircal", clusters=4)
    np.testing.assert_array_equal(rows, copies[0])
    assert torch.equal(tensor, copies[1])
    np.testing.assert_array_equal(first, before[0])
    np.testing.assert_array_equal(second, before[1])


def test_pairs_give_the_commands_file_and_table(tmp_path, pairs_file, pairs):
    printed = command("pair-eval", pairs_file, "--json", tmp_path / "p.json")
    result = mfftools.pairs(pairs_file)
    assert result.to_dict() == written(tmp_path / "p.json")
    assert repr(result) in printed and result.model == "toy"
    first, second, issame, names = pairs
    from_arrays = mfftools.pairs(first, second, issame, names).to_dict()
    assert "source" not in from_arrays
    assert from_arrays == without(written(tmp_path / "p.json"), "source", "model")
    tensors = mfftools.pairs(torch.from_numpy(first), torch.from_numpy(second),
                             torch.from_numpy(issame), names.tolist())
    assert tensors.to_dict() == from_arrays
    command("pair-eval", pairs_file, "--groups", "Asian", "--grid", "insightface", "--json",
            tmp_path / "asian.json")
    assert mfftools.pairs(pairs_file, only_groups=["Asian"], grid="insightface").to_dict() == \
        written(tmp_path / "asian.json")


def test_identification_gives_the_commands_file_and_table(tmp_path, images_file, faces):
    printed = command("ident-eval", images_file, "--fpir", "0.1", "--ranks", "1,3",
                      "--device", "cpu", "--json", tmp_path / "i.json")
    result = mfftools.identification(images_file, fpir=0.1, ranks=(1, 3), device="cpu")
    assert result.to_dict() == written(tmp_path / "i.json") and repr(result) in printed
    rows, identity, group = faces
    from_arrays = mfftools.identification(rows, identity, np.array(GROUPS)[group], fpir=0.1,
                                          ranks=(1, 3), device="cpu").to_dict()
    assert without(from_arrays, "images") == without(written(tmp_path / "i.json"), "source",
                                                     "model", "images")


def test_identification_with_probes_gives_the_commands_file(tmp_path, faces):
    rows, identity, group = faces
    enrolled = np.isin(identity, np.unique(identity)[::2])
    names = np.array([f"id{label}" for label in identity])
    files = [write_images_file(tmp_path / f"{name}.h5", rows[keep], identity[keep], group[keep],
                               GROUPS, identity_names=names[keep])
             for name, keep in (("gallery", enrolled), ("probes", np.ones(len(rows), bool)))]
    command("ident-eval", "--gallery", files[0], "--probes", files[1], "--fpir", "0.1",
            "--device", "cpu", "--json", tmp_path / "g.json")
    result = mfftools.identification(files[0], probes=files[1], fpir=0.1, device="cpu")
    assert result.to_dict() == written(tmp_path / "g.json")
    assert result.to_dict()["source"] == {"gallery": str(files[0]), "probes": str(files[1])}
    # arrays find their templates by name, their labels as text; the groups they lack are named
    group_names = np.array(GROUPS)[group]
    from_arrays = mfftools.identification(
        rows[enrolled], names[enrolled], group_names[enrolled], probes=rows,
        probe_identities=names, probe_groups=group_names, fpir=0.1, device="cpu").to_dict()
    assert without(from_arrays, "images") == without(written(tmp_path / "g.json"), "source",
                                                     "images")


def test_template_gives_the_commands_file_and_table(ijb):
    folder = ijb["folder"]
    lists = ["--pairs", folder / "pairs.txt", "--gallery", folder / "g1.csv", "--gallery",
             folder / "g2.csv", "--probes", folder / "probes.csv", "--metadata",
             folder / "meta.csv"]
    printed = command("template-eval", ijb["file"], *lists, "--far", "0.1", "--fpir", "0.5",
                      "--json", folder / "t.json")
    result = mfftools.template(ijb["file"], pairs=folder / "pairs.txt",
                               galleries=[folder / "g1.csv", folder / "g2.csv"],
                               probes=folder / "probes.csv", metadata=folder / "meta.csv",
                               far=0.1, fpir=0.5)
    assert result.to_dict() == written(folder / "t.json") and repr(result) in printed
    from_arrays = mfftools.template(
        ijb["rows"], ijb["template"], ijb["media"], ijb["score"], pairs=folder / "pairs.txt",
        galleries=[folder / "g1.csv", folder / "g2.csv"], probes=folder / "probes.csv",
        metadata=folder / "meta.csv", far=0.1, fpir=0.5).to_dict()
    differ = ("embeddings", "images", "model", "settings")
    assert without(from_arrays, *differ) == without(written(folder / "t.json"), *differ)
    assert from_arrays["settings"]["flip"] is None  # arrays do not say how they were made


def test_a_torch_tensor_is_evaluated_where_it_lives(faces, monkeypatch):
    rows, identity, group = faces
    from mfftools import arrays
    from mfftools.api.inputs import device_for

    def never(*args, **kwargs):
        raise AssertionError("rows read block by block to the host")

    # the instance protocol gathers a tensor's rows on its own device, never through the host
    monkeypatch.setattr(arrays.ArrayEmbeddings, "iter_blocks", never)
    result = mfftools.instance(torch.from_numpy(rows), identity, group, fpr=1e-2,
                               device="cpu")
    assert result.data["engine"]["device"] == "cpu"
    # "auto" follows a CUDA tensor onto its GPU (checked on a GPU by
    # benchmarks/gpu_api_check.py); a tensor on any other device leaves the choice to "auto"
    assert device_for("auto", rows, torch.empty(0, device="meta")) == "auto"
    assert device_for("cpu", torch.from_numpy(rows)) == "cpu"
