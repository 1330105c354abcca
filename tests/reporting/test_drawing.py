"""The figures as matplotlib objects: legends clear of the axes, accuracy axes from 0 or saying
where they start, intra similarity without one-image identities."""
import copy
import math

import matplotlib.colors
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from numpy.testing import assert_allclose

from mfftools.reporting import drawing
from mfftools.reporting.bootstrap import bootstrap_instance
from mfftools.reporting.results import (
    ResultFile,
    det_curves,
    fmr_matrix,
    per_identity,
    per_identity_rates,
    roc_curves,
    score_distributions,
)
from result_builders import identification_result, instance_result, pair_result
from result_builders import score_distributions as score_distributions_builder


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
            [(result, result.data["results"][0]["false_positive_matrix"])
             for result in searches])[0],
        "instance det": drawing.verification_det(
            [(result, det_curves(result)) for result in instances]),
        "pair det": drawing.verification_det([(result, det_curves(result)) for result in pairs]),
        "fmr": drawing.fmr_heatmaps(
            [(result, fmr_matrix(result, entry)) for result, entry in entries])[0],
        "pair accuracy": drawing.pair_accuracy(pairs),
        "group means": drawing.group_means(entries, intervals),
        "pair roc": drawing.roc([(result, roc_curves(result)) for result in pairs]),
        "instance roc": drawing.roc([(result, roc_curves(result)) for result in instances]),
        "per identity": drawing.per_identity_rates(
            [(result, per_identity_rates(result, entry)) for result, entry in entries]),
        "similarity": drawing.similarity(
            [(result, per_identity(result, entry)) for result, entry in entries]),
        "score distributions": drawing.score_distributions(
            [(result, score_distributions(result)) for result in instances])[0],
    }


def test_legends_lie_outside_every_panel(two_models):
    figures = _all_figures(two_models)
    for name in ("pair accuracy", "group means", "pair roc", "instance roc",
                 "score distributions", "det", "cmc", "instance det", "pair det"):
        figure = figures[name]
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
    figures = _all_figures(two_models)
    for name, figure in figures.items():
        for ax in figure.axes:
            label = ax.get_ylabel()
            if label.startswith(("accuracy", "identification rate")) or "TPR" in label:
                bottom = ax.get_ylim()[0]
                assert bottom <= 0 or label.endswith(f", axis from {bottom:.3g} (not 0)"), name
                checked += 1
    assert checked == 1 + 1 + 2 + 2 + 2 + 2  # pair, group means, ROCs, per-identity TPR, CMCs
    zoomed = figures["pair accuracy"].axes[0]
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
    figure, labelled = drawing.score_distributions([(result, scores)])
    assert labelled
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
    ax = drawing.false_positive_heatmaps([(result, counts.tolist())])[0].axes[0]
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


def test_verification_det_on_normal_deviate_axes(rng):
    result = _file(instance_result(rng), "a")
    curves = det_curves(result)
    ax = drawing.verification_det([(result, curves)]).axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    fmr, fnmr = curves["Indian"]
    inside = (fmr > 0) & (fmr < 1) & (fnmr > 0) & (fnmr < 1)
    # the standard normal CDF of each plotted deviate gives back the rate
    assert_allclose(_normal_cdf(lines["Indian"].get_xdata()), fmr[inside], rtol=1e-9)
    assert_allclose(_normal_cdf(lines["Indian"].get_ydata()), fnmr[inside], rtol=1e-9)
    assert inside.sum() < len(fmr)  # FMR 1 has no normal deviate
    ticks = {tick.get_text(): position for tick, position
             in zip(ax.get_xticklabels(), ax.get_xticks())}
    assert _normal_cdf([ticks["0.001"]])[0] == pytest.approx(1e-3)
    assert "normal deviate" in ax.get_xlabel() and ax.get_xlabel().startswith("FMR")
    diagonal = next(line for line in ax.get_lines() if line.get_linestyle() == "--")
    assert_allclose(diagonal.get_xdata(), diagonal.get_ydata())  # FNMR = FMR


def _normal_cdf(deviates):
    return np.array([0.5 * math.erfc(-x / math.sqrt(2)) for x in deviates])


def _subgroups(n_groups):
    ethnicities = ("African", "Asian", "Caucasian", "Indian", "Hispanic", "MiddleEastern")
    return [f"{ethnicity}-{gender}" for ethnicity in ethnicities
            for gender in ("Female", "Male")][:n_groups]


