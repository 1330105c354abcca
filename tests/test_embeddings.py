import json
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from embedding_files import write_images_file, write_pairs_file
from mfftools.embeddings import SCHEMA, EmbeddingsWriter, open_embeddings, partial_path
from mfftools.errors import MfftoolsError

GROUPS = ["A", "B"]


def _labels(n):
    identity = np.arange(n) // 3
    group = (identity % 2).astype(np.int64)
    return identity, group


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_images_round_trip(tmp_path, rng, dtype):
    emb = rng.normal(size=(50, 8)).astype(dtype)
    identity, group = _labels(50)
    path = write_images_file(tmp_path / "e.h5", emb, identity, group, GROUPS, model="r18")
    loaded = open_embeddings(path, layout="images")
    assert (loaded.n_rows, loaded.dim, loaded.dtype) == (50, 8, np.dtype(dtype))
    assert loaded.group_names == GROUPS
    np.testing.assert_array_equal(loaded.identity, identity)
    np.testing.assert_array_equal(loaded.group, group)
    np.testing.assert_array_equal(loaded.read(), emb.astype(np.float32))
    assert loaded.read().dtype == np.float32
    assert loaded.image_paths[3] == "img_3.jpg"
    assert loaded.attrs["model"] == "r18"
    blocks = list(loaded.iter_blocks(block_rows=16))
    assert [first for first, _ in blocks] == [0, 16, 32, 48]
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), emb.astype(np.float32))


def test_pairs_round_trip(tmp_path, rng):
    emb = rng.normal(size=(20, 4)).astype(np.float32)
    issame = np.array([True, False] * 5)
    pair_group = np.array([0] * 5 + [1] * 5)
    path = write_pairs_file(tmp_path / "p.h5", emb, issame, pair_group, GROUPS)
    loaded = open_embeddings(path, layout="pairs")
    np.testing.assert_array_equal(loaded.issame, issame)
    np.testing.assert_array_equal(loaded.pair_group, pair_group)
    np.testing.assert_array_equal(loaded.read(), emb)
    with pytest.raises(MfftoolsError, match="needs a 'images'-layout"):
        open_embeddings(path, layout="images")


def test_resume_after_crash_keeps_written_rows(tmp_path, rng):
    emb = rng.normal(size=(40, 6)).astype(np.float32)
    identity, group = _labels(40)
    path = tmp_path / "e.h5"
    columns = lambda a, b: dict(  # noqa: E731
        identity=identity[a:b], group=group[a:b], path=[f"p{k}" for k in range(a, b)]
    )
    with pytest.raises(RuntimeError):
        with EmbeddingsWriter.create(
            path, layout="images", dim=6, group_names=GROUPS, attrs={"source": "s.zip"}
        ) as writer:
            writer.append(emb[:10], **columns(0, 10))
            writer.append(emb[10:25], **columns(10, 25))
            raise RuntimeError("killed")
    assert not path.exists()  # rows stay in the partial file until it is complete
    # A crash between the data flush and the `rows_written` update leaves extra rows behind.
    with h5py.File(partial_path(path), "r+") as handle:
        handle["embeddings"].resize(30, axis=0)
        handle["embeddings"][25:30] = 7.0
    with pytest.raises(MfftoolsError, match="incomplete"):
        open_embeddings(partial_path(path))
    with EmbeddingsWriter.resume(path) as writer:
        assert writer.rows_written == 25 and writer.last_source_index == 24
        writer.append(emb[25:], **columns(25, 40))
    assert not partial_path(path).exists()
    loaded = open_embeddings(path)
    np.testing.assert_array_equal(loaded.read(), emb)
    np.testing.assert_array_equal(loaded.identity, identity)
    with h5py.File(path, "r") as handle:
        np.testing.assert_array_equal(handle["source_index"][()], np.arange(40))
    with pytest.raises(MfftoolsError, match="cannot reopen to resume"):
        EmbeddingsWriter.resume(path)


def test_resume_can_keep_fewer_rows(tmp_path, rng):
    emb = rng.normal(size=(12, 4)).astype(np.float32)
    identity, group = _labels(12)
    path = tmp_path / "e.h5"
    writer = EmbeddingsWriter.create(path, layout="images", dim=4, group_names=GROUPS)
    writer.append(emb[:9], identity=identity[:9], group=group[:9], path=["p"] * 9)
    writer.close()
    with EmbeddingsWriter.resume(path, keep_rows=5) as writer:
        assert writer.rows_written == 5
        writer.append(emb[5:], identity=identity[5:], group=group[5:], path=["p"] * 7)
    np.testing.assert_array_equal(open_embeddings(path).read(), emb)


