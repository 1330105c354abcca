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
