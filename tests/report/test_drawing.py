"""The figures as matplotlib objects: legends clear of the axes, accuracy axes from 0 or saying
where they start, intra similarity without one-image identities."""
import copy

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from numpy.testing import assert_allclose

from mfftools.report import drawing
from mfftools.report.bootstrap import bootstrap_instance
from mfftools.report.results import (
    ResultFile,
    det_curves,
    per_identity,
    per_identity_rates,
    roc_curves,
    score_distributions,
)
from result_builders import identification_result, instance_result, pair_result


def _file(data, model):
    return ResultFile(path=None, protocol=data["protocol"], model=model, data=data)


@pytest.fixture
def two_models(rng):
    """(pair results, instance (result, entry) pairs, their intervals, identification results)
    of two models."""
    pairs = [_file(pair_result(rng), name) for name in ("a", "b")]
    instances = [_file(instance_result(rng), name) for name in ("a", "b")]
    entries = [(result, result.data["results"][0]) for result in instances]
    intervals = {
        result.model: bootstrap_instance(per_identity_rates(result, entry), result.group_names,
                                         n_resamples=50)
        for result, entry in entries
    }
    searches = [_file(identification_result(rng), name) for name in ("a", "b")]
    return pairs, entries, intervals, searches


def _all_figures(two_models):
    pairs, entries, intervals, searches = two_models
    instances = [result for result, _ in entries]
    return {
        "det": drawing.det([(result, det_curves(result)) for result in searches]),
        "cmc": drawing.cmc(searches),
        "false positives": drawing.false_positive_heatmaps(
            [(result, result.data["results"][0]["false_positive_matrix"]) for result in searches]),
        "pair accuracy": drawing.pair_accuracy(pairs),
        "group means": drawing.group_means(entries, intervals),
        "pair roc": drawing.roc([(result, roc_curves(result)) for result in pairs]),
        "instance roc": drawing.roc([(result, roc_curves(result)) for result in instances]),
        "per identity": drawing.per_identity_rates(
            [(result, per_identity_rates(result, entry)) for result, entry in entries]),
        "similarity": drawing.similarity(
            [(result, per_identity(result, entry)) for result, entry in entries]),
        "score distributions": drawing.score_distributions(
            [(result, score_distributions(result)) for result in instances]),
    }


def test_legends_lie_outside_every_panel(two_models):
    for name in ("pair accuracy", "group means", "pair roc", "instance roc",
                 "score distributions", "det", "cmc"):
        figure = _all_figures(two_models)[name]
        canvas = FigureCanvasAgg(figure)
        canvas.draw()
        renderer = canvas.get_renderer()
        legends = figure.legends + [ax.get_legend() for ax in figure.axes if ax.get_legend()]
        assert legends, name
        for legend in legends:
            box = legend.get_window_extent(renderer)
            for ax in figure.axes:
                assert not box.overlaps(ax.get_window_extent(renderer)), name


def test_accuracy_and_tpr_axes_start_at_0_or_say_where(two_models):
    checked = 0
    for name, figure in _all_figures(two_models).items():
        for ax in figure.axes:
            label = ax.get_ylabel()
            if label.startswith(("accuracy", "identification rate")) or "TPR" in label:
                bottom = ax.get_ylim()[0]
                assert bottom <= 0 or label.endswith(f", axis from {bottom:.3g} (not 0)"), name
                checked += 1
    assert checked == 1 + 1 + 2 + 2 + 2 + 2  # pair, group means, ROCs, per-identity TPR, CMCs
    zoomed = _all_figures(two_models)["pair accuracy"].axes[0]
    assert zoomed.get_ylim()[0] > 0 and zoomed.get_ylabel().endswith("(not 0)")


def _intra_axes(figure):
    return next(ax for ax in figure.axes if ax.get_title().endswith("intra similarity"))


def test_intra_boxes_leave_out_one_image_identities(rng):
    result = _file(instance_result(rng), "a")
    columns = per_identity(result, result.data["results"][0])
    assert (columns["intra"][columns["n_images"] == 1] == 1.0).all()
    ax = _intra_axes(drawing.similarity([(result, columns)]))
    drawn = np.concatenate([line.get_ydata() for line in ax.get_lines()])
    kept = columns["intra"][columns["n_images"] >= 2]
    assert drawn.max() == kept.max() < 1.0
    assert drawn.min() == kept.min()


