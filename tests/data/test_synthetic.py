import zipfile

import numpy as np
import pytest
import torch

from mfftools.data.faces import (
    GROUP_STYLES,
    render_faces,
    sample_appearances,
    sample_variations,
    synthetic_faces,
    take,
)
from mfftools.data.folder_tree import read_folder_tree
from mfftools.data.images import DEFAULT_PREPROCESSING
from mfftools.data.manifest import read_manifest
from mfftools.data.pair_bin import PairBinFolder
from mfftools.data.pair_list import read_pair_list
from mfftools.data.rfw import RfwInstanceZip
from mfftools.data.synthetic import synthesize
from mfftools.data.training_zip import TrainingZip
from mfftools.errors import MfftoolsError
from mfftools.extract import _loader

BFW = {"path1": "p1", "path2": "p2", "issame": "label", "group": "a1"}
SMALL = dict(
    identities_per_group=5,
    images_per_identity=2.5,
    max_images_per_identity=4,
    pairs_per_group=20,
    train_identities_per_group=3,
    train_images_per_identity=2,
    faces_identities_per_group=3,
    faces_images_per_identity=2,
    faces_pairs_per_group=20,
)


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    return out, synthesize(out, seed=3, **SMALL)


def test_instance_zip_reads_back_with_ground_truth(synth_dir):
    _, summary = synth_dir
    dataset = RfwInstanceZip(summary.instance_zip)
    assert dataset.group_names == summary.group_names == ["African", "Asian", "Caucasian", "Indian"]
    assert len(dataset) == sum(summary.instance_images.values())
    assert dataset.people_in_two_groups == summary.people_in_two_groups == 1
    assert dataset.people_without_images == summary.people_without_images == ["Indian/m.0d5"]
    folders = [tuple(path.split("/")[2:4]) for path in dataset.paths]
    # One label per (group, person folder), consecutive in that sorted order.
    assert sorted(set(folders)) == [
        folders[k] for k in np.unique(dataset.identity, return_index=True)[1]
    ]
    assert (
        len(set(zip(folders, dataset.identity.tolist())))
        == len(set(folders))
        == dataset.identity.max() + 1
    )
    for group_index, group in enumerate(dataset.group_names):
        in_group = dataset.group == group_index
        assert in_group.sum() == summary.instance_images[group]
        assert len(np.unique(dataset.identity[in_group])) == summary.instance_identities[group]
        assert all(folder[0] == group for folder, flag in zip(folders, in_group) if flag)
    # The person listed in two groups keeps one identity per group.
    shared = {
        identity
        for folder, identity in zip(folders, dataset.identity.tolist())
        if folder[1] == "m.0a0"
    }
    assert len(shared) == 2
    assert dataset.decode(len(dataset) - 1, DEFAULT_PREPROCESSING).shape == (3, 112, 112)


def test_people_lists_count_images(synth_dir):
    _, summary = synth_dir
    with zipfile.ZipFile(summary.instance_zip) as archive:
        names = archive.namelist()
        for group in summary.group_names:
            for line in archive.read(f"data/txts/{group}/{group}_people.txt").decode().splitlines():
                person, count = line.split("\t")
                assert sum(
                    name.startswith(f"data/data/{group}/{person}/") for name in names
                ) == int(count)
        assert archive.read(names[-1])[:2] == b"\xff\xd8"  # JPEG


def test_pair_bins_have_ten_balanced_folds(synth_dir):
    _, summary = synth_dir
    dataset = PairBinFolder(summary.bin_folder)
    assert dataset.group_names == summary.group_names
    assert dataset.n_rows == 2 * 20 * 4
    for group_index, group in enumerate(summary.group_names):
        issame = dataset.issame[dataset.pair_group == group_index]
        assert len(issame) == summary.pairs[group]
        folds = issame.reshape(10, -1)
        np.testing.assert_array_equal(folds.sum(axis=1), 1)
        np.testing.assert_array_equal(folds[:, 0], True)
    assert dataset.decode(5, DEFAULT_PREPROCESSING).shape == (3, 112, 112)


def test_folder_tree_manifest_and_pair_table_read_back(synth_dir):
    _, summary = synth_dir
    subgroups = [f"{e}-{g}" for e in summary.group_names for g in ("Female", "Male")]
    assert summary.faces_group_names == subgroups
    tree = read_folder_tree(summary.faces_folder)
    assert tree.group_names == subgroups
    assert len(tree.images) == sum(summary.faces_images.values()) == 8 * 3 * 2
    names = [tree.images.image_name(k) for k in range(len(tree.images))]
    assert {name.rsplit(".", 1)[1] for name in names} == {"png", "jpg"}
    assert tree.images.encoded(0)[:4] == b"\x89PNG" and tree.images.encoded(1)[:2] == b"\xff\xd8"
    by_ethnicity = read_manifest(summary.faces_manifest)
    assert by_ethnicity.group_names == summary.group_names
    by_both = read_manifest(summary.faces_manifest, group_by=["ethnicity", "gender"])
    assert by_both.group_names == subgroups
    np.testing.assert_array_equal(by_both.group, tree.group)
    assert [by_both.images.image_name(k) for k in range(len(names))] == [
        f"faces/{name}" for name in names]
    pairs = read_pair_list(summary.bfw_pairs, columns=BFW)
    assert pairs.group_names == subgroups
    assert len(pairs.issame) == 8 * 20
    np.testing.assert_array_equal(pairs.fold, np.tile(np.repeat(np.arange(5), 4), 8))
    for index in range(8):
        issame = pairs.issame[pairs.pair_group == index].reshape(5, 4)
        np.testing.assert_array_equal(issame, [[True, True, False, False]] * 5)
    identity_of = dict(zip(names, tree.identity_names))
    for k, same in enumerate(pairs.issame):
        first, second = (pairs.images.image_name(2 * k + j)[len("faces/"):] for j in (0, 1))
        assert (identity_of[first] == identity_of[second]) == same
        assert first != second


