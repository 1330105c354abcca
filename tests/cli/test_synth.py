from click.testing import CliRunner

from mfftools.cli import main
from mfftools.data.pair_bin import PairBinFolder
from mfftools.data.rfw import RfwInstanceZip

TINY = [
    "--identities-per-group",
    "3",
    "--max-images-per-identity",
    "3",
    "--pairs-per-group",
    "20",
    "--train-identities-per-group",
    "2",
    "--train-images-per-identity",
    "1",
    "--faces-identities-per-group",
    "2",
    "--faces-pairs-per-group",
    "10",
]


def test_synth_writes_the_three_formats_and_summarises(tmp_path):
    result = CliRunner().invoke(main, ["synth", str(tmp_path / "out"), "--seed", "7", *TINY])
    assert result.exit_code == 0, result.output
    dataset = RfwInstanceZip(tmp_path / "out" / "ValInstData.zip")
    assert f"ValInstData.zip: {len(dataset)} images of 12 identities in 4 groups" in result.output
    assert "1 person listed in two groups, 1 listed person without images" in result.output
    assert "African_test.bin (20 pairs)" in result.output
    assert "TrainingData.zip: 8 images of 8 identities" in result.output
    assert PairBinFolder(tmp_path / "out" / "rfw_bin").n_rows == 160
    assert (f"{tmp_path / 'out' / 'faces'}: 48 images of 16 identities in 8 subgroups "
            "(African-Female, ...); manifest faces.csv, 80 pairs in bfw_pairs.csv") in result.output


def test_rfw_scale_sizes_can_be_overridden(tmp_path):
    result = CliRunner().invoke(main, ["synth", str(tmp_path), "--rfw-scale", *TINY])
    assert result.exit_code == 0, result.output
    assert "African: 3 identities" in result.output


def test_bad_size_is_a_clean_error(tmp_path):
    result = CliRunner().invoke(main, ["synth", str(tmp_path), "--pairs-per-group", "30"])
    assert result.exit_code == 1
    assert "Error: pairs per group must be a positive multiple of 20" in result.output
    assert "Traceback" not in result.output


def test_bias_writes_embeddings_whose_first_subgroup_impostors_sit_higher(tmp_path):
    import numpy as np

    from mfftools.embeddings import open_embeddings
    from mfftools.pair_data import canonical_rows, pair_scores, read_pair_set

    result = CliRunner().invoke(main, ["synth", str(tmp_path / "out"), *TINY, "--bias", "0.2"])
    assert result.exit_code == 0, result.output
    path = tmp_path / "out" / "biased_pairs.h5"
    assert (f"{path}: biased embeddings of the 8 subgroups, African-Female 0.2 closer, with "
            "their pairs in 5 folds") in result.output
    pairs = read_pair_set(open_embeddings(path))
    assert pairs.n_pairs == 24000 and len(pairs.rows) == 2880
    np.testing.assert_array_equal(np.unique(pairs.fold), np.arange(5))
    scores = pair_scores(canonical_rows(pairs.rows), pairs.pair_index)
    impostor = ~pairs.issame
    means = [scores[impostor & (pairs.pair_group == g)].mean() for g in range(8)]
    # r = 0.25 against 0.05: about 0.2 / (1 + 1.2^2) = 0.08 higher; sampling noise (which
    # identities are paired) spreads the groups' means over about 0.02
    assert means[0] - max(means[1:]) > 0.05
    unbiased = CliRunner().invoke(main, ["synth", str(tmp_path / "zero"), *TINY, "--bias", "0"])
    pairs = read_pair_set(open_embeddings(tmp_path / "zero" / "biased_pairs.h5"))
    scores = pair_scores(canonical_rows(pairs.rows), pairs.pair_index)
    means = [scores[~pairs.issame & (pairs.pair_group == g)].mean() for g in range(8)]
    assert unbiased.exit_code == 0 and max(means) - min(means) < 0.03
    assert means[0] - max(means[1:]) < 0.02
    bad = CliRunner().invoke(main, ["synth", str(tmp_path / "bad"), *TINY, "--bias", "0.99"])
    assert bad.exit_code == 1 and "--bias must be in [0, 0.95), not 0.99" in bad.output
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())
