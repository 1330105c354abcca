"""Synthetic look-alikes of RFW and IJB-C as they ship: loose crops with landmarks.

    OUT_DIR/RFW/test/data/<Race>/<person>/<person>_000N.jpg     loose crops
    OUT_DIR/RFW/test/txts/<Race>/<Race>_lmk.txt, _pairs.txt, _people.txt, _images.txt
    OUT_DIR/IJBC/loose_crop/<N>.jpg                              loose crops
    OUT_DIR/IJBC/meta/ijbc_face_tid_mid.txt                      <image> <template> <media>
    OUT_DIR/IJBC/meta/ijbc_name_5pts_score.txt                   <image> x1 y1 ... x5 y5 <score>
    OUT_DIR/IJBC/meta/ijbc_template_pair_label.txt               <t1> <t2> <label>
    OUT_DIR/IJBC/meta/ijbc_1N_gallery_G1.csv, _G2.csv, ijbc_1N_probe_mixed.csv
    OUT_DIR/IJBC/protocols/ijbc_metadata.csv                     SUBJECT_ID, ..., SKINTONE, GENDER

Each face is rendered aligned (`mfftools.data.faces`, as every synthetic face), then placed in a
larger image rotated, scaled and shifted by a random similarity (OpenCV's bilinear warp, the
border replicated); its landmarks are the ArcFace template moved by the same transform, so
aligning the loose crop recovers the face. `aligned_faces` renders the aligned originals again.

IJB-C: each subject has a skin tone (1-6) and a gender, and several templates; each template
holds a few media, stills (one frame) and videos (several frames). A subject's first template
enrols it in G1 (even subjects) or G2 (odd ones); the others are probes. The 1:1 list pairs
every two templates: genuine when they show one subject, impostor otherwise.
"""
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mfftools.data.alignment import ARCFACE_TEMPLATE
from mfftools.data.faces import (
    GROUP_STYLES,
    GroupStyle,
    render_faces,
    sample_appearances,
    sample_variations,
    take,
    with_gender,
)
from mfftools.data.images import IMAGE_SIZE, encode_image
from mfftools.data.table import write_table
from mfftools.errors import MfftoolsError
from mfftools.files import write_bytes, write_text

RFW_FOLDER = "RFW/test"
IJBC_FOLDER = "IJBC"
RFW_FOLDS = 10
# Skin tones 1 (light pink) .. 6 (dark brown), as IJB-C annotates them; darker is made harder,
# as models find it.
SKIN_TONES = {
    1: GroupStyle(skin=(0.93, 0.76, 0.70), difficulty=0.0),
    2: GroupStyle(skin=(0.90, 0.77, 0.60), difficulty=0.1),
    3: GroupStyle(skin=(0.80, 0.62, 0.50), difficulty=0.2),
    4: GroupStyle(skin=(0.72, 0.56, 0.40), difficulty=0.3),
    5: GroupStyle(skin=(0.56, 0.40, 0.29), difficulty=0.6),
    6: GroupStyle(skin=(0.42, 0.29, 0.21), difficulty=0.9),
}
GENDER_CODES = {"Female": 0, "Male": 1}  # IJB-C: 1 = male, 0 = female

# Independent random streams, apart from those of mfftools.data.synthetic.
_RFW, _IJBC = 11, 12


@dataclass
class ShippedSummary:
    """What was written, with the counts readers must give back."""

    rfw_folder: Path = None
    rfw_images: dict = field(default_factory=dict)
    rfw_pairs: dict = field(default_factory=dict)
    ijbc_folder: Path = None
    ijbc_images: int = 0
    ijbc_templates: int = 0
    ijbc_media: int = 0
    ijbc_subjects: int = 0
    ijbc_pairs: int = 0
    ijbc_genuine: int = 0


def loosen(faces, rng, scales=(1.5, 2.2), max_angle=0.45):
    """Aligned uint8 faces [B, 112, 112, 3] -> (loose crops, each [H, W, 3] of its own size;
    landmarks float64 [B, 5, 2] in the crop's pixels): each face rotated (up to `max_angle`
    radians), scaled (by `scales`) and shifted off centre, the whole aligned square inside the
    crop with a margin around it."""
    import cv2

    crops, landmarks = [], []
    for face in faces:
        angle = rng.uniform(-max_angle, max_angle)
        scale = rng.uniform(*scales)
        linear = scale * np.array([[np.cos(angle), -np.sin(angle)],
                                   [np.sin(angle), np.cos(angle)]])
        extent = IMAGE_SIZE * scale * (abs(np.cos(angle)) + abs(np.sin(angle)))
        width, height = (int(np.ceil(extent * margin)) for margin in rng.uniform(1.1, 1.4, 2))
        room = (np.array([width, height]) - extent) / 2
        centre = np.array([width, height]) / 2 + rng.uniform(-room, room)
        shift = centre - linear @ np.array([IMAGE_SIZE / 2, IMAGE_SIZE / 2])
        matrix = np.hstack([linear, shift[:, None]])
        crops.append(cv2.warpAffine(face, matrix, (width, height), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REPLICATE))
        landmarks.append(ARCFACE_TEMPLATE @ linear.T + shift)
    return crops, np.round(np.asarray(landmarks), 3)


