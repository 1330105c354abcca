"""Synthetic 112x112 "faces", rendered with vectorised numpy.

An identity is an appearance (skin colour and texture, face shape, hair line, eyes, brows, nose,
mouth) drawn once from its group's style; an image is that appearance under a variation (shift,
rotation, scale, expression, background, lighting, colour cast, blur, noise). A group's
`difficulty` (0 easy .. 1 hard) shrinks how much identities differ, lowers the contrast of the
facial features and adds nuisance variation, so models are measurably worse on that group.

Everything is a pure function of the parameters drawn here: the same seed gives the same pixels.
"""

from dataclasses import dataclass

import numpy as np

from mfftools.data.images import IMAGE_SIZE


@dataclass(frozen=True)
class GroupStyle:
    """How the identities of one group look, and how hard they are to tell apart."""

    skin: tuple
    difficulty: float


# RFW's four groups; African is made clearly harder (as models find it on RFW), the others mildly.
GROUP_STYLES = {
    "African": GroupStyle(skin=(0.45, 0.31, 0.23), difficulty=1.0),
    "Asian": GroupStyle(skin=(0.86, 0.71, 0.56), difficulty=0.3),
    "Caucasian": GroupStyle(skin=(0.90, 0.74, 0.66), difficulty=0.0),
    "Indian": GroupStyle(skin=(0.66, 0.48, 0.36), difficulty=0.2),
}

# A second attribute for balanced sets split by ethnicity and gender (BFW style): each shifts a
# few facial proportions one way or the other, the rest of an identity is drawn as usual.
GENDER_SHIFTS = {
    "Female": {"face_ax": 0.95, "brow_thick": 0.8, "mouth_w": 0.95},
    "Male": {"face_ax": 1.05, "brow_thick": 1.25, "mouth_w": 1.05},
}

_N_WAVES = 3  # sinusoids in an identity's skin texture
_BLUR_RADIUS = 4  # pixels; 2.5 sigma at the strongest blur


def sample_appearances(rng, n, style):
    """Draw `n` identity appearances of a group: a dict of arrays with leading dimension n."""
    spread = 1.0 - 0.45 * style.difficulty  # how much identities of the group differ

    def around(centre, half_width, size=None):
        shape = (n,) if size is None else (n, size)
        return (centre + spread * rng.uniform(-half_width, half_width, shape)).astype(np.float32)

    skin = np.clip(np.asarray(style.skin) + spread * rng.normal(0.0, 0.07, (n, 3)), 0.05, 0.98)
    hair_grey = rng.uniform(0.03, 0.7, (n, 1))
    hair_tint = rng.uniform([0.9, 0.7, 0.45], [1.45, 1.1, 1.0], (n, 3))  # black, brown, blond, red
    return {
        "skin": skin.astype(np.float32),
        "contrast": np.full(n, 1.0 - 0.4 * style.difficulty, np.float32),
        "face_ax": around(0.62, 0.09),
        "face_ay": around(0.80, 0.09),
        "hair_line": around(-0.42, 0.18),
        "hair_curve": around(0.3, 0.5),
        "hair_colour": np.clip(hair_grey * hair_tint, 0, 1).astype(np.float32),
        "eye_y": around(-0.16, 0.08),
        "eye_dx": around(0.29, 0.07),
        "eye_rx": around(0.11, 0.035),
        "eye_ry": around(0.055, 0.02),
        "eye_colour": rng.uniform(0.02, 0.45, (n, 3)).astype(np.float32),
        "brow_gap": around(0.11, 0.04),
        "brow_tilt": around(0.0, 0.35),
        "brow_thick": around(0.035, 0.015),
        "nose_y": around(0.14, 0.06),
        "nose_rx": around(0.06, 0.025),
        "nose_ry": around(0.13, 0.05),
        "mouth_y": around(0.42, 0.08),
        "mouth_w": around(0.22, 0.08),
        "mouth_curve": around(0.0, 0.9),
        "mouth_thick": around(0.04, 0.015),
        "lip_colour": np.clip(
            skin * rng.uniform(0.45, 0.8, (n, 1)) + [0.12, 0.0, 0.0], 0, 1
        ).astype(np.float32),
        "wave_k": (spread * rng.normal(0.0, 7.0, (n, _N_WAVES, 2))).astype(np.float32),
        "wave_phase": rng.uniform(0, 2 * np.pi, (n, _N_WAVES)).astype(np.float32),
        "wave_amp": (spread * rng.uniform(0.05, 0.12, (n, _N_WAVES))).astype(np.float32),
    }