def _overlaps(boxes):
    return [(a, b) for k, a in enumerate(boxes) for b in boxes[k + 1:]
            if a.x0 < b.x1 - 1 and b.x0 < a.x1 - 1 and a.y0 < b.y1 - 1 and b.y0 < a.y1 - 1]


def _readable(figure):
    """No two tick labels of an axis overlap, nor any written heat-map cell values; each value
    lies inside its own cell."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    for ax in figure.axes:
        for labels in (ax.get_xticklabels(), ax.get_yticklabels()):
            boxes = [label.get_window_extent(renderer) for label in labels if label.get_text()]
            assert not _overlaps(boxes), [label.get_text() for label in labels]
        texts = [text for text in ax.texts if text.get_text()]
        boxes = [text.get_window_extent(renderer) for text in texts]
        assert not _overlaps(boxes)
        for text, box in zip(texts, boxes):
            column, row = text.get_position()
            (left, bottom), (right, top) = ax.transData.transform(
                [(column - 0.5, row + 0.5), (column + 0.5, row - 0.5)])
            assert left <= box.x0 and box.x1 <= right and bottom <= box.y0 and box.y1 <= top


@pytest.mark.parametrize("n_groups", [4, 8, 12])
def test_many_groups_stay_readable(rng, n_groups):
    """Eight or twelve subgroups such as Caucasian-Female: labels slanted or upright as they
    need, figures as wide as their groups, heat-map values written only where they fit."""
    names = _subgroups(n_groups)
    instances = [_file(instance_result(rng, groups=names, n_per_group=6), m) for m in "ab"]
    entries = [(result, result.data["results"][0]) for result in instances]
    pairs = [_file(pair_result(rng, groups=names), m) for m in "ab"]
    searches = [_file(dict(identification_result(rng), group_names=names), "a")]
    counts = rng.integers(0, 300, (n_groups, n_groups))
    (first, entry), result = entries[0], instances[0]
    fmr, fmr_labelled = drawing.fmr_heatmaps([(first, fmr_matrix(first, entry))])
    scores, scores_labelled = drawing.score_distributions([(result, score_distributions(result))])
    positives, positives_labelled = drawing.false_positive_heatmaps(
        [(searches[0], counts.tolist())])
    figures = [  # side-by-side bars of two models; one model where models get their own panels
        fmr, scores, positives, drawing.pair_accuracy(pairs), drawing.group_means(entries, {}),
        drawing.per_identity_rates([(first, per_identity_rates(first, entry))]),
        drawing.similarity([(first, per_identity(first, entry))]),
        drawing.verification_det([(first, det_curves(first))]),
    ]
    for figure in figures:
        _readable(figure)
    # values are written in the cells up to 12 groups of these lengths
    assert fmr_labelled and scores_labelled and positives_labelled
    colours = [line.get_color() for line in figures[-1].axes[0].get_lines()[:n_groups]]
    assert len({tuple(matplotlib.colors.to_rgba(colour)) for colour in colours}) == n_groups
    width = drawing.pair_accuracy(pairs).get_size_inches()[0]
    assert width >= drawing.PANEL_WIDTH and (n_groups < 8 or width > drawing.PANEL_WIDTH)


def test_heat_map_cells_too_small_for_their_values_stay_blank(rng):
    names = [f"group-{k}" for k in range(40)]
    result = _file(dict(identification_result(rng), group_names=names), "a")
    figure, labelled = drawing.false_positive_heatmaps(
        [(result, rng.integers(1000, 100000, (40, 40)).tolist())])
    assert not labelled and not figure.axes[0].texts
    _readable(figure)


def test_impostor_means_far_from_0_get_a_scale_of_their_own(rng):
    """Every impostor mean about 0.99 (a degenerate model): a scale centred on 0 would paint all
    cells one colour; the scale spans the values instead."""
    data = instance_result(rng)
    data["score_distributions"] = score_distributions_builder(
        rng, np.asarray(data["identities"]["n_images"]), impostor_centre=0.99)
    result = _file(data, "a")
    matrix = np.asarray(data["score_distributions"]["impostor_matrix"]["mean"])
    image = drawing.score_distributions([(result, score_distributions(result))])[0] \
        .axes[0].get_images()[0]
    assert image.get_clim() == pytest.approx((matrix.min(), matrix.max()))
    colours = image.to_rgba(matrix)
    assert np.abs(colours[matrix.argmin() // 4, matrix.argmin() % 4]
                  - colours[matrix.argmax() // 4, matrix.argmax() % 4]).max() > 0.5
