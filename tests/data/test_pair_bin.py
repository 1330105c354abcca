import os
import pickle

import numpy as np
import pytest
import torch

from data_builders import encoded_image
from mfftools.data.images import DEFAULT_PREPROCESSING
from mfftools.data.images import decode_image
from mfftools.data.pair_bin import PairBinFolder, PairBinSets, bin_set_name, load_pair_bin
from mfftools.errors import MfftoolsError
from mfftools.extract import _loader


def write_bin(path, content, protocol=pickle.HIGHEST_PROTOCOL):
    path.write_bytes(pickle.dumps(content, protocol=protocol))
    return path


def pair_content(n_pairs, seed=0):
    bins = [encoded_image(seed + k, size=16) for k in range(2 * n_pairs)]
    issame = [k % 2 == 0 for k in range(n_pairs)]
    return bins, issame


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("issame_kind", ["list", "tuple", "array", "numpy scalars"])
def test_accepts_insightface_layouts(tmp_path, protocol, issame_kind):
    bins, issame = pair_content(3)
    variants = {
        "list": issame,
        "tuple": tuple(issame),
        "array": np.array(issame),
        "numpy scalars": [np.bool_(value) for value in issame],
    }
    path = write_bin(tmp_path / "A_test.bin", (bins, variants[issame_kind]), protocol)
    loaded_bins, loaded_issame = load_pair_bin(path)
    assert loaded_bins == bins
    assert loaded_issame.dtype == np.bool_
    np.testing.assert_array_equal(loaded_issame, issame)


class Exploit:
    def __reduce__(self):
        return (os.system, ("echo owned > /dev/null",))


@pytest.mark.parametrize(
    "content, message",
    [
        (([b"a", b"b"], [Exploit()]), r"forbidden type: (posix|os)\.system"),
        (([b"a", b"b"], np.array([1])), r"forbidden type: numpy dtype"),
        (([b"a", b"b"], np.array([1.5])), r"forbidden type: numpy dtype"),
        (([b"a", b"b"], np.array([True], dtype=object)), r"forbidden type: numpy dtype"),
        (([b"a", b"b"], {"a": True}), r"issame must be a list of booleans, found dict"),
        ({"bins": [b"a", b"b"]}, r"expected a pickled \(bins, issame\) pair, found dict"),
        (([b"a", b"b"], [True], "extra"), r"expected a pickled \(bins, issame\) pair"),
        (("ab", [True]), r"bins must be a list"),
        (([b"a", "b"], [True]), r"bins item 1 is str"),
        (([b"a", b"b", b"c"], [True]), r"3 images; a pair file needs an even"),
        (([], []), r"0 images"),
        (([b"a", b"b"], [True, False]), r"issame has 2 entries for 2 images \(expected 1\)"),
        (([b"a", b"b"], [1]), r"issame item 0 is int"),
        (([b"a", b"b"], np.array([[True]])), r"1-d bool array"),
    ],
)
def test_refuses_bad_content(tmp_path, content, message):
    for protocol in (2, 5):
        path = write_bin(tmp_path / "A_test.bin", content, protocol)
        with pytest.raises(MfftoolsError, match=message) as raised:
            load_pair_bin(path)
        assert "A_test.bin" in str(raised.value)


def test_refuses_non_latin1_codecs_and_damaged_files(tmp_path):
    # Protocol 2 spells bytes as _codecs.encode(text, "latin1"); any other codec is refused.
    forged = pickle.dumps(([b"a", b"b"], [True]), protocol=2).replace(b"latin1", b"rot_13")
    (tmp_path / "A_test.bin").write_bytes(forged)
    with pytest.raises(
        MfftoolsError, match=r"forbidden type: _codecs.encode with encoding 'rot_13'"
    ):
        load_pair_bin(tmp_path / "A_test.bin")
    (tmp_path / "B_test.bin").write_bytes(pickle.dumps(pair_content(2))[:-40])
    with pytest.raises(MfftoolsError, match="B_test.bin: not a readable pickle"):
        load_pair_bin(tmp_path / "B_test.bin")
    with pytest.raises(MfftoolsError, match="no such file"):
        load_pair_bin(tmp_path / "C_test.bin")