def with_gender(appearance, gender):
    """Appearances of a group given the proportions of `gender` (a key of GENDER_SHIFTS)."""
    shifted = dict(appearance)
    for name, factor in GENDER_SHIFTS[gender].items():
        shifted[name] = (appearance[name] * np.float32(factor)).astype(np.float32)
    return shifted


def sample_variations(rng, n, difficulty):
    """Draw `n` image variations (pose, expression, lighting, blur, noise) at a difficulty."""
    d = float(difficulty)
    return {
        "angle": np.clip(rng.normal(0.0, 0.10 + 0.06 * d, n), -0.45, 0.45).astype(np.float32),
        "scale": (1.0 + np.clip(rng.normal(0.0, 0.05 + 0.03 * d, n), -0.15, 0.15)).astype(
            np.float32
        ),
        "shift": np.clip(rng.normal(0.0, 0.05 + 0.03 * d, (n, 2)), -0.2, 0.2).astype(np.float32),
        "smile": rng.normal(0.0, 0.25, n).astype(np.float32),
        "eye_open": rng.uniform(0.55, 1.1, n).astype(np.float32),
        "background": np.clip(
            rng.uniform(0.15, 0.85, (n, 1)) + rng.normal(0.0, 0.06, (n, 3)), 0, 1
        ).astype(np.float32),
        "gain": np.exp(rng.normal(0.0, 0.12 + 0.15 * d, n)).astype(np.float32),
        "gradient": rng.normal(0.0, 0.12 + 0.15 * d, (n, 2)).astype(np.float32),
        "cast": (1.0 + rng.normal(0.0, 0.04, (n, 3))).astype(np.float32),
        "blur": np.clip(rng.uniform(0.0, 1.0, n) + 0.9 * d * rng.uniform(0.0, 1.0, n), 0, 2).astype(
            np.float32
        ),
        "noise": (rng.uniform(0.01, 0.035, n) + 0.04 * d).astype(np.float32),
        "noise_seed": rng.integers(0, 2**63, n, dtype=np.int64),
    }


def take(params, index):
    """The rows `index` of every array of a parameter dict."""
    return {name: values[index] for name, values in params.items()}