def test_a_file_is_marked_complete_only_with_every_expected_row(tmp_path, rng):
    path = tmp_path / "e.h5"
    identity, group = _labels(6)
    writer = EmbeddingsWriter.create(path, layout="images", dim=3, group_names=GROUPS,
                                     attrs={"n_rows_expected": 6})
    writer.append(rng.normal(size=(4, 3)), identity=identity[:4], group=group[:4], path=["p"] * 4)
    with pytest.raises(MfftoolsError, match="4 rows written of 6 expected; not marked complete"):
        writer.finish()
    assert not path.exists()
    with h5py.File(partial_path(path)) as handle:
        assert not handle.attrs["complete"] and handle.attrs["rows_written"] == 4


def test_a_second_writer_is_refused_naming_the_first(tmp_path):
    path = tmp_path / "e.h5"
    script = textwrap.dedent(f"""
        import sys, time
        from mfftools.embeddings import EmbeddingsWriter
        writer = EmbeddingsWriter.create({str(path)!r}, layout="images", dim=2, group_names=["A"])
        print("writing", flush=True)
        time.sleep(60)
    """)
    first = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout.readline().strip() == "writing"
        with pytest.raises(MfftoolsError) as error:
            EmbeddingsWriter.create(path, layout="images", dim=2, group_names=["A"])
        assert str(error.value) == (
            f"{path} is being written by another mfftools process (pid {first.pid}); wait for "
            "it to finish, or write to another file")
        with pytest.raises(MfftoolsError, match=f"pid {first.pid}"):
            EmbeddingsWriter.resume(path)
        assert partial_path(path).exists()  # the first writer's file is left alone
    finally:
        first.kill()
        first.wait()
    EmbeddingsWriter.create(path, layout="images", dim=2, group_names=["A"]).close()


def test_a_damaged_file_is_one_line_suggesting_extraction(tmp_path, rng):
    identity, group = _labels(3000)
    path = write_images_file(tmp_path / "e.h5", rng.normal(size=(3000, 64)).astype(np.float32),
                             identity, group, GROUPS)
    data = path.read_bytes()
    for size in (len(data) // 2, len(data) - 4096, 100):
        cut = tmp_path / f"cut{size}.h5"
        cut.write_bytes(data[:size])
        with pytest.raises(MfftoolsError) as error:
            open_embeddings(cut).read()
        message = str(error.value)
        assert message.startswith(f"{cut}: ") and message.endswith("; extract it again")
        assert "\n" not in message


def _write_raw(path, **overrides):
    """A hand-written valid images file, with datasets/attributes overridden."""
    n = 6
    content = {
        "embeddings": np.ones((n, 3), np.float32),
        "identity": np.array([0, 0, 1, 1, 2, 2]),
        "group": np.array([0, 0, 1, 1, 0, 0]),
    }
    attrs = {"schema": SCHEMA, "layout": "images", "group_names": GROUPS, "complete": True}
    for key, value in overrides.items():
        (attrs if key in attrs else content)[key] = value
    with h5py.File(path, "w") as handle:
        handle.attrs.update({k: v for k, v in attrs.items() if v is not None})
        for key, value in content.items():
            if value is not None:
                handle[key] = value
    return path


def test_hand_written_file_is_accepted(tmp_path):
    loaded = open_embeddings(_write_raw(tmp_path / "ok.h5"))
    assert loaded.n_rows == 6 and loaded.image_paths is None


def _emb_with(row, value):
    emb = np.ones((6, 3), np.float32)
    emb[row] = value
    return emb


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"schema": "other/2"}, "schema is 'other/2'"),
        ({"layout": "grid"}, "layout is 'grid'"),
        ({"complete": False}, "incomplete"),
        ({"group_names": None}, "'group_names' is missing"),
        ({"identity": np.arange(5)}, "'identity' has shape"),
        ({"group": np.array([0, 0, 1, 1, 0, 2])}, "'group' row 5 is 2"),
        ({"identity": np.zeros(6, int)}, "fewer than two identities"),
        ({"embeddings": np.ones((6, 3), np.int32)}, "float32, float16 or float64, found shape"),
        ({"embeddings": None}, "'embeddings' is missing"),
    ],
)
def test_validation_errors(tmp_path, overrides, message):
    with pytest.raises(MfftoolsError, match=message):
        open_embeddings(_write_raw(tmp_path / "bad.h5", **overrides))