def test_training_zip_reads_back(synth_dir):
    _, summary = synth_dir
    dataset = TrainingZip(summary.training_zip)
    assert len(dataset) == summary.training_images == 4 * 3 * 2
    assert dataset.num_classes == summary.training_identities == 12
    np.testing.assert_array_equal(dataset.labels, np.repeat(np.arange(12), 2))
    np.testing.assert_array_equal(dataset.groups, np.repeat(np.arange(4), 6))
    assert dataset.group_names == summary.group_names
    assert dataset.names[0] == "African/t.0a0/t.0a0_0001.jpg"
    # Training identities are not the instance identities.
    assert not any(name.split("/")[1].startswith("m.") for name in dataset.names)
    loader = _loader(dataset, np.arange(24), DEFAULT_PREPROCESSING, batch_size=8, workers=2)
    images, rows, _ = zip(*loader)
    assert torch.cat(images).shape == (24, 3, 112, 112)
    assert np.concatenate(rows).tolist() == list(range(24))


def test_same_seed_same_bytes_other_seed_differs(synth_dir, tmp_path):
    out, _ = synth_dir
    sizes = dict(SMALL, train_identities_per_group=2, train_images_per_identity=1)
    again = synthesize(tmp_path / "again", seed=3, **sizes)
    other = synthesize(tmp_path / "other", seed=4, **sizes)
    assert again.instance_zip.read_bytes() == (out / "ValInstData.zip").read_bytes()
    assert (again.bin_folder / "Asian_test.bin").read_bytes() == (
        out / "rfw_bin" / "Asian_test.bin"
    ).read_bytes()
    assert other.instance_zip.read_bytes() != again.instance_zip.read_bytes()
    for name in ("faces.csv", "bfw_pairs.csv", "faces/Asian-Male/f.0b1/f.0b1_0001.png"):
        assert (again.faces_folder.parent / name).read_bytes() == (out / name).read_bytes()
    assert (other.faces_folder / "Asian-Male/f.0b1/f.0b1_0001.png").read_bytes() != (
        out / "faces/Asian-Male/f.0b1/f.0b1_0001.png").read_bytes()
    assert not list(tmp_path.glob("*/*.tmp")) and not list(tmp_path.glob("*/rfw_bin/*.tmp"))


@pytest.mark.parametrize(
    "sizes, message",
    [
        (dict(pairs_per_group=30), "multiple of 20"),
        (dict(pairs_per_group=0), "multiple of 20"),
        (dict(identities_per_group=1), "at least 2 identities"),
        (dict(images_per_identity=0.5), "at least 1"),
        (dict(faces_pairs_per_group=15), "multiple of 10"),
        (dict(faces_images_per_identity=1), "at least 2 images per identity"),
    ],
)
def test_bad_sizes(tmp_path, sizes, message):
    with pytest.raises(MfftoolsError, match=message):
        synthesize(tmp_path, **dict(SMALL, **sizes))


def _genuine_impostor_gap(images, identity):
    """Mean cosine similarity of centre crops, same identity minus different identities."""
    crops = images[:, 30:82, 36:76].reshape(len(images), -1).astype(np.float64)
    crops -= crops.mean(axis=1, keepdims=True)
    crops /= np.linalg.norm(crops, axis=1, keepdims=True)
    similarity = crops @ crops.T
    same = identity[:, None] == identity[None]
    off_diagonal = ~np.eye(len(images), dtype=bool)
    return similarity[same & off_diagonal].mean() - similarity[~same].mean()


def test_identities_look_alike_and_the_hard_group_less_so():
    images, identity = synthetic_faces(6, 4, seed=1)
    assert images.dtype == np.uint8 and images.shape == (24, 112, 112, 3)
    np.testing.assert_array_equal(identity, np.repeat(np.arange(6), 4))
    np.testing.assert_array_equal(synthetic_faces(6, 4, seed=1)[0], images)
    easy_gap = _genuine_impostor_gap(images, identity)
    hard_gap = _genuine_impostor_gap(*synthetic_faces(6, 4, seed=1, group="African"))
    assert easy_gap > 0.2
    assert hard_gap < 0.5 * easy_gap


def test_hard_group_identities_differ_less_and_vary_more():
    rng = np.random.default_rng(0)
    easy = sample_appearances(rng, 400, GROUP_STYLES["Caucasian"])
    hard = sample_appearances(rng, 400, GROUP_STYLES["African"])
    for name in ("face_ax", "eye_y", "mouth_w", "skin"):
        assert hard[name].std(axis=0).mean() < 0.7 * easy[name].std(axis=0).mean()
    assert hard["contrast"].max() < easy["contrast"].min()
    easy_var, hard_var = sample_variations(rng, 400, 0.0), sample_variations(rng, 400, 1.0)
    for name in ("noise", "blur"):
        assert hard_var[name].mean() > 1.5 * easy_var[name].mean()
    assert np.log(hard_var["gain"]).std() > 1.5 * np.log(easy_var["gain"]).std()


def test_render_is_per_image_and_batch_independent():
    rng = np.random.default_rng(5)
    appearance = sample_appearances(rng, 3, GROUP_STYLES["Indian"])
    variation = sample_variations(rng, 3, 0.2)
    together = render_faces(appearance, variation)
    alone = render_faces(take(appearance, slice(1, 2)), take(variation, slice(1, 2)))
    np.testing.assert_array_equal(together[1:2], alone)
    assert not np.array_equal(together[0], together[1])
