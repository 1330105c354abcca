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
    per_identity,
    per_identity_rates,
    roc_curves,
    score_distributions,
)
from result_builders import instance_result, pair_result


def _file(data, model):
    return ResultFile(path=None, protocol=data["protocol"], model=model, data=data)


@pytest.fixture
def two_models(rng):
    """(pair results, instance (result, entry) pairs, their intervals) of two models."""
    pairs = [_file(pair_result(rng), name) for name in ("a", "b")]
    instances = [_file(instance_result(rng), name) for name in ("a", "b")]
    entries = [(result, result.data["results"][0]) for result in instances]
    intervals = {
        result.model: bootstrap_instance(per_identity_rates(result, entry), result.group_names,
                                         n_resamples=50)
        for result, entry in entries
    }
    return pairs, entries, intervals


def _all_figures(two_models):
    pairs, entries, intervals = two_models
    instances = [result for result, _ in entries]
    return {
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
                 "score distributions"):
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
            if label.startswith("accuracy") or "TPR" in label:
                bottom = ax.get_ylim()[0]
                assert bottom <= 0 or label.endswith(f", axis from {bottom:.3g} (not 0)"), name
                checked += 1
    assert checked == 1 + 1 + 2 + 2 + 2  # pair, group means, ROCs, per-identity TPR
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


def test_a_group_missing_from_one_model_leaves_a_gap(rng):
    data = instance_result(rng)
    partial = copy.deepcopy(data["results"][0])
    del partial["groups"]["Asian"]
    entries = [(_file(data, "a"), data["results"][0]), (_file(data, "b"), partial)]
    figure = drawing.group_means(entries, {})
    heights = [bar.get_height() for bar in figure.axes[0].patches]
    assert np.isnan(heights[4 + 1]) and not np.isnan(heights[1])