@pytest.mark.parametrize(
    "value, message", [(np.nan, "row 4 contains NaN"), (np.inf, "row 4 contains NaN or Inf"), (0.0, "row 4 is all zeros")]
)
def test_bad_rows_named_when_read(tmp_path, value, message):
    loaded = open_embeddings(_write_raw(tmp_path / "bad.h5", embeddings=_emb_with(4, value)))
    with pytest.raises(MfftoolsError, match=message):
        loaded.read()


def test_missing_and_non_hdf5_files(tmp_path):
    with pytest.raises(MfftoolsError, match="not found"):
        open_embeddings(tmp_path / "none.h5")
    (tmp_path / "text.h5").write_text("hello")
    with pytest.raises(MfftoolsError, match="not an HDF5 file .*; extract it again"):
        open_embeddings(tmp_path / "text.h5")


def test_incomplete_allowed_on_request(tmp_path):
    loaded = open_embeddings(_write_raw(tmp_path / "i.h5", complete=False), allow_incomplete=True)
    assert loaded.n_rows == 6


def test_a_missing_complete_attribute_says_what_is_wrong(tmp_path):
    path = _write_raw(tmp_path / "m.h5", complete=None)
    with pytest.raises(MfftoolsError) as error:
        open_embeddings(path)
    assert str(error.value) == (
        f"{path}: root attribute 'complete' is missing, so the file was not written by a "
        "finished mfftools extraction; a file written by other tools must set complete=True "
        "once all its rows are in (see docs/embeddings-file.md)"
    )
    assert "interrupted" not in str(error.value)


def test_float64_rows_are_read_rounded_to_float32(tmp_path, rng):
    rows = rng.normal(size=(6, 3))
    loaded = open_embeddings(_write_raw(tmp_path / "d.h5", embeddings=rows))
    assert loaded.dtype == np.float64
    read = loaded.read()
    assert read.dtype == np.float32
    np.testing.assert_array_equal(read, rows.astype(np.float32))
    rows[4, 1] = 1e300  # beyond float32
    with pytest.raises(MfftoolsError, match="row 4 contains NaN or Inf"):
        open_embeddings(_write_raw(tmp_path / "big.h5", embeddings=rows)).read()


def test_a_float64_file_evaluates_as_its_float32_rounding(tmp_path, rng):
    from click.testing import CliRunner

    from mfftools.cli import main

    identity = np.repeat(np.arange(20), 3)
    group = identity % 2
    rows = np.repeat(rng.normal(size=(20, 8)), 3, axis=0) + 0.5 * rng.normal(size=(60, 8))
    results = []
    for dtype in (np.float64, np.float32):
        path = write_images_file(tmp_path / f"{np.dtype(dtype).name}.h5", rows.astype(dtype),
                                 identity, group, GROUPS)
        out = tmp_path / f"{np.dtype(dtype).name}.json"
        result = CliRunner().invoke(main, ["inst-eval", str(path), "--fpr", "1e-2", "--device",
                                           "cpu", "--json", str(out)])
        assert result.exit_code == 0, result.output
        results.append(json.loads(out.read_text()))
        assert results[-1].pop("source") == str(path)
    assert results[0] == results[1]


