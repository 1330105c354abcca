"""Training data: a training zip, a manifest or a folder tree, read by extraction's readers."""
import zipfile

import numpy as np
import pytest
import torch

from mfftools.errors import MfftoolsError
from mfftools.train.config import DataConfig
from mfftools.train.data import ACCEPTED, open_training_data, training_preprocessing

from trainer_fixtures import write_folder_tree, write_manifest, write_training_zip


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """The same 4 classes x 3 images as a folder tree, a manifest of it, and a training zip."""
    folder = tmp_path_factory.mktemp("sources")
    tree = write_folder_tree(folder / "tree", n_classes=4, per_class=3)
    manifest = write_manifest(folder / "faces.csv", tree)
    train_zip = write_training_zip(folder / "train.zip", n_classes=4, per_class=3)
    return tree, manifest, train_zip


def _open(path, **settings):
    data = DataConfig(train=str(path), **settings)
    return open_training_data(data, training_preprocessing(data))


@pytest.mark.parametrize("kind", ["tree", "manifest", "zip"])
def test_every_kind_gives_labelled_images(sources, kind):
    path = dict(zip(("tree", "manifest", "zip"), sources))[kind]
    data = _open(path)
    assert len(data) == 12 and data.num_classes == 4
    np.testing.assert_array_equal(data.labels, np.repeat(np.arange(4), 3))
    groups = [0, 1, 0, 1] if kind == "zip" else [0, 0, 1, 1]  # the zip's groups take turns
    np.testing.assert_array_equal(data.groups, np.repeat(groups, 3))
    assert data.group_names == ["GA", "GB"]
    image, label, group = data[4]
    assert image.shape == (3, 112, 112) and (label, group) == (1, groups[1])
    # Decoded in the loader's workers as in the main process.
    loader = torch.utils.data.DataLoader(data, batch_size=5, num_workers=1)
    images, labels, _ = next(iter(loader))
    torch.testing.assert_close(images[4], image)
    assert labels.tolist() == data.labels[:5].tolist()


def test_images_are_fed_with_the_runs_input_normalisation(sources):
    tree = sources[0]
    insightface = _open(tree)[0][0]
    paper = _open(tree, input_mean=0.0, input_std=1.0)[0][0]
    assert paper.min() >= 0 and paper.max() <= 1 and insightface.min() < 0
    torch.testing.assert_close(insightface, (paper - 0.5) / 0.5)


def test_a_manifests_columns_root_and_grouping_apply(sources, tmp_path):
    tree = sources[0]
    manifest = tmp_path / "renamed.tsv"
    rows = ["file\tperson\tethnicity\tgender"]
    for image in sorted(tree.glob("*/*/*.png")):
        rows.append(f"{image.relative_to(tree)}\t{image.parent.name}\t{image.parent.parent.name}\tF")
    manifest.write_text("\n".join(rows) + "\n")
    data = _open(manifest, image_root=str(tree), columns="path=file,identity=person",
                 group_by=["ethnicity", "gender"])
    assert data.num_classes == 4 and data.group_names == ["GA-F", "GB-F"]


def test_other_inputs_are_refused_saying_what_is_accepted(sources, tmp_path):
    tree, manifest, train_zip = sources
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("path1,path2,issame\na.png,b.png,1\n")
    bins = tmp_path / "bins"
    bins.mkdir()
    (bins / "African_test.bin").write_bytes(b"")
    rfw = tmp_path / "rfw.zip"
    with zipfile.ZipFile(rfw, "w") as archive:
        archive.writestr("data/txts/African/African_people.txt", "m.01\n")
    text = tmp_path / "faces.txt"
    text.write_text("a.png\n")
    cases = [
        (pairs, f"config data.train {pairs}: a pair list holds no identities to train on; "
                f"training data are {ACCEPTED}"),
        (bins, f"config data.train {bins}: a folder of .bin pair files holds no identities to train "
               f"on; training data are {ACCEPTED}"),
        (rfw, f"config data.train {rfw}: a zip without data/index.txt is not a training zip; "
              f"training data are {ACCEPTED}"),
        (text, f"config data.train {text}: training data are {ACCEPTED}"),
        (tmp_path / "absent", f"config data.train {tmp_path / 'absent'}: no such file or folder"),
    ]
    for path, message in cases:
        with pytest.raises(MfftoolsError) as caught:
            _open(path)
        assert str(caught.value) == message
    assert ACCEPTED == ("a training zip (data/index.txt and data/img/), a manifest (.csv/.tsv with "
                        "columns path, identity and group) or a folder tree <group>/<identity>/<image>")
    with pytest.raises(MfftoolsError) as caught:
        _open(tree, group_by=["gender"], in_memory=True)
    assert str(caught.value) == (f"config data.train {tree} is a folder tree: data.group_by, "
                                 "data.in_memory does not apply to it")
    with pytest.raises(MfftoolsError, match="is a training zip: data.columns does not apply"):
        _open(train_zip, columns="path=file")
    with pytest.raises(MfftoolsError, match="is a manifest: data.in_memory does not apply"):
        _open(manifest, in_memory=True)
