import numpy as np
import pytest

from mfftools.embeddings import open_embeddings
from mfftools.errors import MfftoolsError
from mfftools.evaluation.templates import TemplateSettings, build_templates
from embedding_files import write_ijb_file, write_images_file


def ijb_layout(rng, n_images=300, n_templates=25, dim=16):
    """Images of templates in shuffled order; media shared by several frames, some media ids
    reused by two templates (as IJB-C's videos are)."""
    template = rng.integers(0, n_templates, n_images) * 7 + 3
    media = rng.integers(0, 40, n_images) + 1000
    embeddings = rng.normal(size=(n_images, dim)).astype(np.float32)
    embeddings *= rng.uniform(0.5, 3.0, (n_images, 1)).astype(np.float32)
    score = rng.uniform(0.1, 1.0, n_images).astype(np.float32)
    return embeddings, template, media, score


def dense_templates(embeddings, template, media, score, settings):
    """insightface's recipe, written plainly in float64."""
    features = embeddings.astype(np.float64)
    if settings.norm == "unit":
        features /= np.linalg.norm(features, axis=1, keepdims=True)
    if settings.detector_score == "weight":
        features *= score[:, None]
    ids = np.unique(template)
    out = []
    for t in ids:
        mine = template == t
        medias = [features[mine & (media == m)].mean(axis=0) for m in np.unique(media[mine])]
        total = np.sum(medias, axis=0)
        out.append(total / np.linalg.norm(total))
    return ids, np.array(out)


@pytest.mark.parametrize("norm", ["keep", "unit"])
@pytest.mark.parametrize("detector_score", ["weight", "ignore"])
def test_templates_follow_insightface_recipe(tmp_path, rng, norm, detector_score):
    embeddings, template, media, score = ijb_layout(rng)
    path = write_ijb_file(tmp_path / "ijb.h5", embeddings, template, media, score)
    settings = TemplateSettings(norm, detector_score)
    templates = build_templates(open_embeddings(path), settings, block_rows=37)
    ids, expected = dense_templates(embeddings, template, media, score, settings)
    np.testing.assert_array_equal(templates.ids, ids)
    np.testing.assert_allclose(templates.rows.numpy(), expected, atol=2e-7)
    whole = build_templates(open_embeddings(path), settings)
    np.testing.assert_allclose(whole.rows.numpy(), templates.rows.numpy(), atol=1e-7)
    np.testing.assert_array_equal(templates.n_images, np.bincount(np.unique(template, return_inverse=True)[1]))
    assert templates.n_media.tolist() == [len(np.unique(media[template == t])) for t in ids]
    assert templates.rows_of([ids[3], 999]).tolist() == [3, -1]


def test_files_without_template_columns_are_refused(tmp_path, rng):
    embeddings, template, media, _ = ijb_layout(rng)
    plain = write_images_file(tmp_path / "plain.h5", embeddings, template, template * 0, ["g"])
    with pytest.raises(MfftoolsError, match="no 'template' and 'media' datasets.*--ijb"):
        build_templates(open_embeddings(plain))
    unscored = write_ijb_file(tmp_path / "unscored.h5", embeddings, template, media)
    with pytest.raises(MfftoolsError, match="no 'detector_score'.*--detector-score ignore"):
        build_templates(open_embeddings(unscored))
    assert len(build_templates(open_embeddings(unscored), TemplateSettings(detector_score="ignore")))
    zero = write_ijb_file(tmp_path / "zero.h5", embeddings, template, media,
                          np.where(template == template[0], 0.0, 1.0))
    with pytest.raises(MfftoolsError, match=f"template {template[0]} sums to zero"):
        build_templates(open_embeddings(zero))


def test_settings_are_checked():
    with pytest.raises(MfftoolsError, match="--norm must be one of keep, unit"):
        TemplateSettings(norm="l2")


@pytest.mark.parametrize("name, value, message", [
    ("template", np.zeros(300, np.float32), "dataset 'template' must be integer"),
    ("media", np.zeros(7, np.int64), r"dataset 'media' has shape \(7,\), expected \(300,\)"),
    ("detector_score", np.r_[np.ones(299), np.nan].astype(np.float32),
     "dataset 'detector_score' row 299 is not finite"),
])
def test_bad_template_columns_are_refused_on_open(tmp_path, rng, name, value, message):
    import h5py

    embeddings, template, media, score = ijb_layout(rng)
    path = write_ijb_file(tmp_path / "ijb.h5", embeddings, template, media, score)
    with h5py.File(path, "r+") as handle:
        del handle[name]
        handle[name] = value
    with pytest.raises(MfftoolsError, match=message):
        open_embeddings(path)


def test_float16_files_give_the_templates_of_their_values(tmp_path, rng):
    embeddings, template, media, score = ijb_layout(rng)
    half = embeddings.astype(np.float16)
    path = write_ijb_file(tmp_path / "half.h5", half, template, media, score)
    templates = build_templates(open_embeddings(path))
    _, expected = dense_templates(half.astype(np.float32), template, media, score,
                                  TemplateSettings())
    np.testing.assert_allclose(templates.rows.numpy(), expected, atol=2e-7)
