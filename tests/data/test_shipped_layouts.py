"""RFW as shipped and the IJB-C look-alike that `mfftools synth` writes, read back."""
import shutil

import numpy as np
import pytest
import torch

from mfftools.data.images import Preprocessing
from mfftools.data.ijb import ijb_source, read_tid_mid
from mfftools.data.landmarks import AlignedImages
from mfftools.data.rfw_folder import rfw_source
from mfftools.data.synthetic_shipped import aligned_faces, ijbc_plan, write_shipped
from mfftools.errors import MfftoolsError
from model_files import cosines, small_iresnet

SIZES = dict(rfw_identities_per_group=3, rfw_images_per_identity=2, rfw_pairs_per_group=20,
             ijbc_subjects=6, ijbc_templates_per_subject=2)


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    out = tmp_path_factory.mktemp("shipped")
    return out, write_shipped(out, seed=4, **SIZES)


def _copy(tmp_path, folder):
    target = tmp_path / folder.name
    shutil.copytree(folder, target)
    return target


def test_rfw_every_image_aligned_by_its_landmark_list(shipped):
    _, summary = shipped
    source = rfw_source(summary.rfw_folder)
    assert source.layout == "images"
    assert source.group_names == ["African", "Asian", "Caucasian", "Indian"]
    assert len(source) == sum(summary.rfw_images.values()) == 4 * 3 * 2
    assert source.attrs == {"aligned": True, "alignment_template": "arcface-112"}
    assert isinstance(source.images, AlignedImages)
    assert not np.isnan(source.images.landmarks).any()
    np.testing.assert_array_equal(source.identity, np.repeat(np.arange(12), 2))
    np.testing.assert_array_equal(source.group, np.repeat(np.arange(4), 6))
    assert source.images.image_name(0) == "data/African/m.0r0/m.0r0_0001.jpg"
    assert source.images.decode(0, Preprocessing()).shape == (3, 112, 112)


def test_rfw_pairs_keep_rfw_folds(shipped):
    _, summary = shipped
    source = rfw_source(summary.rfw_folder, layout="pairs", groups=("Asian", "Indian"))
    assert source.layout == "pairs" and source.group_names == ["Asian", "Indian"]
    assert len(source.issame) == 40 and len(source) == 80
    np.testing.assert_array_equal(source.fold, np.tile(np.repeat(np.arange(10), 2), 2))
    np.testing.assert_array_equal(source.issame, np.tile([True, False], 20))
    lines = (summary.rfw_folder / "txts/Asian/Asian_pairs.txt").read_text().splitlines()
    fields = lines[1].split("\t")
    assert source.images.image_name(2) == f"data/Asian/{fields[0]}/{fields[0]}_{int(fields[1]):04d}.jpg"
    assert source.images.image_name(3).startswith(f"data/Asian/{fields[2]}/")
    assert not np.isnan(source.images.landmarks).any()


def test_rfw_landmarks_all_or_none(shipped, tmp_path, caplog):
    _, summary = shipped
    root = _copy(tmp_path, summary.rfw_folder)
    assert rfw_source(root, aligned=True).attrs == {"aligned": True}
    (root / "txts/Asian/Asian_lmk.txt").unlink()
    with pytest.raises(MfftoolsError, match="landmark lists missing for some races: .*Asian_lmk"):
        rfw_source(root)
    for race in ("African", "Caucasian", "Indian"):
        (root / f"txts/{race}/{race}_lmk.txt").unlink()
    plain = rfw_source(root)
    assert plain.attrs is None and not isinstance(plain.images, AlignedImages)
    assert "no landmark lists" in caplog.text


def test_rfw_image_without_landmarks_is_refused_by_name(shipped, tmp_path):
    _, summary = shipped
    root = _copy(tmp_path, summary.rfw_folder)
    lmk = root / "txts/Indian/Indian_lmk.txt"
    lines = lmk.read_text().splitlines(keepends=True)
    lmk.write_text("".join(lines[1:]))
    with pytest.raises(MfftoolsError, match="1 images have no landmarks.*Indian/m.0u0/m.0u0_0001"):
        rfw_source(root)
    source = rfw_source(root, allow_missing=True)
    row = 18
    assert source.images.image_name(row) == "data/Indian/m.0u0/m.0u0_0001.jpg"
    with pytest.raises(MfftoolsError, match="no landmarks, so it cannot be aligned"):
        source.images.decode(row, Preprocessing())