def make_folder(folder, groups):
    folder.mkdir()
    contents = {}
    for offset, (group, n_pairs) in enumerate(groups.items()):
        contents[group] = pair_content(n_pairs, seed=100 * offset)
        write_bin(folder / f"{group}_test.bin", contents[group])
    (folder / "notes.txt").write_text("ignored")
    return contents


def test_folder_concatenates_groups_sorted_by_name(tmp_path):
    contents = make_folder(tmp_path / "bins", {"Indian": 2, "African": 3})
    dataset = PairBinFolder(tmp_path / "bins")
    assert dataset.group_names == ["African", "Indian"]
    assert dataset.n_rows == len(dataset) == 10
    np.testing.assert_array_equal(dataset.pair_group, [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(dataset.issame, contents["African"][1] + contents["Indian"][1])
    torch.testing.assert_close(dataset.decode(7, DEFAULT_PREPROCESSING),
                               decode_image(contents["Indian"][0][1], "x"))
    loader = _loader(dataset, np.arange(10), DEFAULT_PREPROCESSING, batch_size=4, workers=2)
    assert np.concatenate([rows for _, rows, _ in loader]).tolist() == list(range(10))


def test_folder_groups_select_and_a_missing_one_is_named(tmp_path):
    make_folder(tmp_path / "bins", {"Asian": 1, "African": 2, "Indian": 1})
    chosen = PairBinFolder(tmp_path / "bins", groups=["Indian", "African"])
    assert chosen.group_names == ["African", "Indian"]
    assert chosen.n_rows == 6 and chosen.pair_group.tolist() == [0, 0, 1]
    (tmp_path / "bins" / "Asian_test.bin").write_bytes(b"unread: not a pickle")
    assert PairBinFolder(tmp_path / "bins", groups=["Indian"]).group_names == ["Indian"]
    with pytest.raises(MfftoolsError) as error:
        PairBinFolder(tmp_path / "bins", groups=["African", "Caucasian"])
    assert str(error.value) == (
        f"{tmp_path / 'bins'}: no group Caucasian (it holds African, Asian, Indian)")


def test_verification_sets_are_named_by_their_stem(tmp_path):
    folder = tmp_path / "faces_emore"
    folder.mkdir()
    for name, n_pairs in (("lfw", 2), ("cfp_fp", 1), ("agedb_30", 1)):
        write_bin(folder / f"{name}.bin", pair_content(n_pairs))
    assert PairBinFolder(folder).group_names == ["agedb_30", "cfp_fp", "lfw"]
    sets = PairBinSets([("lfw", folder / "lfw.bin"), ("cfp_fp", folder / "cfp_fp.bin")])
    assert sets.group_names == ["lfw", "cfp_fp"] and sets.pair_group.tolist() == [0, 0, 1]
    assert sets.image_name(4) == "cfp_fp.bin image 0"
    assert bin_set_name(folder / "African_test.bin") == "African"
    with pytest.raises(MfftoolsError, match="two pair files hold the set lfw"):
        PairBinSets([("lfw", folder / "lfw.bin"), ("lfw", folder / "lfw.bin")])


def test_folder_errors_and_bad_images(tmp_path):
    with pytest.raises(MfftoolsError, match="absent: no such folder"):
        PairBinFolder(tmp_path / "absent")
    (tmp_path / "A_test.bin").write_bytes(b"")
    with pytest.raises(
        MfftoolsError,
        match=r"A_test.bin: not a folder \(expected a folder of <Group>_test.bin files\)",
    ):
        PairBinFolder(tmp_path / "A_test.bin")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MfftoolsError, match=r"empty: no .bin pair files"):
        PairBinFolder(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    bins, issame = pair_content(2)
    bins[2] = b"not an image"
    write_bin(tmp_path / "bad" / "X_test.bin", (bins, issame))
    with pytest.raises(MfftoolsError, match=r"X_test.bin image 2"):
        PairBinFolder(tmp_path / "bad").decode(2, DEFAULT_PREPROCESSING)
