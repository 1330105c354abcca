"""Pairs over images held once: both file forms, a pair list naming images, folds, the data hash."""
import hashlib

import numpy as np
import pytest

from embedding_files import write_images_file, write_pairs_file
from mfftools.embeddings import EmbeddingsWriter, open_embeddings
from mfftools.errors import MfftoolsError
from mfftools.evaluation.pair import evaluate_pairs, kfold_bounds
from mfftools.pair_data import (
    canonical_rows,
    contiguous_folds,
    evaluate_pair_set,
    pair_scores,
    read_pair_set,
)

GROUPS = ["A", "B"]


def _images_with_pairs(path, rows, identity, group, pair_index, issame, fold=None):
    pair_list = {"pair_index": pair_index, "pair_issame": issame, "pair_fold": fold}
    with EmbeddingsWriter.create(path, layout="images", dim=rows.shape[1], group_names=GROUPS,
                                 pair_list=pair_list, dtype=rows.dtype) as writer:
        writer.append(rows, identity=identity, group=group,
                      path=[f"img{k}.jpg" for k in range(len(rows))])
    return path


def _pairs_over(rng, n_images=30, n_pairs=200, dim=8):
    """Images (two identities per group image block) and random pairs within a group."""
    rows = rng.normal(size=(n_images, dim)).astype(np.float32)
    group = (np.arange(n_images) >= n_images // 2).astype(np.int64)
    identity = np.arange(n_images) // 3
    first = rng.integers(0, n_images, n_pairs)
    second = np.array([rng.choice(np.flatnonzero(group == group[a])) for a in first])
    index = np.stack([first, second], axis=1)
    issame = identity[first] == identity[second]
    issame[:20] = True  # labels are the file's, whatever the rows
    return rows, identity, group, index, issame


def test_both_forms_give_the_same_pairs_and_the_same_pair_protocol(tmp_path, rng):
    rows, identity, group, index, issame = _pairs_over(rng)
    images = open_embeddings(_images_with_pairs(tmp_path / "i.h5", rows, identity, group, index,
                                                issame))
    pair_group = group[index[:, 0]]
    pairs = open_embeddings(write_pairs_file(tmp_path / "p.h5", rows[index.reshape(-1)], issame,
                                             pair_group, GROUPS))
    from_images, from_pairs = read_pair_set(images), read_pair_set(pairs)
    # a pairs-layout file's repeated rows are one image again
    used = np.unique(index)
    assert len(from_pairs.rows) == len(used)
    np.testing.assert_array_equal(from_pairs.rows[from_pairs.pair_index],
                                  rows[index])
    np.testing.assert_array_equal(from_pairs.pair_group, pair_group)
    np.testing.assert_array_equal(from_images.pair_group, pair_group)
    np.testing.assert_array_equal(from_images.distances(), from_pairs.distances())
    for pair_set in (from_images, from_pairs):
        scores = pair_scores(canonical_rows(pair_set.rows), pair_set.pair_index)
        unit = rows.astype(np.float64) / np.linalg.norm(rows.astype(np.float64), axis=1,
                                                        keepdims=True)
        expected = np.einsum("ij,ij->i", unit[index[:, 0]], unit[index[:, 1]])
        np.testing.assert_allclose(scores, expected, atol=1e-6)
    streamed = evaluate_pairs(pairs)
    for result in (evaluate_pair_set(from_images), evaluate_pair_set(from_pairs)):
        assert result["groups"] == streamed["groups"]  # counts: the same numbers exactly
        assert result["mean_accuracy"] == streamed["mean_accuracy"]


def test_the_data_hash_is_that_of_the_rows_as_read(tmp_path, rng):
    rows = rng.normal(size=(6, 4)).astype(np.float16)
    path = _images_with_pairs(tmp_path / "i.h5", rows, np.arange(6) // 2, np.zeros(6, int),
                              [[0, 1], [2, 3]], [True, False])
    found = read_pair_set(open_embeddings(path))
    assert found.data_sha256 == hashlib.sha256(rows.astype(np.float32).tobytes()).hexdigest()
    assert found.rows.dtype == np.float32


def test_a_row_repeated_in_two_groups_is_two_images(tmp_path, rng):
    row = rng.normal(size=(1, 4)).astype(np.float32)
    other = rng.normal(size=(2, 4)).astype(np.float32)
    stacked = np.concatenate([row, other[:1], row, other[1:]])
    found = read_pair_set(open_embeddings(write_pairs_file(
        tmp_path / "p.h5", stacked, np.array([False, False]), np.array([0, 1]), GROUPS)))
    assert len(found.rows) == 4
    np.testing.assert_array_equal(found.image_group, [0, 0, 1, 1])


def test_a_pair_list_names_the_images_of_an_images_file(tmp_path, rng):
    rows = rng.normal(size=(6, 4)).astype(np.float32)
    path = write_images_file(tmp_path / "i.h5", rows, np.arange(6) // 2, np.zeros(6, int),
                             GROUPS)
    table = tmp_path / "pairs.csv"
    table.write_text("a,b,label,fold\nimg_0.jpg,img_1.jpg,1,x\nimg_2.jpg,img_5.jpg,0,y\n"
                     "img_4.jpg,img_3.jpg,0,x\n")
    found = read_pair_set(open_embeddings(path), table,
                          {"path1": "a", "path2": "b", "issame": "label"})
    np.testing.assert_array_equal(found.pair_index, [[0, 1], [2, 5], [4, 3]])
    np.testing.assert_array_equal(found.issame, [True, False, False])
    np.testing.assert_array_equal(found.fold, [0, 1, 0])
    table.write_text("path1,path2,issame\nimg_0.jpg,img_9.jpg,1\nimg_2.jpg,img_5.jpg,maybe\n")
    with pytest.raises(MfftoolsError) as error:
        read_pair_set(open_embeddings(path), table)
    assert str(error.value) == (
        f"{table}, line 2, column 2 (path2): no image 'img_9.jpg' in {path}\n"
        f"{table}, line 3, column 3 (issame): 'maybe' is not 1/0 or true/false")


def test_an_images_file_without_pairs_is_refused(tmp_path, rng):
    path = write_images_file(tmp_path / "i.h5", rng.normal(size=(4, 4)).astype(np.float32),
                             np.arange(4) // 2, np.zeros(4, int), GROUPS)
    with pytest.raises(MfftoolsError, match="an images-layout file without a pair list"):
        read_pair_set(open_embeddings(path))


def test_contiguous_folds_cut_each_group_as_the_pair_protocol_does():
    pair_group = np.array([0] * 23 + [1] * 12 + [0] * 2)
    fold = contiguous_folds(pair_group, 10, GROUPS)
    members = np.flatnonzero(pair_group == 0)
    for number, (start, stop) in enumerate(kfold_bounds(25, 10)):
        assert (fold[members[start:stop]] == number).all()
    sizes = [stop - start for start, stop in kfold_bounds(12, 10)]
    np.testing.assert_array_equal(fold[23:35], np.repeat(np.arange(10), sizes))
    with pytest.raises(MfftoolsError, match="group 'B' has 12 pairs, fewer than the 20 folds"):
        contiguous_folds(pair_group, 20, GROUPS)
