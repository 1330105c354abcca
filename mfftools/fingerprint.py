"""What a results file was computed on, so that results of two models can be checked to come
from the same images: the number of rows and digests of the image paths and identity names."""
import hashlib

import numpy as np


def _digest(values):
    """sha256 (hex) of the sorted values joined by newlines, or None without values."""
    if values is None:
        return None
    text = "\n".join(sorted(str(value) for value in values))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def images_fingerprint(*embeddings):
    """The results file's `images` entry for one or more embeddings files read together.

    Images layout: {"n": rows, "paths_sha256", "identities_sha256"} over all the files' rows (a
    digest is None when a file lacks paths or identity names). Pairs layout: {"n": pairs,
    "labels_sha256"} of each pair's issame and group name, in file order.
    """
    if embeddings[0].layout == "pairs":
        (pairs,) = embeddings
        names = np.asarray(pairs.group_names, dtype=object)[pairs.pair_group]
        labels = "\n".join(f"{int(same)}\t{name}" for same, name in zip(pairs.issame, names))
        return {"n": int(len(pairs.issame)),
                "labels_sha256": hashlib.sha256(labels.encode("utf-8")).hexdigest()}

    def joined(attribute):
        columns = [getattr(file, attribute) for file in embeddings]
        return None if any(column is None for column in columns) else np.concatenate(columns)

    return {
        "n": int(sum(file.n_rows for file in embeddings)),
        "paths_sha256": _digest(joined("image_paths")),
        "identities_sha256": _digest(joined("identity_names")),
    }
