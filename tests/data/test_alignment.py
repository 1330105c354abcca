import warnings

import numpy as np
import pytest

from mfftools.data.alignment import (
    ARCFACE_TEMPLATE,
    align_face,
    check_landmarks,
    similarity_transform,
    template_for,
)
from mfftools.errors import MfftoolsError

cv2 = pytest.importorskip("cv2")
skimage_transform = pytest.importorskip("skimage.transform")


def _reference_crop(pixels, landmarks, size):
    """insightface's norm_crop: scikit-image's estimate, OpenCV's warp."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # estimate() is deprecated in newer scikit-image
        transform = skimage_transform.SimilarityTransform()
        transform.estimate(landmarks, template_for(size))
    return cv2.warpAffine(pixels, transform.params[0:2, :], (size, size), borderValue=0.0)


def _random_face(rng, height, width):
    """A random image and landmarks: the template moved by a random similarity, plus jitter."""
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    angle = rng.uniform(-0.6, 0.6)
    scale = rng.uniform(0.6, 2.5)
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    shift = rng.uniform([0, 0], [width / 2, height / 2])
    landmarks = ARCFACE_TEMPLATE @ rotation.T + shift + rng.normal(0, 2.0, (5, 2))
    return pixels, landmarks


@pytest.mark.parametrize("size", [112, 224, 128])
def test_crops_match_scikit_image_and_opencv(rng, size):
    worst = 0
    for _ in range(20):
        pixels, landmarks = _random_face(rng, int(rng.integers(120, 300)),
                                         int(rng.integers(120, 300)))
        ours = align_face(pixels, landmarks, size)
        reference = _reference_crop(pixels, landmarks, size)
        assert ours.shape == reference.shape == (size, size, 3)
        worst = max(worst, int(np.abs(ours.astype(int) - reference.astype(int)).max()))
    assert worst <= 1


def test_transform_equals_umeyama_of_scikit_image(rng):
    for _ in range(50):
        source = rng.uniform(0, 300, (5, 2))
        target = rng.uniform(0, 112, (5, 2))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            transform = skimage_transform.SimilarityTransform()
            transform.estimate(source, target)
        np.testing.assert_allclose(similarity_transform(source, target), transform.params[:2],
                                   rtol=1e-9, atol=1e-9)


def test_exact_similarity_is_recovered_and_never_reflects(rng):
    angle, scale, shift = 0.3, 1.7, np.array([20.0, -5.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = ARCFACE_TEMPLATE @ rotation.T + shift
    matrix = similarity_transform(moved, ARCFACE_TEMPLATE)
    mapped = moved @ matrix[:, :2].T + matrix[:, 2]
    np.testing.assert_allclose(mapped, ARCFACE_TEMPLATE, atol=1e-9)
    mirrored = ARCFACE_TEMPLATE * [-1.0, 1.0]  # a reflection: the fit stays a rotation
    assert np.linalg.det(similarity_transform(mirrored, ARCFACE_TEMPLATE)[:, :2]) > 0


def test_template_sizes_follow_insightface():
    np.testing.assert_allclose(template_for(224), ARCFACE_TEMPLATE * 2)
    np.testing.assert_allclose(template_for(128)[:, 0], ARCFACE_TEMPLATE[:, 0] + 8)
    np.testing.assert_allclose(template_for(256)[:, 1], ARCFACE_TEMPLATE[:, 1] * 2)
    with pytest.raises(MfftoolsError, match="multiple of 112 or 128"):
        template_for(100)


def test_bad_landmarks_are_refused():
    with pytest.raises(MfftoolsError, match="coincide"):
        similarity_transform(np.ones((5, 2)), ARCFACE_TEMPLATE)
    with pytest.raises(MfftoolsError, match="a.jpg: .*not all finite"):
        check_landmarks([np.nan] * 10, "a.jpg")
    with pytest.raises(MfftoolsError, match="b.jpg: expected 10"):
        check_landmarks([1.0] * 8, "b.jpg")
