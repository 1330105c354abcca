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


def write_ijb_file(path, embeddings, template, media, detector_score=None, **attrs):
    """An IJB-style images-layout file: each image's template, media (and detector score);
    its identity is the template, as `extract --ijb` writes it."""
    columns = {"template": template, "media": media}
    if detector_score is not None:
        columns["detector_score"] = np.asarray(detector_score, np.float32)
    with EmbeddingsWriter.create(path, layout="images", dim=embeddings.shape[1],
                                 group_names=["IJBC"], dtype=embeddings.dtype, attrs=attrs,
                                 optional_columns=tuple(columns)) as writer:
        writer.append(embeddings, identity=template, group=np.zeros(len(template), np.int64),
                      path=[f"loose_crop/{k + 1}.jpg" for k in range(len(embeddings))],
                      source_index=np.arange(len(embeddings)), **columns)
    return path