def render_faces(appearance, variation):
    """Render one image per row of `appearance` and `variation` -> uint8 [B, 112, 112, 3]."""
    a = {name: _column(values) for name, values in appearance.items()}
    v = {name: _column(values) for name, values in variation.items() if name != "noise_seed"}
    n_images = len(variation["noise_seed"])
    grid = (np.arange(IMAGE_SIZE, dtype=np.float32) + 0.5) / (IMAGE_SIZE / 2) - 1.0
    gx, gy = grid[None, None, :], grid[None, :, None]
    # Face coordinates: undo the image's shift, rotation and scale.
    cos, sin = np.cos(v["angle"]), np.sin(v["angle"])
    sx, sy = gx - v["shift"][..., 0], gy - v["shift"][..., 1]
    x = (cos * sx + sin * sy) / v["scale"]
    y = (cos * sy - sin * sx) / v["scale"]

    skin = np.asarray(appearance["skin"], np.float32)
    contrast = np.asarray(appearance["contrast"], np.float32)[:, None]

    def feature(colour):
        return skin + contrast * (np.asarray(colour, np.float32) - skin)  # faded when contrast < 1

    texture = np.zeros_like(x)
    for wave in range(_N_WAVES):
        k = a["wave_k"][..., wave, :]
        texture += a["wave_amp"][..., wave] * np.sin(
            k[..., 0] * x + k[..., 1] * y + a["wave_phase"][..., wave]
        )
    hair = np.minimum(
        _ellipse(x, y - 0.02, a["face_ax"] * 1.1, a["face_ay"] * 1.06),
        _edge(a["hair_line"] + a["hair_curve"] * x * x - y),
    )
    eye_ry = a["eye_ry"] * v["eye_open"]
    eyes, brows = np.zeros_like(x), np.zeros_like(x)
    for side in (-1.0, 1.0):
        eye_x = x - side * a["eye_dx"]
        eyes = np.maximum(eyes, _ellipse(eye_x, y - a["eye_y"], a["eye_rx"], eye_ry))
        brow_y = a["eye_y"] - a["brow_gap"] - side * a["brow_tilt"] * eye_x
        brow = np.minimum(
            _edge(a["brow_thick"] - np.abs(y - brow_y)), _edge(a["eye_rx"] * 1.3 - np.abs(eye_x))
        )
        brows = np.maximum(brows, brow)
    mouth_line = a["mouth_y"] - (a["mouth_curve"] + v["smile"]) * x * x
    mouth = np.minimum(
        _edge(a["mouth_thick"] - np.abs(y - mouth_line)), _edge(a["mouth_w"] - np.abs(x))
    )
    # Layers from the bottom up: (coverage [B, H, W], colour [B, 3]).
    layers = [
        (_ellipse(x, y - 0.05, a["face_ax"], a["face_ay"]), skin),
        (hair, feature(appearance["hair_colour"])),
        (eyes, feature(appearance["eye_colour"])),
        (brows, feature(appearance["hair_colour"])),
        (0.5 * _ellipse(x, y - a["nose_y"], a["nose_rx"], a["nose_ry"]), feature(skin * 0.6)),
        (mouth, feature(appearance["lip_colour"])),
    ]
    weights, colours = _composite(layers, np.asarray(variation["background"], np.float32))
    # The face's skin texture modulates the skin colour where the face shows.
    weights.append(weights[1] * texture)
    colours.append(skin)
    # canvas[b, p] = sum over layers of weight[layer, b, p] * colour[layer, b], as one matmul.
    stacked = np.stack([w.reshape(n_images, -1) for w in weights], axis=-1)
    cast = np.asarray(variation["cast"], np.float32)[:, None, :]
    canvas = stacked @ (np.stack(colours, axis=1) * cast)
    light = v["gain"] * (1.0 + v["gradient"][..., 0] * gx + v["gradient"][..., 1] * gy)
    canvas *= light.reshape(n_images, -1, 1)
    canvas = _blur(canvas.reshape(n_images, IMAGE_SIZE, IMAGE_SIZE, 3), variation["blur"])
    for row, seed in enumerate(variation["noise_seed"]):
        noise = np.random.default_rng(int(seed)).standard_normal(
            (IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.float32
        )
        canvas[row] += np.float32(variation["noise"][row]) * noise
    np.clip(canvas, 0.0, 1.0, out=canvas)
    return (canvas * 255.0 + 0.5).astype(np.uint8)


def _column(values):
    """Per-image parameters -> arrays broadcasting against [B, H, W]."""
    values = np.asarray(values, dtype=np.float32)
    return values.reshape(values.shape[:1] + (1, 1) + values.shape[1:])


def _edge(signed_distance):
    """Soft inside-mask from a signed distance (positive inside), about one pixel wide."""
    return np.clip(0.5 + signed_distance * (IMAGE_SIZE / 2), 0.0, 1.0)


def _ellipse(x, y, rx, ry):
    radius = np.sqrt((x / rx) ** 2 + (y / ry) ** 2)
    return _edge((1.0 - radius) * np.minimum(rx, ry))


def _composite(layers, background):
    """Over-compositing of coverage layers on a background -> (weights, colours), the weight of
    each colour at each pixel (background first), computed on single-channel maps only."""
    remaining = np.ones_like(layers[0][0])
    weights = []
    for coverage, _ in reversed(layers):
        weights.append(coverage * remaining)
        remaining *= 1.0 - coverage
    weights.append(remaining)
    colours = [background] + [colour for _, colour in layers]
    return weights[::-1], colours


def _blur(images, level):
    """Per-image Gaussian blur, `level` 0 (sharp) .. 2 (sigma 1.6 pixels), separable, with
    edges replicated. Shifted sums rather than matmuls: no BLAS threads, same result anywhere."""
    sigma = np.maximum(0.8 * np.asarray(level, np.float32), 0.05)
    taps = np.arange(-_BLUR_RADIUS, _BLUR_RADIUS + 1, dtype=np.float32)
    weights = np.exp(-(taps**2) / (2.0 * sigma[:, None] ** 2))
    weights[weights < 1e-6] = 0.0  # no denormal floats: they make arithmetic crawl
    weights = (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)
    for axis in (1, 2):
        padding = [(0, 0)] * 4
        padding[axis] = (_BLUR_RADIUS, _BLUR_RADIUS)
        padded = np.pad(images, padding, mode="edge")
        blurred = np.zeros_like(images)
        for tap in range(len(taps)):
            window = [slice(None)] * 4
            window[axis] = slice(tap, tap + IMAGE_SIZE)
            blurred += weights[:, tap, None, None, None] * padded[tuple(window)]
        images = blurred
    return images


def synthetic_faces(n_identities, images_per_identity, seed=0, group="Caucasian"):
    """Faces without any file: (uint8 [N, 112, 112, 3], identity [N]); for benchmarks and tests."""
    style = GROUP_STYLES[group]
    rng = np.random.default_rng([seed, 99, list(GROUP_STYLES).index(group)])
    appearance = sample_appearances(rng, n_identities, style)
    identity = np.repeat(np.arange(n_identities), images_per_identity)
    variation = sample_variations(rng, len(identity), style.difficulty)
    return render_faces(take(appearance, identity), variation), identity
