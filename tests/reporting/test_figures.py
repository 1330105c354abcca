"""The figure files and their captions."""
import numpy as np

from mfftools.reporting.figures import FigureWriter
from mfftools.reporting.results import ResultFile
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
    figure = writer.det([_file(identification_result(rng), "a"), _file(bare, "b")],
                        "identification")
    assert figure.path == tmp_path / "identification_det.png"
    assert writer.notes == ["FNIR vs FPIR curves not drawn for b: the result has no 'det' points."]
    assert FigureWriter(tmp_path).det([_file(bare, "b")], "identification") is None


def test_verification_det_caption_says_which_groups_have_no_curve_and_why(tmp_path, rng):
    data = instance_result(rng)
    data["det"]["Asian"]["fnmr"] = [0.0] * len(data["det"]["Asian"]["fnmr"])  # never a miss
    data["det"]["African"] = {"fmr": [None], "fnmr": [None]}
    figure = FigureWriter(tmp_path).det([_file(data, "a")], "instance")
    assert figure.path == tmp_path / "instance_det.png"
    assert "normal-deviate (probit) axes as NIST plots them" in figure.caption
    assert figure.caption.endswith(
        " No curve for African (a): no defined point (no matched impostor or no genuine pair); "
        "Asian (a): FMR or FNMR is 0 or 1 at every sampled threshold, which has no normal "
        "deviate.")


def test_roc_caption_says_why_a_group_has_no_curve(tmp_path, rng):
    data = pair_result(rng)
    data["roc"]["Asian"]["far"] = [0.0] * len(data["roc"]["Asian"]["far"])
    figure = FigureWriter(tmp_path).roc([_file(data, "p")], "pair")
    assert figure.caption.endswith(
        " No curve for Asian (p): FPR 0 at every sampled threshold (no impostor pair of the group "
        "scores above them), which a log FPR axis cannot show.")
    plain = FigureWriter(tmp_path).roc([_file(pair_result(rng), "p")], "pair")
    assert "No curve" not in plain.caption


def test_heat_maps_say_when_their_cells_are_too_small_for_values(tmp_path, rng):
    data = dict(identification_result(rng), group_names=[f"group-{k}" for k in range(40)])
    entry = dict(data["results"][0], false_positive_matrix=np.full((40, 40), 12345).tolist())
    figure = FigureWriter(tmp_path).false_positive_heatmaps([(_file(data, "a"), entry)], "x")
    assert figure.caption.endswith("The cells are too small to write their values in (many "
                                   "groups): they are in the results file and the tables.")
