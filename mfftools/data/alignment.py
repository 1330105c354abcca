"""5-point face alignment, as insightface's `face_align.norm_crop` does it.

The five landmarks (eye centres, nose tip, mouth corners, in the image's pixel coordinates) are
mapped onto the ArcFace template by the least-squares similarity transform (rotation, uniform
scale and shift, never a reflection: Umeyama's estimate, which scikit-image's
`SimilarityTransform.estimate` computes), and the image is warped through it bilinearly with a
black border by OpenCV's `warpAffine`, so crops equal insightface's for the same decoded pixels.

Template sizes follow insightface's rule: a multiple of 112 scales the 112x112 template by
size / 112; a multiple of 128 scales it by size / 128 and shifts x by 8 x that ratio.
"""
import numpy as np

from mfftools.errors import MfftoolsError

# insightface's arcface_dst: the 96x112 template of SphereFace shifted by 8 pixels in x.
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)
TEMPLATE_NAME = "arcface-112"
N_POINTS = 5


def template_for(size):
    """The template's five points for a square crop of `size` pixels (insightface's rule)."""
    if size % 112 == 0:
        return ARCFACE_TEMPLATE * (size / 112.0)
    if size % 128 == 0:
        ratio = size / 128.0
        return ARCFACE_TEMPLATE * ratio + np.array([8.0 * ratio, 0.0])
    raise MfftoolsError(
        f"5-point alignment makes square crops of a multiple of 112 or 128 pixels; the model's "
        f"input is {size}x{size} (give --input-size 112, or images that are already aligned)"
    )


def similarity_transform(source, target):
    """The 2x3 matrix M of the similarity transform (rotation and uniform scale, no reflection,
    then a shift) minimising sum |M [s; 1] - t|^2 over the point pairs.

    In complex numbers a similarity without reflection is z -> a z + b, so the least-squares fit
    is a linear regression: a = sum conj(s_c) t_c / sum |s_c|^2 on the centred points. This is
    Umeyama's solution (with his correction that excludes reflections) written for the plane.
    """
    source = np.asarray(source, dtype=np.float64).reshape(-1, 2)
    target = np.asarray(target, dtype=np.float64).reshape(-1, 2)
    s = source[:, 0] + 1j * source[:, 1]
    t = target[:, 0] + 1j * target[:, 1]
    s_centred = s - s.mean()
    t_centred = t - t.mean()
    spread = float(np.sum(s_centred.real**2 + s_centred.imag**2))
    if not spread > 0.0:
        raise MfftoolsError("the five landmarks coincide: no transform maps them to the template")
    a = np.sum(np.conj(s_centred) * t_centred) / spread
    b = t.mean() - a * s.mean()
    return np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag]], dtype=np.float64)


def check_landmarks(points, name):
    """(5, 2) finite float64 landmarks, or an error naming the image."""
    points = np.asarray(points, dtype=np.float64)
    if points.size != 2 * N_POINTS:
        raise MfftoolsError(f"{name}: expected {2 * N_POINTS} landmark coordinates, got {points.size}")
    points = points.reshape(N_POINTS, 2)
    if not np.isfinite(points).all():
        raise MfftoolsError(f"{name}: its landmarks are not all finite numbers")
    return points


def align_face(pixels, landmarks, size=112):
    """uint8 [H, W, C] image and its (5, 2) landmarks -> the aligned uint8 [size, size, C] crop."""
    import cv2  # OpenCV (headless): only alignment needs it

    matrix = similarity_transform(landmarks, template_for(size))
    try:
        return cv2.warpAffine(np.ascontiguousarray(pixels), matrix, (size, size),
                              borderValue=0.0)
    except cv2.error as error:
        raise MfftoolsError(f"OpenCV cannot warp this image ({error})") from error