def test_rfw_pair_list_errors_name_the_line(shipped, tmp_path):
    _, summary = shipped
    root = _copy(tmp_path, summary.rfw_folder)
    pairs = root / "txts/African/African_pairs.txt"
    lines = pairs.read_text().splitlines()
    pairs.write_text("\n".join(lines[:2] + ["m.0r0\tone\t2", "m.0r0\t9\t1", "m.0r0\t1"]
                               + lines[5:]) + "\n")
    with pytest.raises(MfftoolsError) as error:
        rfw_source(root, layout="pairs")
    message = str(error.value)
    assert "line 3: image numbers must be positive integers" in message
    assert "line 4: no image data/African/m.0r0/m.0r0_0009.jpg" in message
    assert "line 5: 2 fields" in message


def test_ijbc_images_carry_template_media_and_detector_score(shipped):
    out, summary = shipped
    plan = ijbc_plan(4, SIZES["ijbc_subjects"], SIZES["ijbc_templates_per_subject"])
    source = ijb_source(summary.ijbc_folder)
    assert len(source) == summary.ijbc_images == len(plan.template)
    assert source.group_names == ["IJBC"]
    np.testing.assert_array_equal(source.columns["template"], plan.template)
    np.testing.assert_array_equal(source.columns["media"], plan.media)
    np.testing.assert_array_equal(source.identity, plan.template)
    lines = (summary.ijbc_folder / "meta/ijbc_name_5pts_score.txt").read_text().splitlines()
    np.testing.assert_allclose(source.columns["detector_score"],
                               [float(line.split()[-1]) for line in lines])
    assert source.images.image_name(0) == "loose_crop/1.jpg"
    assert source.attrs["alignment_template"] == "arcface-112"
    # A video's frames share a media id; some templates hold several media.
    assert len(np.unique(plan.media)) < len(plan.media)
    assert max(len(np.unique(plan.media[plan.template == t])) for t in plan.template_subject) > 1


def test_ijb_lists_are_checked(shipped, tmp_path):
    _, summary = shipped
    root = _copy(tmp_path, summary.ijbc_folder)
    tid_mid = root / "meta/ijbc_face_tid_mid.txt"
    lines = tid_mid.read_text().splitlines()
    tid_mid.write_text("\n".join(lines[:1] + ["2.jpg 1", "3.jpg x 4", lines[0]] + lines[4:]))
    with pytest.raises(MfftoolsError) as error:
        read_tid_mid(tid_mid)
    assert "line 2: 2 fields" in str(error.value)
    assert "line 3: template and media ids must be integers" in str(error.value)
    assert "line 4: 1.jpg is listed again (first on line 1)" in str(error.value)
    tid_mid.write_text("\n".join(lines) + "\n")
    (root / "loose_crop/2.jpg").unlink()
    with pytest.raises(MfftoolsError, match="no image 2.jpg in"):
        ijb_source(root)


def _pooled(images, cell=4):
    """A small fixed embedding: 4x4 average pooling, the mean removed, a fixed projection."""
    pixels = np.stack(images).astype(np.float64) / 255.0
    n = len(pixels)
    pooled = pixels.reshape(n, 112 // cell, cell, 112 // cell, cell, 3).mean(axis=(2, 4))
    pooled = pooled.reshape(n, -1) - pooled.reshape(n, -1).mean(axis=1, keepdims=True)
    return pooled @ np.random.default_rng(5).normal(size=(pooled.shape[1], 128))


def test_aligned_loose_crops_embed_like_the_original_faces(shipped):
    _, summary = shipped
    plan = ijbc_plan(4, SIZES["ijbc_subjects"], SIZES["ijbc_templates_per_subject"])
    originals = aligned_faces(4, plan)
    source = ijb_source(summary.ijbc_folder)
    unit = Preprocessing(mean=(0.0, 0.0, 0.0), std=(1 / 255,) * 3)  # the aligned uint8 pixels
    aligned = [source.images.decode(row, unit).permute(1, 2, 0).numpy().round().astype(np.uint8)
               for row in range(len(source))]
    assert cosines(_pooled(aligned), _pooled(originals)).min() >= 0.99
    # Faces of other images, or crops aligned 3 pixels off, are further away.
    assert cosines(_pooled(originals), _pooled(np.roll(originals, 1, axis=0))).min() < 0.99
    landmarks = source.images.landmarks
    source.images.landmarks = landmarks + [3.0, 0.0]
    shifted = [source.images.decode(row, unit).permute(1, 2, 0).numpy().round().astype(np.uint8)
               for row in range(len(source))]
    source.images.landmarks = landmarks
    assert cosines(_pooled(shifted), _pooled(originals)).min() < 0.99
    # A face model (r10-mini, random weights): as close on average.
    model = small_iresnet()
    with torch.no_grad():
        ours = model(torch.stack([source.images.decode(row, Preprocessing())
                                  for row in range(len(source))])).numpy()
        theirs = model(torch.from_numpy((originals / 127.5 - 1.0).astype(np.float32))
                       .permute(0, 3, 1, 2)).numpy()
    assert cosines(ours, theirs).mean() >= 0.99
