import numpy as np
import pytest
import torch

from data_builders import encoded_image, write_zip
from mfftools.data.images import DEFAULT_PREPROCESSING
from mfftools.data.training_zip import TrainingZip
from mfftools.errors import MfftoolsError
from mfftools.extract import _loader


def training_members(lines, n_images=None):
    n_images = len(lines) if n_images is None else n_images
    members = {"data/index.txt": "".join(line + "\n" for line in lines)}
    for k in range(n_images):
        members[f"data/img/{k:07d}.jpg"] = encoded_image(k, size=16)
    return members


LINES = [
    "African/m.01/0001.jpg 0 0 1",
    "African/m.01/0002.jpg 0 0 1",
    "Asian/m.02/0001.jpg\t1 1 1",
    "Asian/m.03/0001.jpg 1 2 0",
]


@pytest.mark.parametrize("in_memory", [False, True])
def test_reads_labels_groups_and_images(tmp_path, in_memory):
    path = write_zip(tmp_path / "train.zip", training_members(LINES))
    dataset = TrainingZip(path, in_memory=in_memory)
    assert len(dataset) == 4 and dataset.num_classes == 3
    np.testing.assert_array_equal(dataset.labels, [0, 0, 1, 2])
    np.testing.assert_array_equal(dataset.groups, [0, 0, 1, 1])
    assert dataset.labels.dtype == np.int64 and dataset.groups.dtype == np.int64
    assert dataset.names[2] == "Asian/m.02/0001.jpg"
    assert dataset.group_names == ["African", "Asian"]
    assert dataset.decode(2, DEFAULT_PREPROCESSING).shape == (3, 112, 112)
    assert dataset.image_name(2) == "Asian/m.02/0001.jpg"
    assert dataset.describe(2) == f"{path}:data/img/0000002.jpg"
    assert not torch.equal(dataset.decode(0, DEFAULT_PREPROCESSING), dataset.decode(1, DEFAULT_PREPROCESSING))


def test_dataloader_with_two_workers(tmp_path):
    lines = [f"G{k % 2}/p{k // 3}/x.jpg {k % 2} {k // 3} 1" for k in range(12)]
    dataset = TrainingZip(write_zip(tmp_path / "train.zip", training_members(lines)))
    loader = _loader(dataset, np.arange(12), DEFAULT_PREPROCESSING, batch_size=5, workers=2)
    rows = np.concatenate([batch[1] for batch in loader])
    assert dataset.labels[rows].tolist() == [k // 3 for k in range(12)]
    # The same images as read in the main process.
    first = next(iter(loader))[0]
    torch.testing.assert_close(first[3], dataset.decode(3, DEFAULT_PREPROCESSING))


@pytest.mark.parametrize(
    "lines, message",
    [
        (["a/b 0 0"], "line 1: expected 4 fields"),
        (["a/b 0 0 1", "a/c 0 1 1 extra"], "line 2: expected 4 fields"),
        (["a/b 0 0 1", "a/c 0 x 1"], "line 2: .*must be integers"),
        (["a/b 0 0 1.0"], "line 1: .*must be integers"),
        (["a/b 0 -1 1"], "line 1: .*non-negative"),
        (["a/b 0 0 1", "", "a/c 0 1 1"], r"line 2: expected 4 fields \(.*\), found 0"),
    ],
)
def test_malformed_index_line_is_named(tmp_path, lines, message):
    path = write_zip(tmp_path / "train.zip", training_members(lines))
    with pytest.raises(MfftoolsError, match=message):
        TrainingZip(path)


def test_missing_member_names_the_line(tmp_path):
    path = write_zip(tmp_path / "train.zip", training_members(LINES, n_images=3))
    with pytest.raises(
        MfftoolsError, match=r"index.txt line 4: member data/img/0000003.jpg is missing"
    ):
        TrainingZip(path)


def test_wrong_layout_missing_file_and_not_a_zip(tmp_path):
    with pytest.raises(MfftoolsError, match="no such file"):
        TrainingZip(tmp_path / "absent.zip")
    (tmp_path / "plain.zip").write_bytes(b"this is not a zip")
    with pytest.raises(MfftoolsError, match="plain.zip: not a readable zip"):
        TrainingZip(tmp_path / "plain.zip")
    write_zip(tmp_path / "other.zip", {"index.txt": "a 0 0 1\n"})
    with pytest.raises(MfftoolsError, match="other.zip: not a training zip .*data/index.txt"):
        TrainingZip(tmp_path / "other.zip")
    write_zip(tmp_path / "empty.zip", {"data/index.txt": "\n"})
    with pytest.raises(MfftoolsError, match="empty"):
        TrainingZip(tmp_path / "empty.zip")


def test_undecodable_image_names_member(tmp_path):
    members = training_members(LINES)
    members["data/img/0000001.jpg"] = b"garbage"
    dataset = TrainingZip(write_zip(tmp_path / "train.zip", members))
    dataset.decode(0, DEFAULT_PREPROCESSING)
    with pytest.raises(MfftoolsError, match=r"train.zip:data/img/0000001.jpg"):
        dataset.decode(1, DEFAULT_PREPROCESSING)


def test_pickled_reader_reopens_its_zip(tmp_path):
    """Spawned workers receive a pickled reader: the open handle is dropped and reopened."""
    import pickle

    dataset = TrainingZip(write_zip(tmp_path / "train.zip", training_members(LINES)))
    expected = dataset.decode(3, DEFAULT_PREPROCESSING)
    assert dataset.archive._handle is not None
    copy = pickle.loads(pickle.dumps(dataset))
    assert copy.archive._handle is None
    torch.testing.assert_close(copy.decode(3, DEFAULT_PREPROCESSING), expected)