def _rfw_plan(seed, race_index, race, identities, images):
    rng = np.random.default_rng([seed, _RFW, race_index])
    style = GROUP_STYLES[race]
    appearance = sample_appearances(rng, identities, style)
    identity = np.repeat(np.arange(identities), images)
    return rng, take(appearance, identity), sample_variations(rng, len(identity),
                                                              style.difficulty), identity


def rfw_person(race_index, number):
    return f"m.0{chr(ord('r') + race_index)}{np.base_repr(number, 36).lower()}"


def write_rfw(out_dir, seed, identities, images, pairs, quality=95):
    """RFW as shipped, under OUT_DIR/RFW/test; returns (folder, images per race, pairs per
    race)."""
    if identities < 2 or images < 2:
        raise MfftoolsError("RFW as shipped needs at least 2 identities of 2 images per race")
    if pairs <= 0 or pairs % (2 * RFW_FOLDS):
        raise MfftoolsError(f"RFW pairs per race must be a positive multiple of {2 * RFW_FOLDS} "
                            f"({RFW_FOLDS} folds of genuine then impostor pairs), got {pairs}")
    root = Path(out_dir) / RFW_FOLDER
    counts, pair_counts = {}, {}
    for race_index, race in enumerate(sorted(GROUP_STYLES)):
        rng, appearance, variation, identity = _rfw_plan(seed, race_index, race, identities,
                                                         images)
        crops, points = loosen(render_faces(appearance, variation), rng)
        people = [rfw_person(race_index, k) for k in range(identities)]
        lmk_lines, image_lines = [], []
        for row, (crop, landmarks) in enumerate(zip(crops, points)):
            person, number = people[identity[row]], row % images + 1
            name = f"data/{race}/{person}/{person}_{number:04d}.jpg"
            write_bytes(root / name, encode_image(crop, quality=quality))
            coordinates = "\t".join(f"{value:.3f}" for value in landmarks.reshape(-1))
            lmk_lines.append(f"test/{name}\t{identity[row]}\t{coordinates}\n")
            image_lines.append(f"{person}_{number:04d}.jpg\t{identity[row]}\n")
        txts = root / "txts" / race
        write_text(txts / f"{race}_lmk.txt", "".join(lmk_lines))
        write_text(txts / f"{race}_images.txt", "".join(image_lines))
        write_text(txts / f"{race}_people.txt",
                   "".join(f"{person}\t{images}\n" for person in people))
        write_text(txts / f"{race}_pairs.txt",
                   "".join(_rfw_pair_lines(rng, people, images, pairs)))
        counts[race], pair_counts[race] = len(crops), pairs
    return root, counts, pair_counts


def _rfw_pair_lines(rng, people, images, pairs):
    """RFW's pair lists: 10 folds, each its genuine pairs then as many impostor pairs."""
    half = pairs // (2 * RFW_FOLDS)
    lines = []
    for _ in range(RFW_FOLDS):
        for person in rng.choice(len(people), half):
            first, second = rng.choice(images, 2, replace=False) + 1
            lines.append(f"{people[person]}\t{first}\t{second}\n")
        for _ in range(half):
            first, second = rng.choice(len(people), 2, replace=False)
            n1, n2 = rng.integers(1, images + 1, 2)
            lines.append(f"{people[first]}\t{n1}\t{people[second]}\t{n2}\n")
    return lines


@dataclass
class IjbcPlan:
    """Every image line of the IJB-C look-alike and what it shows: per image its template,
    media, subject; per subject its skin tone and gender; each template's subject."""

    template: np.ndarray
    media: np.ndarray
    subject: np.ndarray
    skin_tone: np.ndarray
    gender: np.ndarray
    template_subject: dict
    enrolled: list
    probes: list


def ijbc_plan(seed, subjects, templates_per_subject):
    """The templates, media and frames of the IJB-C look-alike (a function of the seed)."""
    if subjects < 4 or templates_per_subject < 2:
        raise MfftoolsError("the IJB-C look-alike needs at least 4 subjects of 2 templates")
    rng = np.random.default_rng([seed, _IJBC, 0])
    skin_tone = np.resize(np.arange(1, 7), subjects)
    gender = np.resize(np.repeat([0, 1], 6), subjects)
    rng.shuffle(skin_tone)
    template, media, subject = [], [], []
    template_subject, enrolled, probes = {}, [], []
    next_template, next_media = 1, 10001
    for person in range(subjects):
        for number in range(templates_per_subject):
            template_subject[next_template] = person
            (enrolled if number == 0 else probes).append(next_template)
            for _ in range(int(rng.integers(1, 4))):  # media per template
                frames = 1 if rng.random() < 0.5 else int(rng.integers(2, 5))  # still or video
                template += [next_template] * frames
                media += [next_media] * frames
                subject += [person] * frames
                next_media += 1
            next_template += 1
    return IjbcPlan(np.asarray(template), np.asarray(media), np.asarray(subject), skin_tone,
                    gender, template_subject, enrolled, probes)


