import numpy as np
import pytest

from mfftools.data.landmarks import (
    landmarks_of_images,
    manifest_landmarks,
    match_to_images,
    read_landmark_file,
)
from mfftools.data.table import Table
from mfftools.errors import MfftoolsError

COORDINATES = " ".join(str(float(value)) for value in range(10))


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_ijb_lines_give_points_and_the_last_number_as_score(tmp_path):
    path = _write(tmp_path, "ijbc_name_5pts_score.txt",
                  f"1.jpg {COORDINATES} 0.9\n\n2.jpg {COORDINATES} 7 8 0.25\n3.jpg {COORDINATES}\n")
    landmarks = read_landmark_file(path)
    assert landmarks.names == ["1.jpg", "2.jpg", "3.jpg"]
    np.testing.assert_array_equal(landmarks.points[1], np.arange(10.0).reshape(5, 2))
    np.testing.assert_allclose(landmarks.scores[:2], [0.9, 0.25])
    assert np.isnan(landmarks.scores[2])
    assert landmarks.lines.tolist() == [1, 3, 4]


def test_rfw_lines_put_a_label_before_the_coordinates(tmp_path):
    numbers = "\t".join(str(float(value)) for value in range(10, 20))
    path = _write(tmp_path, "African_lmk.txt", f"test/data/African/m.0a/m.0a_0001.jpg\t3\t{numbers}\n")
    landmarks = read_landmark_file(path)
    np.testing.assert_array_equal(landmarks.points[0].reshape(-1), np.arange(10.0, 20.0))
    assert np.isnan(landmarks.scores[0])


@pytest.mark.parametrize("text, message", [
    ("a.jpg 1 2 3\n", "line 1: 4 fields; expected a path and 10 coordinates"),
    (f"a.jpg {COORDINATES} x\n", "line 1: 'x' is not a number"),
    (f"a.jpg {COORDINATES.replace('3.0', 'nan')}\n", "line 1: the numbers must be finite"),
    (f"a.jpg {COORDINATES}\nb.jpg {COORDINATES}\na.jpg {COORDINATES}\n",
     "line 3: a.jpg is listed again \\(first on line 1\\)"),
    ("\n\n", "no landmark lines"),
])
def test_hostile_files_are_refused_with_the_line(tmp_path, text, message):
    path = _write(tmp_path, "points.txt", text)
    with pytest.raises(MfftoolsError, match=message):
        read_landmark_file(path)


def test_not_utf8_is_refused(tmp_path):
    path = tmp_path / "points.txt"
    path.write_bytes(f"a.jpg {COORDINATES}\n".encode() + b"\xff\xfe\n")
    with pytest.raises(MfftoolsError, match="line 2: not UTF-8"):
        read_landmark_file(path)


def test_paths_match_by_suffix_either_way(tmp_path):
    path = _write(tmp_path, "p.txt", f"./test/data/A/m.1/m.1_0001.jpg {COORDINATES}\n"
                  f"2.jpg {COORDINATES}\nother.jpg {COORDINATES}\n")
    landmarks = read_landmark_file(path)
    images = ["data/A/m.1/m.1_0001.jpg", "loose_crop/2.jpg", "loose_crop/3.jpg"]
    assert match_to_images(landmarks, images).tolist() == [0, 1, -1]
    points, scores = landmarks_of_images(landmarks, images + images[:1])
    assert np.isnan(points[2]).all() and not np.isnan(points[3]).any()


def test_ambiguous_and_repeated_matches_are_errors(tmp_path):
    path = _write(tmp_path, "p.txt", f"1.jpg {COORDINATES}\n")
    with pytest.raises(MfftoolsError, match="1.jpg matches 2 images"):
        match_to_images(read_landmark_file(path), ["a/1.jpg", "b/1.jpg"])
    path = _write(tmp_path, "q.txt", f"a/1.jpg {COORDINATES}\nx/a/1.jpg {COORDINATES}\n")
    with pytest.raises(MfftoolsError, match="line 2: x/a/1.jpg names the image a/1.jpg again"):
        match_to_images(read_landmark_file(path), ["a/1.jpg"])


def test_manifest_columns(tmp_path):
    header = "path,identity,group," + ",".join(f"x{k},y{k}" for k in range(1, 6)) + ",score"
    values = ",".join(str(float(value)) for value in range(10))
    path = _write(tmp_path, "m.csv", f"{header}\na.jpg,i,g,{values},0.5\nb.jpg,i,g,{',' * 9},\n")
    points, scores = manifest_landmarks(Table(path))
    np.testing.assert_array_equal(points[0].reshape(-1), np.arange(10.0))
    assert np.isnan(points[1]).all() and scores[0] == 0.5 and np.isnan(scores[1])
    assert manifest_landmarks(Table(_write(tmp_path, "n.csv", "path,identity\na,b\n"))) is None
    bad = _write(tmp_path, "bad.csv", f"{header}\na.jpg,i,g,{values.replace('4.0', 'four')},1\n")
    with pytest.raises(MfftoolsError, match=r"line 2, column 8 \(x3\): 'four' is not a finite"):
        manifest_landmarks(Table(bad))
    partial = _write(tmp_path, "p.csv", "path,identity,x1,y1\na,b,1,2\n")
    with pytest.raises(MfftoolsError, match="landmark columns x2, y2"):
        manifest_landmarks(Table(partial))
