"""Write small embeddings files through the project's writer, for tests."""
import numpy as np

from mfftools.embeddings import EmbeddingsWriter


def write_images_file(path, embeddings, identity, group, group_names, identity_names=None,
                      **attrs):
    """Write a complete images-layout embeddings file through the project's writer (with an
    `identity_name` column when `identity_names` are given)."""
    with EmbeddingsWriter.create(
        path,
        layout="images",
        dim=embeddings.shape[1],
        group_names=group_names,
        dtype=embeddings.dtype,
        attrs=attrs,
        optional_columns=() if identity_names is None else ("identity_name",),
    ) as writer:
        columns = {} if identity_names is None else {"identity_name": list(identity_names)}
        writer.append(
            embeddings,
            identity=identity,
            group=group,
            path=[f"img_{k}.jpg" for k in range(len(embeddings))],
            source_index=np.arange(len(embeddings)),
            **columns,
        )
    return path


def write_pairs_file(path, embeddings, issame, pair_group, group_names, **attrs):
    """Write a complete pairs-layout embeddings file through the project's writer."""
    with EmbeddingsWriter.create(
        path,
        layout="pairs",
        dim=embeddings.shape[1],
        group_names=group_names,
        dtype=embeddings.dtype,
        pairs={"issame": issame, "pair_group": pair_group},
        attrs=attrs,
    ) as writer:
        writer.append(embeddings, source_index=np.arange(len(embeddings)))
    return path