@pytest.mark.parametrize("multi", [True, False])
def test_without_image_counts_intra_bars_show_the_statistics_shown_in_tables(rng, multi):
    data = instance_result(rng, multi=multi)
    del data["identities"]
    result = _file(data, "a")
    columns = per_identity(result, data["results"][0])
    ax = _intra_axes(drawing.similarity([(result, columns)]))
    key = "intra_mean_multi" if multi else "intra_mean"
    expected = [data["similarity"][name][key] for name in data["group_names"]]
    assert_allclose([bar.get_height() for bar in ax.patches], expected)


def test_score_distributions_draw_the_files_numbers(rng):
    result = _file(instance_result(rng), "a")
    scores = score_distributions(result)
    figure = drawing.score_distributions([(result, scores)])
    matrix_ax, means_ax = figure.axes[:2]
    assert_allclose(matrix_ax.get_images()[0].get_array(), scores["impostor_matrix"]["mean"])
    low, high = matrix_ax.get_images()[0].get_clim()
    assert low == -high  # diverging around 0
    labels = ["all"] + result.group_names
    assert [tick.get_text() for tick in means_ax.get_xticklabels()] == labels
    genuine = means_ax.get_lines()[0]  # the genuine means, then their error bars
    assert_allclose(genuine.get_ydata(), [scores["genuine"][name]["mean"] for name in labels])


def test_det_on_log_axes_without_zero_rates_with_the_targets_marked(rng):
    result = _file(identification_result(rng, targets=(1e-2, 5e-2)), "a")
    ax = drawing.det([(result, det_curves(result))]).axes[0]
    assert ax.get_xscale() == ax.get_yscale() == "log"
    curves = {line.get_label(): line for line in ax.get_lines()}
    indian = result.data["det"]["Indian"]
    assert_allclose(curves["Indian"].get_xdata(), indian["fpir"][:-1])  # FNIR 0 at FPIR 1
    assert_allclose(curves["Indian"].get_ydata(), indian["fnir"][:-1])
    assert curves["all searches"].get_linestyle() == "--"
    targets = [line.get_xdata()[0] for line in ax.get_lines() if line.get_label().startswith("_")]
    assert targets == [1e-2, 5e-2]


def test_false_positive_cells_on_a_log_scale_with_zero_cells_apart(rng):
    result = _file(identification_result(rng), "a")
    counts = np.array([[0, 3, 0, 1], [40, 0, 2, 0], [0, 0, 0, 7], [1, 0, 5, 0]])
    ax = drawing.false_positive_heatmaps([(result, counts.tolist())]).axes[0]
    image = ax.get_images()[0]
    assert type(image.norm).__name__ == "LogNorm" and image.norm.vmax == 40
    shown = image.get_array()
    assert_allclose(shown.mask, counts == 0)  # masked cells take the grey "bad" colour
    assert image.get_cmap()(np.ma.masked)[:3] == pytest.approx([0xD9 / 255] * 3)
    assert [text.get_text() for text in ax.texts] == [str(c) for c in counts.ravel()]


def test_cmc_curves_are_the_files_rates(rng):
    result = _file(identification_result(rng, ranks=(1, 2, 20)), "a")
    result.data["cmc"]["Asian"] = [None] * 3  # no mated search: no curve
    ax = drawing.cmc([result]).axes[0]
    curves = {line.get_label(): line for line in ax.get_lines()}
    assert set(curves) == {"all searches", "African", "Caucasian", "Indian"}
    assert_allclose(curves["Indian"].get_xdata(), [1, 2, 20])
    assert_allclose(curves["Indian"].get_ydata(), result.data["cmc"]["Indian"])


def test_a_group_missing_from_one_model_leaves_a_gap(rng):
    data = instance_result(rng)
    partial = copy.deepcopy(data["results"][0])
    del partial["groups"]["Asian"]
    entries = [(_file(data, "a"), data["results"][0]), (_file(data, "b"), partial)]
    figure = drawing.group_means(entries, {})
    heights = [bar.get_height() for bar in figure.axes[0].patches]
    assert np.isnan(heights[4 + 1]) and not np.isnan(heights[1])


def test_many_or_long_group_names_are_slanted(rng):
    """Eight subgroups such as Caucasian-Female would run into each other level."""
    data = pair_result(rng)
    names = [f"{e}-{g}" for e in ("African", "Asian", "Caucasian", "Indian")
             for g in ("Female", "Male")]
    first = next(iter(data["groups"].values()))
    data["group_names"], data["groups"] = names, {name: dict(first) for name in names}
    labels = drawing.pair_accuracy([_file(data, "m")]).axes[0].get_xticklabels()
    assert [label.get_text() for label in labels] == names
    assert {label.get_rotation() for label in labels} == {30.0}
    few = drawing.pair_accuracy([_file(pair_result(rng), "m")]).axes[0].get_xticklabels()
    assert {label.get_rotation() for label in few} == {0.0}
