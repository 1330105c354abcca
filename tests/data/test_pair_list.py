"""Pair lists (CSV/TSV): issame, groups, folds in order of first appearance, BFW's columns."""
import numpy as np
import pytest

from data_builders import encoded_image
from mfftools.data.pair_list import read_pair_list
from mfftools.errors import MfftoolsError


@pytest.fixture
def images(tmp_path):
    for seed in range(4):
        (tmp_path / f"{seed}.png").write_bytes(encoded_image(seed))
    return tmp_path


def test_pairs_groups_and_folds(images):
    pairs = images / "pairs.csv"
    pairs.write_text("path1,path2,issame,group,fold\n0.png,1.png,1,B,f2\n2.png,3.png,False,A,f1\n"
                     "0.png,3.png,TRUE,B,f1\n")
    read = read_pair_list(pairs)
    assert read.group_names == ["A", "B"]
    np.testing.assert_array_equal(read.pair_group, [1, 0, 1])
    np.testing.assert_array_equal(read.issame, [True, False, True])
    np.testing.assert_array_equal(read.fold, [0, 1, 1])  # f2 appears first
    assert [read.images.image_name(k) for k in range(6)] == [
        "0.png", "1.png", "2.png", "3.png", "0.png", "3.png"]
    assert read.images.encoded(5) == (images / "3.png").read_bytes()


def test_bfw_columns_without_group_or_fold(images):
    pairs = images / "bfw.tsv"
    pairs.write_text("p1\tp2\tlabel\n0.png\t1.png\t0\n")
    read = read_pair_list(pairs, columns={"path1": "p1", "path2": "p2", "issame": "label"})
    assert read.group_names == ["bfw"] and read.fold is None
    np.testing.assert_array_equal(read.issame, [False])


def test_groups_select_pairs(images):
    pairs = images / "pairs.csv"
    pairs.write_text("path1,path2,issame,group,fold\n0.png,1.png,1,B,x\n2.png,3.png,0,A,y\n")
    read = read_pair_list(pairs, groups=["B"])
    assert read.group_names == ["B"] and read.fold.tolist() == [0]
    with pytest.raises(MfftoolsError, match=r"pairs.csv: no group C \(it holds A, B\)"):
        read_pair_list(pairs, groups=["C"])


def test_every_problem_is_located(images):
    pairs = images / "pairs.csv"
    pairs.write_text("path1,path2,issame\n0.png,nope.png,1\n0.png,1.png,maybe\n,1.png,0\n")
    with pytest.raises(MfftoolsError) as error:
        read_pair_list(pairs)
    assert str(error.value).splitlines() == [
        f"{pairs}, line 2, column 2 (path2): no image file 'nope.png' in {images} (paths are "
        "relative to the list's folder, or to --image-root DIR)",
        f"{pairs}, line 3, column 3 (issame): 'maybe' is not 1/0 or true/false",
        f"{pairs}, line 4, column 1 (path1): empty path",
    ]
    pairs.write_text("path1,path2\n")
    with pytest.raises(MfftoolsError, match=r"line 1: no column issame for a pair list"):
        read_pair_list(pairs)
