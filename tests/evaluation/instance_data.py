"""Random and adversarial identities for the instance protocol's tests."""
import numpy as np

from embedding_files import write_images_file
from mfftools.embeddings import open_embeddings
from mfftools.evaluation.instance import evaluate_instance

GROUP_NAMES = ["African", "Asian", "Caucasian"]


def make_data(rng, n_identities, max_images, dim, n_groups=3, single=0.2):
    """Random identities of 1..max_images images, clustered around identity centres."""
    sizes = rng.integers(2, max_images + 1, size=n_identities)
    sizes[rng.random(n_identities) < single] = 1
    identity = np.repeat(rng.permutation(10 * n_identities)[:n_identities] * 7 - 50, sizes)
    id_group = rng.integers(0, n_groups, size=n_identities)
    group = np.repeat(id_group, sizes)
    centres = rng.standard_normal((n_identities, dim))
    emb = np.repeat(centres, sizes, axis=0) + 0.9 * rng.standard_normal((len(identity), dim))
    order = rng.permutation(len(identity))  # identities unsorted in the file
    return emb[order].astype(np.float32), identity[order], group[order]


def lattice_data(rng, n=260):
    """Embeddings of +-1 and 0 entries: few distinct scores, each shared by many pairs."""
    identity = rng.integers(0, 60, size=n)
    group = identity % 3
    emb = rng.integers(-1, 2, size=(n, 3)).astype(np.float32)
    emb[~emb.any(axis=1)] = 1.0
    return emb, identity, group


def evaluate_file(tmp_path, emb, identity, group, group_names=GROUP_NAMES, name="e.h5", **kw):
    path = write_images_file(tmp_path / name, emb, identity, group, group_names)
    return evaluate_instance(open_embeddings(path), progress=False, **kw)