def test_identity_names_and_folds_round_trip(tmp_path, rng):
    emb = rng.normal(size=(6, 4)).astype(np.float32)
    identity, group = _labels(6)
    with EmbeddingsWriter.create(tmp_path / "i.h5", layout="images", dim=4, group_names=GROUPS,
                                 optional_columns=("identity_name",)) as writer:
        writer.append(emb, identity=identity, group=group, path=[f"p{k}" for k in range(6)],
                      identity_name=["ann", "ann", "ann", "bob", "bob", "bob"])
    loaded = open_embeddings(tmp_path / "i.h5")
    assert list(loaded.identity_names) == ["ann"] * 3 + ["bob"] * 3
    with EmbeddingsWriter.create(
            tmp_path / "p.h5", layout="pairs", dim=4, group_names=GROUPS,
            pairs={"issame": [True, False, True], "pair_group": [0, 0, 1], "fold": [0, 1, 1]},
    ) as writer:
        writer.append(emb)
    pairs = open_embeddings(tmp_path / "p.h5")
    np.testing.assert_array_equal(pairs.fold, [0, 1, 1])
    assert open_embeddings(write_pairs_file(tmp_path / "n.h5", emb, np.array([True, False, True]),
                                            np.zeros(3, int), GROUPS)).fold is None
    with h5py.File(tmp_path / "p.h5", "r+") as handle:
        handle["fold"][1] = -1
    with pytest.raises(MfftoolsError, match="dataset 'fold' must hold fold indices 0, 1, ..."):
        open_embeddings(tmp_path / "p.h5")
    with pytest.raises(ValueError, match="no optional columns"):
        EmbeddingsWriter.create(tmp_path / "x.h5", layout="pairs", dim=4, group_names=GROUPS,
                                pairs={"issame": [True], "pair_group": [0]},
                                optional_columns=("identity_name",))


PAIR_LIST = {"pair_index": [[0, 1], [2, 5], [4, 3]], "pair_issame": [True, False, True],
             "pair_fold": [0, 1, 1]}


def _with_pair_list(path, emb, pair_list=PAIR_LIST):
    identity, group = _labels(len(emb))
    with EmbeddingsWriter.create(path, layout="images", dim=emb.shape[1], group_names=GROUPS,
                                 pair_list=pair_list) as writer:
        writer.append(emb, identity=identity, group=group,
                      path=[f"p{k}" for k in range(len(emb))])
    return path


def test_an_images_file_carries_its_own_pair_list(tmp_path, rng):
    emb = rng.normal(size=(6, 4)).astype(np.float32)
    identity, group = _labels(6)
    pair_list = PAIR_LIST
    loaded = open_embeddings(_with_pair_list(tmp_path / "i.h5", emb), layout="images")
    assert loaded.has_pairs and loaded.pair_index.dtype == np.int64
    np.testing.assert_array_equal(loaded.pair_index, pair_list["pair_index"])
    np.testing.assert_array_equal(loaded.pair_issame, pair_list["pair_issame"])
    np.testing.assert_array_equal(loaded.pair_fold, pair_list["pair_fold"])
    without = open_embeddings(write_images_file(tmp_path / "n.h5", emb, identity, group, GROUPS))
    assert not without.has_pairs and without.pair_index is None and without.pair_fold is None
    with pytest.raises(ValueError, match="a pair list belongs to the images layout"):
        EmbeddingsWriter.create(tmp_path / "x.h5", layout="pairs", dim=4, group_names=GROUPS,
                                pairs={"issame": [True], "pair_group": [0]},
                                pair_list=pair_list)


@pytest.mark.parametrize("edit, message", [
    (lambda f: f["pair_index"].__setitem__((1, 1), 6),
     r"dataset 'pair_index' pair 1 is \[2, 6\], outside the 6 rows"),
    (lambda f: f["pair_index"].__setitem__((2, 0), -1),
     r"dataset 'pair_index' pair 2 is \[-1, 3\], outside the 6 rows"),
    (lambda f: f.__delitem__("pair_issame"), "dataset 'pair_issame' is missing"),
    (lambda f: f["pair_fold"].__setitem__(0, -2), "dataset 'pair_fold' must hold fold indices"),
    (lambda f: (f.__delitem__("pair_issame"), f.create_dataset("pair_issame", data=[True])),
     r"dataset 'pair_issame' has shape \(1,\), expected \(3,\)"),
    (lambda f: (f.__delitem__("pair_index"), f.create_dataset("pair_index", data=[0, 1, 2])),
     r"'pair_index' must be \[P, 2\] integer row indices, found shape \(3,\)"),
    (lambda f: f.__delitem__("pair_index"), "datasets 'pair_issame'/'pair_fold' need 'pair_index'"),
])
def test_a_bad_pair_list_is_refused_with_the_pair_named(tmp_path, rng, edit, message):
    _with_pair_list(tmp_path / "i.h5", rng.normal(size=(6, 4)).astype(np.float32))
    with h5py.File(tmp_path / "i.h5", "r+") as handle:
        edit(handle)
    with pytest.raises(MfftoolsError, match=message):
        open_embeddings(tmp_path / "i.h5")
