"""Small data for the Python API's tests: arrays, and the same data as embeddings files."""
import numpy as np
import pytest

from embedding_files import write_ijb_file, write_images_file, write_pairs_file

GROUPS = ["African", "Asian", "Caucasian"]


def make_faces(rng, n_identities=50, dim=16):
    """Clustered identities of 1-5 images in three groups: rows (float32), integer identity
    labels (unsorted, not 0..K-1), group indices."""
    sizes = rng.integers(1, 6, size=n_identities)
    labels = rng.permutation(1000)[:n_identities] * 3 + 7
    identity = np.repeat(labels, sizes)
    group = np.repeat(np.arange(n_identities) % len(GROUPS), sizes)
    centres = rng.standard_normal((n_identities, dim))
    rows = np.repeat(centres, sizes, axis=0) + 0.9 * rng.standard_normal((len(identity), dim))
    order = rng.permutation(len(identity))
    return rows[order].astype(np.float32), identity[order], group[order]


def make_pairs(rng, rows, identity, group, n_pairs=600):
    """Pairs of those rows, half genuine where possible: (first rows, second rows, issame,
    each pair's group name)."""
    first = rng.integers(0, len(rows), n_pairs)
    mates = [np.flatnonzero(identity == identity[k]) for k in first]
    second = np.array([rng.choice(m) if rng.random() < 0.5 and len(m) > 1 else
                       rng.integers(0, len(rows)) for m in mates])
    keep = first != second
    first, second = first[keep], second[keep]
    names = np.array(GROUPS)[group[first]]
    return rows[first], rows[second], identity[first] == identity[second], names


@pytest.fixture
def faces(rng):
    return make_faces(rng)


@pytest.fixture
def images_file(tmp_path, faces):
    rows, identity, group = faces
    return write_images_file(tmp_path / "faces.h5", rows, identity, group, GROUPS,
                             identity_names=[f"id{label}" for label in identity], model="toy")


@pytest.fixture
def pairs(rng, faces):
    return make_pairs(rng, *faces)


@pytest.fixture
def pairs_file(tmp_path, pairs):
    first, second, issame, names = pairs
    rows = np.empty((2 * len(first), first.shape[1]), dtype=np.float32)
    rows[0::2], rows[1::2] = first, second
    return write_pairs_file(tmp_path / "pairs.h5", rows, issame,
                            np.array([GROUPS.index(name) for name in names]), GROUPS,
                            model="toy")


@pytest.fixture
def ijb(tmp_path, rng):
    """An IJB-style file (36 images, 12 templates of 4 subjects) with its protocol files: the
    template pairs, two galleries, the probes and the subjects' metadata."""
    template = np.repeat(np.arange(1, 13), 3)
    media = np.arange(len(template)) // 2 + 100
    subject = (template - 1) // 3
    rows = (rng.normal(size=(4, 8))[subject] + 0.3 * rng.normal(size=(36, 8))).astype(np.float32)
    score = rng.uniform(0.5, 1, 36).astype(np.float32)
    path = write_ijb_file(tmp_path / "ijb.h5", rows, template, media, score, flip=True,
                          model="toy")
    (tmp_path / "pairs.txt").write_text("".join(
        f"{a} {b} {int((a - 1) // 3 == (b - 1) // 3)}\n"
        for a in range(1, 13) for b in range(a + 1, 13)))
    (tmp_path / "g1.csv").write_text("TEMPLATE_ID,SUBJECT_ID\n1,0\n4,1\n")
    (tmp_path / "g2.csv").write_text("TEMPLATE_ID,SUBJECT_ID\n7,2\n10,3\n")
    (tmp_path / "probes.csv").write_text("TEMPLATE_ID,SUBJECT_ID\n" + "".join(
        f"{t},{(t - 1) // 3}\n" for t in range(1, 13) if (t - 1) % 3))
    (tmp_path / "meta.csv").write_text("SUBJECT_ID,SKINTONE,GENDER\n0,1,0\n1,2,1\n2,1,1\n3,2,0\n")
    return {"file": path, "rows": rows, "template": template, "media": media, "score": score,
            "folder": tmp_path}
