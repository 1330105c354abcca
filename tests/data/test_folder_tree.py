"""Folder trees ROOT/<group>/<identity>/<image>."""
import numpy as np
import pytest

from data_builders import encoded_image
from mfftools.data.folder_tree import read_folder_tree
from mfftools.errors import MfftoolsError


def test_groups_identities_and_images_in_name_order(tmp_path, caplog):
    files = ["B/p2/1.png", "A/p1/2.jpg", "A/p1/1.PNG", "A/p3/1.bmp", "B/p1/1.jpeg"]
    for seed, name in enumerate(files):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(encoded_image(seed))
    (tmp_path / "A" / "p1" / "notes.txt").write_text("not an image")
    (tmp_path / "A" / "stray.png").write_bytes(encoded_image(9))
    (tmp_path / "A" / "empty").mkdir()
    (tmp_path / "C").mkdir()
    read = read_folder_tree(tmp_path)
    assert read.group_names == ["A", "B"]
    assert [read.images.image_name(k) for k in range(len(read.images))] == [
        "A/p1/1.PNG", "A/p1/2.jpg", "A/p3/1.bmp", "B/p1/1.jpeg", "B/p2/1.png"]
    np.testing.assert_array_equal(read.identity, [0, 0, 1, 2, 3])  # B/p1 is not A/p1
    np.testing.assert_array_equal(read.group, [0, 0, 0, 1, 1])
    assert read.identity_names == ["p1", "p1", "p3", "p1", "p2"]
    assert "1 images are not at <group>/<identity>/<image>" in caplog.text


def test_a_tree_without_images_is_an_error(tmp_path):
    (tmp_path / "A" / "p1").mkdir(parents=True)
    with pytest.raises(MfftoolsError, match="no images in <group>/<identity>/ folders"):
        read_folder_tree(tmp_path)