def aligned_faces(seed, plan):
    """The aligned faces of the IJB-C look-alike's images, uint8 [N, 112, 112, 3], in order."""
    faces = []
    for person in range(len(plan.skin_tone)):
        rows = np.flatnonzero(plan.subject == person)
        rng = np.random.default_rng([seed, _IJBC, 1, person])
        style = SKIN_TONES[int(plan.skin_tone[person])]
        gender = "Male" if plan.gender[person] == GENDER_CODES["Male"] else "Female"
        appearance = with_gender(sample_appearances(rng, 1, style), gender)
        variation = sample_variations(rng, len(rows), style.difficulty)
        faces.append(render_faces(take(appearance, np.zeros(len(rows), int)), variation))
    return np.concatenate(faces)


def write_ijbc(out_dir, seed, subjects, templates_per_subject, quality=95):
    """The IJB-C look-alike under OUT_DIR/IJBC; returns a ShippedSummary's IJB-C part."""
    plan = ijbc_plan(seed, subjects, templates_per_subject)
    root = Path(out_dir) / IJBC_FOLDER
    rng = np.random.default_rng([seed, _IJBC, 2])
    crops, points = loosen(aligned_faces(seed, plan), rng)
    scores = np.round(rng.uniform(0.55, 1.0, len(crops)), 3)
    tid_mid, five_points, metadata = [], [], []
    for row, (crop, landmarks) in enumerate(zip(crops, points)):
        name = f"{row + 1}.jpg"
        write_bytes(root / "loose_crop" / name, encode_image(crop, quality=quality))
        tid_mid.append(f"{name} {plan.template[row]} {plan.media[row]}\n")
        coordinates = " ".join(f"{value:.3f}" for value in landmarks.reshape(-1))
        five_points.append(f"{name} {coordinates} {scores[row]:.3f}\n")
        person = plan.subject[row]
        metadata.append((_subject_id(person), f"img/{row + 1}.jpg", int(plan.skin_tone[person]),
                         int(plan.gender[person]), int(rng.integers(20, 70))))
    meta = root / "meta"
    write_text(meta / "ijbc_face_tid_mid.txt", "".join(tid_mid))
    write_text(meta / "ijbc_name_5pts_score.txt", "".join(five_points))
    pairs = _template_pairs(plan)
    write_text(meta / "ijbc_template_pair_label.txt",
               "".join(f"{a} {b} {label}\n" for a, b, label in pairs))
    for name, chosen in (("ijbc_1N_gallery_G1.csv", lambda s: s % 2 == 0),
                         ("ijbc_1N_gallery_G2.csv", lambda s: s % 2 == 1),
                         ("ijbc_1N_probe_mixed.csv", lambda s: True)):
        templates = set(plan.enrolled if "gallery" in name else plan.probes)
        rows = [(template, _subject_id(plan.template_subject[template]), f"img/{row + 1}.jpg")
                for row, template in enumerate(plan.template)
                if template in templates and chosen(plan.template_subject[template])]
        write_table(meta / name, ("TEMPLATE_ID", "SUBJECT_ID", "FILENAME"), rows)
    write_table(root / "protocols" / "ijbc_metadata.csv",
               ("SUBJECT_ID", "FILENAME", "SKINTONE", "GENDER", "AGE"), metadata)
    return ShippedSummary(
        ijbc_folder=root, ijbc_images=len(crops), ijbc_templates=len(plan.template_subject),
        ijbc_media=len(np.unique(plan.media)), ijbc_subjects=subjects, ijbc_pairs=len(pairs),
        ijbc_genuine=sum(label for _, _, label in pairs),
    )


def _subject_id(person):
    return 100 + person


def _template_pairs(plan):
    """Every two templates of a subject (label 1), then every two of different subjects
    (label 0)."""
    ids = sorted(plan.template_subject)
    pairs = [(a, b, int(plan.template_subject[a] == plan.template_subject[b]))
             for k, a in enumerate(ids) for b in ids[k + 1:]]
    return sorted(pairs, key=lambda pair: -pair[2])


def write_shipped(out_dir, seed, rfw_identities_per_group, rfw_images_per_identity,
                  rfw_pairs_per_group, ijbc_subjects, ijbc_templates_per_subject, quality=95):
    """Both look-alikes; a ShippedSummary."""
    summary = write_ijbc(out_dir, seed, ijbc_subjects, ijbc_templates_per_subject, quality)
    summary.rfw_folder, summary.rfw_images, summary.rfw_pairs = write_rfw(
        out_dir, seed, rfw_identities_per_group, rfw_images_per_identity, rfw_pairs_per_group,
        quality)
    return summary
