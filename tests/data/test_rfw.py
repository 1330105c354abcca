import numpy as np
import pytest
import torch

from data_builders import rfw_members, write_zip
from mfftools.data.images import DEFAULT_PREPROCESSING
from mfftools.data.rfw import RfwInstanceZip
from mfftools.errors import MfftoolsError
from mfftools.extract import _loader


def test_exact_id_matching_sorted_groups_and_quirks(tmp_path, caplog):
    people = {
        "Indian": ["m.0b", "m.0z"],  # m.0z listed but without images
        "African": ["m.0a12", "m.0a1", "m.0b"],  # m.0b also listed in Indian
    }
    images = {
        ("African", "m.0a1"): 2,
        ("African", "m.0a12"): 3,  # a substring match of m.0a1 would steal these
        ("African", "m.0b"): 1,
        ("Indian", "m.0b"): 2,
        ("Indian", "m.0unlisted"): 4,
    }
    caplog.set_level("INFO")
    dataset = RfwInstanceZip(write_zip(tmp_path / "val.zip", rfw_members(people, images)))
    assert dataset.group_names == ["African", "Indian"]
    assert len(dataset) == 8
    np.testing.assert_array_equal(dataset.identity, [0, 0, 1, 1, 1, 2, 3, 3])
    np.testing.assert_array_equal(dataset.group, [0, 0, 0, 0, 0, 0, 1, 1])
    assert dataset.paths[:2] == [
        "data/data/African/m.0a1/m.0a1_0001.jpg",
        "data/data/African/m.0a1/m.0a1_0002.jpg",
    ]
    assert all("/m.0a12/" in path for path in dataset.paths[2:5])
    assert dataset.paths[5] == "data/data/African/m.0b/m.0b_0001.jpg"
    assert dataset.people_in_two_groups == 1
    assert dataset.people_without_images == ["Indian/m.0z"]
    assert "1 people listed in two groups" in caplog.text
    assert "4 images of people not in any people list" in caplog.text
    assert dataset.decode(6, DEFAULT_PREPROCESSING).shape == (3, 112, 112)


def test_dataloader_with_two_workers_in_memory(tmp_path):
    people = {"A": [f"p{k}" for k in range(4)], "B": ["q0", "q1"]}
    images = {("A", f"p{k}"): k + 1 for k in range(4)} | {("B", "q0"): 2, ("B", "q1"): 1}
    dataset = RfwInstanceZip(
        write_zip(tmp_path / "val.zip", rfw_members(people, images)), in_memory=True
    )
    loader = _loader(dataset, np.arange(13), DEFAULT_PREPROCESSING, batch_size=4, workers=2)
    images_seen, rows, _ = zip(*loader)
    assert np.concatenate(rows).tolist() == list(range(13))
    torch.testing.assert_close(torch.cat(images_seen)[9], dataset.decode(9, DEFAULT_PREPROCESSING))


def test_a_bad_image_is_an_error_naming_it(tmp_path):
    members = rfw_members({"A": ["p", "q"]}, {("A", "p"): 2, ("A", "q"): 1})
    members["data/data/A/p/p_0002.jpg"] = b"broken"
    path = write_zip(tmp_path / "val.zip", members)
    with pytest.raises(MfftoolsError, match=r"val.zip:data/data/A/p/p_0002.jpg"):
        RfwInstanceZip(path).decode(1, DEFAULT_PREPROCESSING)


def test_wrong_layouts(tmp_path):
    with pytest.raises(MfftoolsError, match="no such file"):
        RfwInstanceZip(tmp_path / "absent.zip")
    (tmp_path / "plain.zip").write_text("hello")
    with pytest.raises(MfftoolsError, match="not a readable zip"):
        RfwInstanceZip(tmp_path / "plain.zip")
    write_zip(
        tmp_path / "nolists.zip",
        {"data/data/A/p/p_0001.jpg": b"x", "data/txts/A/people.txt": "p\n"},
    )
    with pytest.raises(
        MfftoolsError,
        match=r"nolists.zip: not an RFW instance zip \(no data/txts/<Group>/<Group>_people.txt",
    ):
        RfwInstanceZip(tmp_path / "nolists.zip")
    write_zip(
        tmp_path / "noimages.zip",
        {"data/txts/A/A_people.txt": "p 1\n", "data/A/p/p_0001.jpg": b"x"},
    )
    with pytest.raises(MfftoolsError, match="noimages.zip: no images"):
        RfwInstanceZip(tmp_path / "noimages.zip")
    write_zip(
        tmp_path / "emptylist.zip",
        {"data/txts/A/A_people.txt": "\n\n", "data/data/A/p/p_0001.jpg": b"x"},
    )
    with pytest.raises(
        MfftoolsError, match="emptylist.zip:data/txts/A/A_people.txt: lists no people"
    ):
        RfwInstanceZip(tmp_path / "emptylist.zip")
