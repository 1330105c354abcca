import numpy as np
import pytest

from mfftools.data.ijb_protocol import (
    iter_pair_chunks,
    read_metadata,
    read_template_list,
    read_template_pairs,
)
from mfftools.errors import MfftoolsError


def _write(tmp_path, name, text, mode="w"):
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def test_chunks_give_the_same_pairs_whatever_their_size(tmp_path, rng):
    rows = rng.integers(1, 50, (500, 2))
    labels = rng.integers(0, 2, 500)
    text = "".join(f"{a} {b} {c}\n" for (a, b), c in zip(rows, labels))
    text = text.replace("\n", "\n\n", 3).replace("\n", "\r\n", 2)  # blank lines, CRLF
    path = _write(tmp_path, "pairs.txt", text.rstrip("\n"))  # no final newline
    for chunk in (7, 64, 1 << 20):
        parts = list(iter_pair_chunks(path, chunk_bytes=chunk))
        lines = np.concatenate([part[0] for part in parts])
        assert lines[:6].tolist() == [1, 3, 5, 7, 8, 9]
        first = np.concatenate([part[1] for part in parts])
        second = np.concatenate([part[2] for part in parts])
        label = np.concatenate([part[3] for part in parts])
        np.testing.assert_array_equal(np.stack([first, second], 1), rows)
        np.testing.assert_array_equal(label, labels.astype(bool))


@pytest.mark.parametrize("text, message", [
    ("1 2 1\n3 4\n1 5 6 0\n", "line 2: 2 fields"),
    ("1 2 1\n3 x 0\n", "line 2: not three integers"),
    ("1 2 1\n3 4 2\n", "line 2: label 2, not 1"),
    ("1 2 1.5\n", "line 1: not three integers"),
    ("\n\n", "no template pairs"),
])
def test_hostile_pair_lists_name_the_line(tmp_path, text, message):
    path = _write(tmp_path, "pairs.txt", text)
    with pytest.raises(MfftoolsError, match=message):
        read_template_pairs(path, np.arange(1, 10))


def test_a_byte_order_mark_is_allowed(tmp_path):
    path = _write(tmp_path, "pairs.txt", b"\xef\xbb\xbf1 2 1\n2 3 0\n")
    pairs = read_template_pairs(path, np.array([1, 2, 3]))
    assert pairs.left.tolist() == [0, 1] and pairs.genuine.tolist() == [True, False]


def test_unknown_templates_stop_or_are_counted(tmp_path):
    path = _write(tmp_path, "pairs.txt", "1 2 1\n1 9 0\n7 2 0\n2 3 0\n")
    with pytest.raises(MfftoolsError, match="line 2: template 9 has no images.*--skip-missing"):
        read_template_pairs(path, np.array([1, 2, 3]))
    pairs = read_template_pairs(path, np.array([1, 2, 3]), skip_missing=True)
    assert len(pairs) == 2 and pairs.n_listed == 4 and pairs.n_skipped == 2
    assert pairs.missing == [7, 9]
    assert pairs.left.tolist() == [0, 1] and pairs.right.tolist() == [1, 2]


def test_template_lists(tmp_path):
    path = _write(tmp_path, "ijbc_1N_gallery_G1.csv",
                  "TEMPLATE_ID,SUBJECT_ID,FILENAME\n5,50,a.jpg\n3,30,b.jpg\n5,50,c.jpg\n")
    listed = read_template_list(path)
    assert listed.templates.tolist() == [3, 5] and listed.subjects.tolist() == [30, 50]
    assert listed.name == "G1"
    bad = _write(tmp_path, "g.csv", "TEMPLATE_ID,SUBJECT_ID\n5,50\n5,51\nx,1\n")
    with pytest.raises(MfftoolsError) as error:
        read_template_list(bad)
    assert "line 3: template 5 belongs to subject 51 here but to 50 on line 2" in str(error.value)
    assert "line 4: TEMPLATE_ID and SUBJECT_ID must be integers" in str(error.value)


def test_metadata_groups(tmp_path, caplog):
    path = _write(tmp_path, "meta.csv", "SUBJECT_ID,FILENAME,SKINTONE,GENDER\n"
                  "1,a,3,0\n1,b,3,0\n1,c,4,0\n2,d,6,1\n")
    groups = read_metadata(path)
    assert groups.group_of == {1: "skintone3-female", 2: "skintone6-male"}
    assert groups.group_names == ["skintone3-female", "skintone6-male"]
    assert groups.inconsistent == 1 and "1 subjects have faces annotated differently" in caplog.text
    assert read_metadata(path, ("gender",)).group_names == ["female", "male"]
    bad = _write(tmp_path, "bad.csv", "SUBJECT_ID,SKINTONE,GENDER\n1,7,0\nx,1,1\n2,1,2\n")
    with pytest.raises(MfftoolsError) as error:
        read_metadata(bad)
    message = str(error.value)
    assert "line 2, column 2 (SKINTONE): '7' is not a SKINTONE value" in message
    assert "line 3: SUBJECT_ID 'x' is not an integer" in message
    assert "line 4, column 3 (GENDER): '2' is not a GENDER value" in message
    with pytest.raises(MfftoolsError, match="no column 'age' for --group-by"):
        read_metadata(path, ("age",))
