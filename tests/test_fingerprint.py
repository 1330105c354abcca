"""The `images` entry of results files: equal for the same images in any order, different
otherwise."""
import hashlib

import numpy as np

from embedding_files import write_images_file, write_pairs_file
from mfftools.embeddings import open_embeddings
from mfftools.fingerprint import images_fingerprint


def test_same_images_in_another_order_give_the_same_digests(tmp_path, rng):
    emb = rng.standard_normal((6, 4)).astype(np.float32)
    identity, group = np.array([0, 0, 1, 1, 2, 2]), np.zeros(6, dtype=np.int64)
    first = open_embeddings(write_images_file(tmp_path / "a.h5", emb, identity, group, ["G"]))
    order = np.array([5, 3, 1, 0, 2, 4])
    second = open_embeddings(write_images_file(tmp_path / "b.h5", emb[order] * 2, identity[order],
                                               group, ["G"]))
    second.image_paths = first.image_paths[order]  # the same image names, shuffled
    assert images_fingerprint(first) == images_fingerprint(second)
    expected = hashlib.sha256("\n".join(sorted(first.image_paths)).encode()).hexdigest()
    assert images_fingerprint(first) == {"n": 6, "paths_sha256": expected,
                                         "identities_sha256": None}
    second.image_paths = np.array([f"other_{k}.jpg" for k in range(6)])
    assert images_fingerprint(first)["paths_sha256"] != images_fingerprint(second)["paths_sha256"]


def test_two_files_read_together_are_one_set(tmp_path, rng):
    emb = rng.standard_normal((4, 4)).astype(np.float32)
    one = open_embeddings(write_images_file(tmp_path / "g.h5", emb, np.array([0, 0, 1, 1]),
                                            np.zeros(4, dtype=np.int64), ["G"]))
    both = images_fingerprint(one, one)
    assert both["n"] == 8 and both["paths_sha256"] != images_fingerprint(one)["paths_sha256"]


def test_pairs_layout_digests_its_labels(tmp_path, rng):
    emb = rng.standard_normal((8, 4)).astype(np.float32)
    path = write_pairs_file(tmp_path / "p.h5", emb, np.array([True, False, True, False]),
                            np.array([0, 0, 1, 1]), ["A", "B"])
    pairs = open_embeddings(path)
    found = images_fingerprint(pairs)
    assert found["n"] == 4
    pairs.issame = ~pairs.issame
    assert images_fingerprint(pairs)["labels_sha256"] != found["labels_sha256"]
