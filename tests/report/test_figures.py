"""The figure files and their captions."""
from mfftools.report.figures import FigureWriter
from mfftools.report.results import ResultFile
from result_builders import identification_result, instance_result, pair_result


def _file(data, model):
    return ResultFile(path=None, protocol=data["protocol"], model=model, data=data)


def test_pair_accuracy_caption_says_where_the_axis_starts(tmp_path, rng):
    figure = FigureWriter(tmp_path).pair_accuracy([_file(pair_result(rng), "a")])
    assert figure.path == tmp_path / "pair_accuracy.png"
    start = figure.caption.split("The accuracy axis starts at ")[1]
    assert start.endswith("%, not 0.") and 0 < float(start.split("%")[0]) < 90


def test_similarity_caption_names_results_whose_intra_includes_one_image_identities(tmp_path, rng):
    counted = instance_result(rng)
    bare = instance_result(rng, multi=False)
    del bare["identities"]
    figure = FigureWriter(tmp_path).similarity([_file(counted, "a"), _file(bare, "b")])
    assert "over identities with at least two images (an identity with one image scores 1 by " \
        "construction, which would inflate the intra similarity)" in figure.caption
    assert figure.caption.endswith(
        " b: the result gives neither the identities' image counts nor intra_mean_multi, so its "
        "intra similarity includes one-image identities."
    )
    alone = FigureWriter(tmp_path).similarity([_file(counted, "a")])
    assert alone.caption.endswith("other centroids.")


def test_det_left_out_with_a_note_for_results_without_its_points(tmp_path, rng):
    bare = identification_result(rng, extras=False)
    writer = FigureWriter(tmp_path)
    figure = writer.det([_file(identification_result(rng), "a"), _file(bare, "b")])
    assert figure.path == tmp_path / "identification_det.png"
    assert writer.notes == ["FNIR vs FPIR curves not drawn for b: the result has no 'det' points."]
    assert FigureWriter(tmp_path).det([_file(bare, "b")]) is None
