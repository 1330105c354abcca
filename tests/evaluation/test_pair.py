"""The pair protocol against a textbook per-threshold loop (insightface's `calculate_roc`)."""
import json
import math
from fractions import Fraction

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from mfftools.embeddings import open_embeddings
from mfftools.errors import MfftoolsError
from mfftools.evaluation import pair, threshold as search
from embedding_files import write_images_file, write_pairs_file

GRID = np.arange(0, 10, 0.001)
INSIGHTFACE_GRID = np.arange(0, 4, 0.01)  # insightface's verification.py
TAR_GRID = np.arange(0, 4, 0.001)


def reference_folds(n_pairs, n_folds=10, fold=None):
    """scikit-learn KFold(n_folds, shuffle=False): (train indices, test indices) per fold; or,
    given each pair's fold label, one fold per label in order of first appearance."""
    indices = np.arange(n_pairs)
    if fold is not None:
        for label in dict.fromkeys(fold.tolist()):
            yield indices[fold != label], indices[fold == label]
        return
    sizes = [n_pairs // n_folds + (1 if fold < n_pairs % n_folds else 0) for fold in range(n_folds)]
    start = 0
    for size in sizes:
        test = indices[start : start + size]
        train = np.concatenate([indices[:start], indices[start + size :]])
        yield train, test
        start += size


def reference_accuracy(threshold, dist, issame):
    predict_same = dist < threshold
    return np.count_nonzero(predict_same == issame) / dist.size


def reference_verification(dist, issame, fold=None, grid=GRID):
    """The per-threshold loop over the full grid (insightface's `calculate_roc` restated): fold
    accuracies and chosen thresholds."""
    accuracies, thresholds = [], []
    for train, test in reference_folds(len(dist), fold=fold):
        train_accuracy = np.zeros(len(grid))
        for index, threshold in enumerate(grid):
            train_accuracy[index] = reference_accuracy(threshold, dist[train], issame[train])
        best = np.argmax(train_accuracy)
        accuracies.append(reference_accuracy(grid[best], dist[test], issame[test]))
        thresholds.append(grid[best])
    return np.array(accuracies), np.array(thresholds)


def reference_tar_at_far(dist, issame, far_target=1e-3, fold=None):
    """Per-threshold FAR loop on the training part; first crossing of the linear interpolant.

    Folds without genuine test pairs or impostor training pairs are left out.
    """
    tars = []
    for train, test in reference_folds(len(dist), fold=fold):
        train_dist, train_same = dist[train], issame[train]
        if not issame[test].any() or train_same.all():
            continue
        far = np.array(
            [np.sum((train_dist < t) & ~train_same) / np.sum(~train_same) for t in TAR_GRID]
        )
        threshold = 0.0
        for index in range(1, len(TAR_GRID)):
            if far[index] >= far_target:
                lower, upper = index - 1, index
                threshold = TAR_GRID[lower] + (far_target - far[lower]) * (
                    TAR_GRID[upper] - TAR_GRID[lower]
                ) / (far[upper] - far[lower])
                break
        test_dist, test_same = dist[test], issame[test]
        tars.append(np.sum((test_dist < threshold) & test_same) / np.sum(test_same))
    return float(np.mean(tars))


def reference_distances(first, second):
    """Normalise each row by its Euclidean norm and sum the squared differences, in float64."""
    first = first.astype(np.float64)
    second = second.astype(np.float64)
    first = first / np.linalg.norm(first, axis=1, keepdims=True)
    second = second / np.linalg.norm(second, axis=1, keepdims=True)
    return ((first - second) ** 2).sum(axis=1)


def tied_distances(rng, n_pairs):
    """Distances exactly on grid values, one float step beside them, and typical values."""
    on_grid = GRID[rng.integers(300, 2500, n_pairs)]
    beside = np.nextafter(on_grid, rng.choice([-np.inf, np.inf], n_pairs))
    smooth = rng.uniform(0.2, 2.6, n_pairs)
    kind = rng.integers(0, 3, n_pairs)
    dist = np.choose(kind, [on_grid, beside, smooth])
    dist[:3] = [0.5, 1.234, 0.5]  # the float64 literals equal the grid's values
    return dist


@pytest.mark.parametrize("n_pairs", [10, 57, 123])
def test_accuracy_matches_loop_on_random_pairs(rng, n_pairs):
    issame = rng.random(n_pairs) < 0.5
    dist = np.where(issame, rng.normal(0.9, 0.3, n_pairs), rng.normal(1.5, 0.3, n_pairs))
    dist = np.clip(dist, 0, 4)
    accuracies, thresholds = pair.verification_accuracy(dist, issame)
    expected_accuracies, expected_thresholds = reference_verification(dist, issame)
    assert_array_equal(accuracies, expected_accuracies)
    assert_array_equal(thresholds, expected_thresholds)


@pytest.mark.parametrize("n_pairs", [61, 200])
def test_accuracy_matches_loop_with_ties_on_grid_values(rng, n_pairs):
    dist = tied_distances(rng, n_pairs)
    issame = dist + rng.normal(0, 0.4, n_pairs) < 1.3
    accuracies, thresholds = pair.verification_accuracy(dist, issame)
    expected_accuracies, expected_thresholds = reference_verification(dist, issame)
    assert_array_equal(accuracies, expected_accuracies)
    assert_array_equal(thresholds, expected_thresholds)


@pytest.mark.parametrize("data", ["random", "ties"])
def test_insightface_grid_matches_its_calculate_roc(rng, data):
    """On insightface's grid, values on grid points and one float step beside them included."""
    n_pairs = 300
    if data == "ties":
        on_grid = INSIGHTFACE_GRID[rng.integers(30, 250, n_pairs)]
        beside = np.nextafter(on_grid, rng.choice([-np.inf, np.inf], n_pairs))
        dist = np.where(rng.random(n_pairs) < 0.5, on_grid, beside)
    else:
        dist = rng.uniform(0.2, 2.6, n_pairs)
    issame = dist + rng.normal(0, 0.4, n_pairs) < 1.3
    accuracies, thresholds = pair.verification_accuracy(dist, issame, pair.GRIDS["insightface"])
    expected_accuracies, expected_thresholds = reference_verification(dist, issame,
                                                                      grid=INSIGHTFACE_GRID)
    assert_array_equal(accuracies, expected_accuracies)
    assert_array_equal(thresholds, expected_thresholds)


def test_the_grid_follows_the_set_name():
    assert pair.grid_for("lfw") == pair.grid_for("AgeDB_30") == "insightface"
    assert pair.grid_for("African") == pair.grid_for("Asian-Female") == "mixfairface"
    assert pair.grid_for("lfw", "mixfairface") == "mixfairface"
    with pytest.raises(MfftoolsError, match="unknown grid 'coarse'"):
        pair.grid_for("lfw", "coarse")


def test_det_points_are_exact_thresholds_at_the_fmr_levels(rng):
    issame = rng.random(3000) < 0.5
    dist = np.where(issame, rng.normal(0.9, 0.3, 3000), rng.normal(1.6, 0.3, 3000))
    result = pair.verify_group(dist, issame, "G")
    det, impostor, genuine = result.det, dist[~issame], dist[issame]
    assert det["threshold"] == sorted(det["threshold"])  # distances: FMR rises with them
    for threshold, fmr, fnmr in zip(det["threshold"], det["fmr"], det["fnmr"]):
        assert fmr == np.mean(impostor < threshold)
        assert fnmr == 1 - np.mean(genuine < threshold)
    # every level the impostors resolve has a point at its exact threshold: the largest t with
    # FMR(t) <= level, t one of the impostor distances
    for level in search.DET_LEVELS:
        allowed = math.floor(Fraction(level) * len(impostor))
        if allowed < 1:
            continue
        exact = np.sort(impostor)[allowed]
        assert exact in det["threshold"]
    assert min(det["fmr"]) >= 1 / len(impostor)


def test_first_best_threshold_on_a_plateau():
    # Genuine below 0.5, impostors at or above 1.0: every threshold in (0.5, 1.0] is perfect;
    # a genuine distance exactly 0.5 is accepted only from the next grid value on.
    issame = np.array([True, False] * 10)
    dist = np.where(issame, 0.5, 1.0)
    accuracies, thresholds = pair.verification_accuracy(dist, issame)
    assert_array_equal(accuracies, np.ones(10))
    assert_array_equal(thresholds, np.full(10, GRID[501]))


def test_kfold_bounds_follow_scikit_learn():
    assert pair.kfold_bounds(23) == [
        (0, 3), (3, 6), (6, 9), (9, 11), (11, 13), (13, 15), (15, 17), (17, 19), (19, 21), (21, 23)
    ]
    for n_pairs in (10, 57, 6000):
        expected = [(test[0], test[-1] + 1) for _, test in reference_folds(n_pairs)]
        assert pair.kfold_bounds(n_pairs) == expected


@pytest.mark.parametrize("n_pairs", [57, 300])
def test_tar_at_far_matches_loop(rng, n_pairs):
    issame = rng.random(n_pairs) < 0.5
    dist = np.where(issame, rng.normal(0.9, 0.35, n_pairs), rng.normal(1.6, 0.3, n_pairs))
    result = pair.tar_at_far(np.clip(dist, 0, 4), issame)
    assert result.folds == 10
    assert 0 <= result.far <= 1
    assert result.tar == pytest.approx(reference_tar_at_far(np.clip(dist, 0, 4), issame), abs=0)


def test_tar_at_far_with_repeated_far_values_and_ties(rng):
    # Few impostors: the training FAR jumps from 0 to far above 1e-3 and then repeats for long
    # runs of thresholds (scipy's interp1d fails there); distances sit on grid values.
    dist = tied_distances(rng, 150)
    issame = dist < 1.2
    assert pair.tar_at_far(dist, issame).tar == reference_tar_at_far(dist, issame)


def test_tar_at_far_equals_plain_interpolation_where_far_is_strictly_increasing():
    # One impostor per grid step: FAR rises strictly, so interpolation is unambiguous.
    impostor = TAR_GRID[1000:3000] - 0.0005
    genuine = np.linspace(0.0, 1.3, 500)
    dist = np.concatenate([genuine, impostor])
    issame = np.concatenate([np.ones(len(genuine), bool), np.zeros(len(impostor), bool)])
    order = np.random.default_rng(1).permutation(len(dist))
    dist, issame = dist[order], issame[order]
    tar = pair.tar_at_far(dist, issame).tar
    expected = []
    for train, test in reference_folds(len(dist)):
        far = np.array([np.mean(dist[train][~issame[train]] < t) for t in TAR_GRID])
        keep = np.concatenate([[True], np.diff(far) > 0])
        threshold = np.interp(1e-3, far[keep], TAR_GRID[keep])
        expected.append(np.mean(dist[test][issame[test]] < threshold))
    assert tar == pytest.approx(np.mean(expected), abs=1e-12)


def test_pair_distances_match_reference(rng):
    first = rng.normal(size=(40, 16)).astype(np.float32)
    second = rng.normal(size=(40, 16)).astype(np.float32)
    np.testing.assert_allclose(
        pair.pair_distances(first, second), reference_distances(first, second), rtol=1e-13
    )
    assert pair.pair_distances(first, first * 3).max() < 1e-14


def test_roc_at_far_levels_is_tar_at_the_largest_admissible_threshold(rng):
    issame = rng.random(400) < 0.5
    dist = np.where(issame, rng.normal(1.0, 0.3, 400), rng.normal(1.6, 0.3, 400))
    levels = np.array([0.0, 0.001, 0.01, 0.1, 0.5, 1.0])
    far, tar = pair.roc_at_far_levels(dist, issame, levels)
    assert_array_equal(far, levels[2:])  # ~200 impostor pairs do not resolve 0 or 0.001
    for level, found in zip(far, tar):
        best = 0.0
        for threshold in GRID[::7]:
            if np.mean(dist[~issame] < threshold) <= level:
                best = max(best, np.mean(dist[issame] < threshold))
        assert found >= best
        admissible = [t for t in GRID if np.mean(dist[~issame] < t) <= level]
        assert found == np.mean(dist[issame] < max(admissible))


def make_pairs_file(tmp_path, rng, group_sizes, dim=8, harder=None, dtype=np.float32):
    """Pairs of noisy copies (genuine) or independent vectors (impostors), groups interleaved."""
    pair_group = np.concatenate([np.full(size, g) for g, size in enumerate(group_sizes)])
    pair_group = pair_group[rng.permutation(len(pair_group))]
    n_pairs = len(pair_group)
    issame = rng.random(n_pairs) < 0.5
    first = rng.normal(size=(n_pairs, dim))
    noise = np.where(pair_group == harder, 1.2, 0.6)[:, None]
    genuine = first + noise * rng.normal(size=(n_pairs, dim))
    second = np.where(issame[:, None], genuine, rng.normal(size=(n_pairs, dim)))
    rows = np.empty((2 * n_pairs, dim), dtype=dtype)
    rows[0::2], rows[1::2] = first, second
    names = [f"G{g}" for g in range(len(group_sizes))]
    path = write_pairs_file(tmp_path / "pairs.h5", rows, issame, pair_group, names)
    return path, rows, issame, pair_group, names


def test_evaluate_pairs_matches_reference_per_group(tmp_path, rng):
    path, rows, issame, pair_group, names = make_pairs_file(tmp_path, rng, [53, 40, 31], harder=1)
    results = pair.evaluate_pairs(open_embeddings(path, layout="pairs"))
    dist = reference_distances(rows[0::2], rows[1::2])
    assert results["protocol"] == "pair"
    assert results["group_names"] == names
    percent = []
    for index, name in enumerate(names):
        mask = pair_group == index
        expected, thresholds = reference_verification(dist[mask], issame[mask])
        group = results["groups"][name]
        assert group["fold_accuracies"] == pytest.approx(list(expected), abs=1e-12)
        assert group["accuracy"] == pytest.approx(np.mean(expected), abs=1e-12)
        assert group["n_pairs"] == mask.sum()
        assert group["tar_at_far_1e-3"] == pytest.approx(
            reference_tar_at_far(dist[mask], issame[mask]), abs=1e-12
        )
        percent.append(np.mean(expected) * 100)
    assert results["mean_accuracy"] == pytest.approx(np.mean(percent), abs=1e-9)
    assert results["std"] == pytest.approx(np.std(percent, ddof=1), abs=1e-9)
    errors = [100 - value for value in percent]
    assert results["ser"] == pytest.approx(max(errors) / min(errors), rel=1e-12)
    assert results["groups"]["G1"]["accuracy"] < results["groups"]["G0"]["accuracy"]
    assert set(results["roc"]) == set(names)
    json.dumps(results, allow_nan=False)


def test_evaluate_pairs_reads_float16_and_skips_empty_groups(tmp_path, rng):
    path, rows, issame, pair_group, _ = make_pairs_file(tmp_path, rng, [30], dtype=np.float16)
    results = pair.evaluate_pair_distances(
        reference_distances(rows[0::2], rows[1::2]), issame, pair_group, ["G0", "Empty"]
    )
    assert results["group_names"] == ["G0"]
    assert results["std"] is None and results["ser"] is None  # one group: no spread, no ratio
    from_file = pair.evaluate_pairs(open_embeddings(path))
    assert from_file["groups"]["G0"]["accuracy"] == results["groups"]["G0"]["accuracy"]


def test_ser_is_none_when_a_group_is_perfect():
    issame = np.array([True, False] * 10)
    perfect = np.where(issame, 0.2, 1.8)
    imperfect = perfect.copy()
    imperfect[0] = 3.0
    results = pair.evaluate_pair_distances(
        np.concatenate([perfect, imperfect]),
        np.concatenate([issame, issame]),
        np.repeat([0, 1], 20),
        ["A", "B"],
    )
    assert results["groups"]["A"]["accuracy"] == 1.0
    assert results["groups"]["B"]["accuracy"] < 1.0
    assert results["ser"] is None
    json.dumps(results, allow_nan=False)


def test_too_few_pairs_or_one_kind_only_is_an_error():
    with pytest.raises(MfftoolsError, match="'Asian' has 9 pairs"):
        pair.verify_group(np.ones(9), np.arange(9) % 2 == 0, "Asian")
    with pytest.raises(MfftoolsError, match="'Asian' has pairs in 1 fold; choosing thresholds"):
        pair.verify_group(np.ones(20), np.arange(20) % 2 == 0, "Asian", fold=np.zeros(20, int))
    with pytest.raises(MfftoolsError, match="0 impostor"):
        pair.verify_group(np.ones(20), np.ones(20, bool), "Asian")


def test_images_layout_is_refused(tmp_path, rng):
    path = write_images_file(
        tmp_path / "images.h5",
        rng.normal(size=(6, 4)).astype(np.float32),
        np.array([0, 0, 1, 1, 2, 2]),
        np.zeros(6, np.int64),
        ["G0"],
    )
    with pytest.raises(MfftoolsError, match="'pairs'-layout"):
        pair.evaluate_pairs(open_embeddings(path))


@pytest.mark.parametrize("n_pairs", [80, 213])
def test_folds_from_the_file_match_the_loop(rng, n_pairs):
    labels = rng.choice([7, 3, 5], n_pairs)  # indices in order of first appearance, as stored
    first_seen = {label: index for index, label in enumerate(dict.fromkeys(labels.tolist()))}
    fold = np.array([first_seen[label] for label in labels.tolist()])
    issame = rng.random(n_pairs) < 0.5
    dist = np.clip(np.where(issame, rng.normal(0.9, 0.3, n_pairs), rng.normal(1.5, 0.3, n_pairs)),
                   0, 4)
    accuracies, thresholds = pair.verification_accuracy(dist, issame, fold=fold)
    expected_accuracies, expected_thresholds = reference_verification(dist, issame, fold=labels)
    assert_array_equal(accuracies, expected_accuracies)
    assert_array_equal(thresholds, expected_thresholds)
    result = pair.tar_at_far(dist, issame, fold=fold)
    assert result.folds == 3
    assert result.tar == pytest.approx(reference_tar_at_far(dist, issame, fold=labels), abs=1e-12)


def test_fold_members_are_contiguous_or_the_files():
    assert [m.tolist() for m in pair.fold_members(12)[:3]] == [[0, 1], [2, 3], [4]]
    members = pair.fold_members(6, fold=np.array([1, 0, 1, 2, 0, 2]))
    assert [m.tolist() for m in members] == [[1, 4], [0, 2], [3, 5]]


def test_tar_at_far_says_when_the_pairs_cannot_resolve_the_target(rng):
    # 100 impostor pairs: each training part holds 90, so its FAR moves in steps of 1/90.
    issame = np.tile([True, False], 100)
    dist = np.where(issame, rng.normal(0.9, 0.3, 200), rng.normal(1.5, 0.3, 200))
    small = pair.tar_at_far(dist, issame)
    assert small.far_resolution == pytest.approx(1 / 90)
    assert not small.resolvable
    # 2,000 impostor pairs: 1,800 in each training part, steps of 1/1800 <= 1e-3.
    issame = np.tile([True, False], 2000)
    dist = np.where(issame, rng.normal(0.9, 0.3, 4000), rng.normal(1.5, 0.3, 4000))
    large = pair.tar_at_far(dist, issame)
    assert large.far_resolution == pytest.approx(1 / 1800)
    assert large.resolvable


def test_roc_points_only_down_to_what_the_impostor_pairs_resolve(rng):
    issame = np.tile([True, False], 100)  # 100 impostor pairs: FAR steps of 0.01
    dist = np.where(issame, rng.normal(0.9, 0.3, 200), rng.normal(1.5, 0.3, 200))
    far, tar = pair.roc_at_far_levels(dist, issame)
    assert far.min() >= 0.01 and far.max() == 1.0
    assert_array_equal(far, pair.ROC_FAR_LEVELS[pair.ROC_FAR_LEVELS >= 0.01])
    assert len(tar) == len(far)


def test_results_flag_an_unresolvable_tar_and_keep_the_achieved_far(rng):
    issame = np.tile([True, False], 100)
    dist = np.where(issame, rng.normal(0.9, 0.3, 200), rng.normal(1.5, 0.3, 200))
    results = pair.evaluate_pair_distances(dist, issame, np.zeros(200, int), ["small"])
    group = results["groups"]["small"]
    assert group["tar_at_far_resolvable"] is False
    assert group["far_resolution"] == pytest.approx(1 / 90)
    assert group["far_at_tar_threshold"] == pair.tar_at_far(dist, issame).far
    assert min(results["roc"]["small"]["far"]) >= 0.01
    json.dumps(results, allow_nan=False)


def test_groups_select_and_a_missing_one_is_named(rng):
    issame = np.tile([True, False], 60)
    dist = np.where(issame, rng.normal(0.9, 0.3, 120), rng.normal(1.5, 0.3, 120))
    pair_group = np.repeat([0, 1, 2], 40)
    results = pair.evaluate_pair_distances(dist, issame, pair_group, ["A", "B", "C"],
                                           groups=["C", "A"])
    assert results["group_names"] == ["A", "C"]
    assert results["n_pairs"] == 80
    with pytest.raises(MfftoolsError) as error:
        pair.evaluate_pair_distances(dist, issame, pair_group, ["A", "B", "C"], groups=["A", "D"],
                                     where="p.h5")
    assert str(error.value) == "p.h5: no group D (it holds A, B, C)"
