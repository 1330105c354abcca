"""Arrays read as an embeddings file is read: labels, blocks, rows in order, their checks."""
import numpy as np
import pytest
import torch

from embedding_files import write_images_file, write_pairs_file
from mfftools import arrays
from mfftools.embeddings import open_embeddings
from mfftools.errors import MfftoolsError


def test_identity_labels_integers_kept_others_numbered_in_sorted_order():
    labels, names = arrays.identity_labels(np.array([30, 7, 30, -2]), 4)
    assert labels.tolist() == [30, 7, 30, -2] and names.tolist() == ["30", "7", "30", "-2"]
    labels, names = arrays.identity_labels(["bob", "al", "bob", "cy"], 4)
    assert labels.tolist() == [1, 0, 1, 2] and names.tolist() == ["bob", "al", "bob", "cy"]
    labels, _ = arrays.identity_labels(torch.tensor([5, 5, 1]), 3)
    assert labels.tolist() == [5, 5, 1]


def test_group_names_indices_and_a_single_group():
    group, names = arrays.group_indices(["b", "a", "b"], 3)
    assert (group.tolist(), names) == ([1, 0, 1], ["a", "b"])
    group, names = arrays.group_indices(["b", "a", "b"], 3, group_names=["b", "a", "c"])
    assert (group.tolist(), names) == ([0, 1, 0], ["b", "a", "c"])
    group, names = arrays.group_indices(np.array([2, 0, 2]), 3)
    assert (group.tolist(), names) == ([2, 0, 2], ["0", "1", "2"])
    group, names = arrays.group_indices(None, 2)
    assert (group.tolist(), names) == ([0, 0], ["all"])
    assert arrays.group_indices(None, 2, ["RFW"])[1] == ["RFW"]
    with pytest.raises(MfftoolsError, match="group_names repeat a name"):
        arrays.group_indices([0], 1, ["a", "a"])
    with pytest.raises(MfftoolsError, match="2 group_names but no groups"):
        arrays.group_indices(None, 1, ["a", "b"])
    with pytest.raises(MfftoolsError, match="groups row 1 is -1, outside the 2 group names"):
        arrays.group_indices([0, -1], 2, ["a", "b"])
    assert arrays.shared_group_names(["b", "c"], ["a"]) == ["a", "b", "c"]
    assert arrays.shared_group_names([0, 3], None) == ["0", "1", "2", "3"]
    assert arrays.shared_group_names([0], ["a"]) is None


def test_an_array_reads_as_its_file(tmp_path, rng):
    rows = rng.standard_normal((37, 5)).astype(np.float32)
    identity, group = rng.integers(0, 9, 37), rng.integers(0, 3, 37)
    names = ["g0", "g1", "g2"]
    path = write_images_file(tmp_path / "e.h5", rows, identity, group, names,
                             identity_names=[str(label) for label in identity])
    from_file = open_embeddings(path)
    order = rng.permutation(37)
    for given in (rows, torch.from_numpy(rows), rows.astype(np.float64)):
        adapted = arrays.ArrayEmbeddings(given, identity, group, names)
        for field in ("identity", "group", "identity_names"):
            np.testing.assert_array_equal(getattr(adapted, field), getattr(from_file, field))
        assert adapted.group_names == from_file.group_names and adapted.n_rows == 37
        blocks = list(adapted.iter_blocks(block_rows=10, start=3, stop=30))
        assert [first for first, _ in blocks] == [3, 13, 23]
        np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), rows[3:30])
        assert torch.equal(adapted.ordered_rows(order), from_file.ordered_rows(order))
        np.testing.assert_array_equal(adapted.read(), from_file.read())
    assert arrays.file_of(from_file) == path
    assert arrays.file_of(arrays.ArrayEmbeddings(rows, identity)) is None


def test_blocks_and_rows_are_copies(rng):
    rows = rng.standard_normal((6, 4)).astype(np.float32)
    tensor = torch.from_numpy(rows.copy())
    for given in (rows, tensor):
        adapted = arrays.ArrayEmbeddings(given, [0, 0, 1, 1, 2, 2])
        _, block = next(adapted.iter_blocks())
        block[:] = 0
        adapted.ordered_rows(np.arange(6)).zero_()
    np.testing.assert_array_equal(rows, tensor.numpy())
    assert rows.any()


def test_bad_rows_are_named_by_their_row_in_the_array(rng):
    rows = rng.standard_normal((20, 4)).astype(np.float32)
    rows[15] = 0
    rows[11, 1] = np.nan
    order = rng.permutation(20)
    for given in (rows, torch.from_numpy(rows)):
        adapted = arrays.ArrayEmbeddings(given, np.arange(20) % 4, name="probes")
        for read in (lambda: adapted.ordered_rows(order), adapted.read):
            with pytest.raises(MfftoolsError, match="^probes row 11 contains NaN or Inf$"):
                read()
    rows[11] = 1
    with pytest.raises(MfftoolsError, match="^embeddings row 15 is all zeros$"):
        arrays.ArrayEmbeddings(torch.from_numpy(rows), np.arange(20) % 4).ordered_rows(order)
    huge = np.full((2, 3), 1e300)
    with pytest.raises(MfftoolsError, match="row 0 contains NaN or Inf"):
        arrays.ArrayEmbeddings(huge, [0, 1]).read()


def test_two_arrays_read_as_a_pairs_file(tmp_path, rng):
    first, second = (rng.standard_normal((9, 4)).astype(np.float32) for _ in range(2))
    issame = rng.random(9) < 0.5
    group = rng.integers(0, 2, 9)
    rows = np.empty((18, 4), np.float32)
    rows[0::2], rows[1::2] = first, second
    from_file = open_embeddings(write_pairs_file(tmp_path / "p.h5", rows, issame, group,
                                                 ["a", "b"]))
    adapted = arrays.ArrayPairs(first, torch.from_numpy(second), issame.astype(int), group,
                                ["a", "b"], folds=np.arange(9) % 3)
    assert adapted.layout == "pairs" and adapted.n_rows == 18
    np.testing.assert_array_equal(adapted.issame, from_file.issame)
    np.testing.assert_array_equal(adapted.pair_group, from_file.pair_group)
    assert adapted.fold.tolist() == (np.arange(9) % 3).tolist()
    for block_rows, start, stop in ((4, 0, 18), (5, 3, 16), (18, 1, 2)):
        blocks = list(adapted.iter_blocks(block_rows, start, stop))
        np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), rows[start:stop])
        assert [first_row for first_row, _ in blocks] == list(range(start, stop, block_rows))
