"""Bad input to the API: a MfftoolsError saying what is wrong, the commands' own message where
the command meets the same input."""
import numpy as np
import pytest
import torch
from click.testing import CliRunner

import mfftools
from mfftools.cli import main

from .conftest import GROUPS


def refused(call, match):
    with pytest.raises(mfftools.MfftoolsError, match=match) as error:
        call()
    return str(error.value)


def command_error(*args):
    """The one-line error a command prints for bad input."""
    result = CliRunner().invoke(main, [str(arg) for arg in args])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    (line,) = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    return line.removeprefix("Error: ")


def test_the_commands_messages_for_the_same_bad_input(tmp_path, images_file, pairs_file, ijb):
    def same(args, call, match):
        assert refused(call, match) == command_error(*args)

    same(["inst-eval", images_file, "--fpr", "1e-9"],
         lambda: mfftools.instance(images_file, fpr=1e-9), "cannot be resolved")
    same(["inst-eval", images_file, "--reference-group", "Martian"],
         lambda: mfftools.instance(images_file, reference_group="Martian"),
         "--reference-group 'Martian' is not one of the groups")
    same(["inst-eval", tmp_path / "missing.h5"],
         lambda: mfftools.instance(tmp_path / "missing.h5"), "embeddings file not found")
    same(["inst-eval", pairs_file], lambda: mfftools.instance(pairs_file),
         "needs a 'images'-layout embeddings file")
    same(["ident-eval", pairs_file], lambda: mfftools.identification(pairs_file),
         "needs a 'images'-layout embeddings file")
    same(["ident-eval", pairs_file], lambda: mfftools.identification(mfftools.load(pairs_file)),
         "needs a 'images'-layout embeddings file")
    same(["ident-eval", images_file, "--fpir", "1e-9"],
         lambda: mfftools.identification(images_file, fpir=1e-9), "FPIR")
    same(["ident-eval", images_file, "--match-by", "name"],
         lambda: mfftools.identification(images_file, match_by="name"),
         "--match-by applies to --gallery")
    same(["pair-eval", images_file], lambda: mfftools.pairs(images_file),
         "an images-layout file without a pair list")
    same(["pair-eval", pairs_file, "--groups", "Martian"],
         lambda: mfftools.pairs(pairs_file, only_groups=["Martian"]), "no group Martian")
    same(["template-eval", ijb["file"]], lambda: mfftools.template(ijb["file"]),
         "nothing to evaluate")
    same(["template-eval", ijb["file"], "--gallery", ijb["folder"] / "g1.csv"],
         lambda: mfftools.template(ijb["file"], galleries=ijb["folder"] / "g1.csv"),
         "1:N needs both --gallery")
    same(["calibrate", "cross-val", pairs_file, "--method", "gst", "--folds", "500"],
         lambda: mfftools.cross_validate(pairs_file, methods="gst", n_folds=500),
         "fewer than the 500 folds")


def test_instance_refuses_bad_arrays(faces):
    rows, identity, group = faces
    bad = rows.copy()
    bad[7, 2] = np.inf
    refused(lambda: mfftools.instance(bad, identity, group, fpr=1e-2),
            "^embeddings row 7 contains NaN or Inf$")
    bad = torch.from_numpy(rows.copy())
    bad[9] = 0
    bad[12] = np.nan
    refused(lambda: mfftools.instance(bad, identity, group, fpr=1e-2),
            "^embeddings row 12 contains NaN or Inf$")
    refused(lambda: mfftools.instance(rows[:, 0], identity, group),
            r"must be a 2-d array \[N, D\]")
    refused(lambda: mfftools.instance(rows.astype(np.int64), identity, group),
            "must hold floating-point numbers, found int64")
    refused(lambda: mfftools.instance(rows, identity[:-1], group),
            rf"identities must hold one value per embedding \({len(rows)}\)")
    refused(lambda: mfftools.instance(rows, identity, group[:3]),
            "groups must hold one value per embedding")
    refused(lambda: mfftools.instance(rows, np.zeros(len(rows), int), group),
            "<embeddings array>: fewer than two identities; nothing to compare")
    refused(lambda: mfftools.instance(rows, identity), "cannot be resolved")
    refused(lambda: mfftools.instance(rows, identity, group, fpr=1e-2, method="best"),
            "unknown threshold method 'best'")
    refused(lambda: mfftools.instance(rows, identity, group, fpr="often"),
            "fpr must be a number or a sequence of numbers")
    refused(lambda: mfftools.instance(rows, identity, group, group_names=["A", "B"]),
            "groups row .* is 2, outside the 2 group names")
    names = np.array(GROUPS)[group]
    refused(lambda: mfftools.instance(rows, identity, names, group_names=["African", "Asian"]),
            "groups 'Caucasian' is not in group_names")
    refused(lambda: mfftools.instance(rows), "an array of embeddings needs each row's identity")


def test_a_file_holds_its_own_labels(images_file, faces):
    _, identity, group = faces
    refused(lambda: mfftools.instance(images_file, identity),
            "an embeddings file holds its own labels; identities go with arrays")
    refused(lambda: mfftools.identification(images_file, None, group),
            "holds its own labels; groups go with arrays")
    refused(lambda: mfftools.pairs(images_file, issame=[True]),
            "holds its own pairs; issame go with arrays")
    refused(lambda: mfftools.template(images_file, media=[1]),
            "holds its own templates, media and detector scores; media go with arrays")


def test_pairs_refuse_bad_arrays(pairs):
    first, second, issame, names = pairs
    refused(lambda: mfftools.pairs(first, second[:-1], issame, names),
            "embeddings_a and embeddings_b must have the same shape")
    refused(lambda: mfftools.pairs(first, second, issame[:5], names),
            "issame must hold one value per pair")
    refused(lambda: mfftools.pairs(first, second, np.full(len(issame), 0.5), names),
            "issame must hold True/False")
    refused(lambda: mfftools.pairs(first, second), "give embeddings_a, embeddings_b")
    bad = second.copy()
    bad[3] = 0
    refused(lambda: mfftools.pairs(first, bad, issame, names), "^embeddings_b row 3 is all zeros$")
    refused(lambda: mfftools.pairs(first, second, issame, names, folds=-np.ones(len(first), int)),
            "folds must hold each pair's fold index")
    refused(lambda: mfftools.pairs(first[:8], second[:8], issame[:8], names[:8]),
            "pairs; the 10-fold protocol needs at least 10")
    refused(lambda: mfftools.pairs(first, second, issame, names, grid="finest"),
            "unknown grid 'finest'")


def test_identification_refuses_bad_input(faces):
    rows, identity, group = faces
    refused(lambda: mfftools.identification(rows, identity, group, probe_groups=group),
            "probe_identities and probe_groups go with probes")
    refused(lambda: mfftools.identification(rows, identity, group, probes=rows[:, :8],
                                            probe_identities=identity, probe_groups=group),
            "must come from the same model")
    refused(lambda: mfftools.identification(rows, identity, group, probes=rows,
                                            probe_identities=identity, probe_groups=group,
                                            gallery_images=2),
            "--gallery-images applies to one file split into a gallery")
    refused(lambda: mfftools.identification(rows, identity, group, rank_ties="random"),
            "unknown --rank-ties 'random'")
    refused(lambda: mfftools.identification(rows, identity, group, probes=rows,
                                            probe_identities=identity + 1_000_000,
                                            probe_groups=group, fpir=0.1),
            "no mated searches")


def test_template_refuses_bad_input(ijb):
    folder = ijb["folder"]
    refused(lambda: mfftools.template(ijb["rows"], ijb["template"], pairs=folder / "pairs.txt"),
            "give each image's template and media ids")
    refused(lambda: mfftools.template(ijb["rows"], ijb["template"], ijb["media"],
                                      pairs=folder / "pairs.txt"),
            "no 'detector_score' dataset to weigh images by; give --detector-score ignore")
    refused(lambda: mfftools.template(ijb["rows"], ijb["template"], ijb["media"],
                                      ijb["score"][:3], pairs=folder / "pairs.txt"),
            "detector_score must hold one value per embedding")
    refused(lambda: mfftools.template(ijb["file"], pairs=folder / "pairs.txt", norm="cube"),
            "--norm must be one of keep, unit")


def test_calibration_refuses_bad_input(pairs, images_file, tmp_path):
    first, second, issame, names = pairs
    refused(lambda: mfftools.calibrate(first, second, issame, names, method="magic"),
            "unknown method magic")
    refused(lambda: mfftools.calibrate(first, second, issame, names, method="faircal",
                                       clusters=0),
            "--clusters must be an integer of at least 1, got 0")
    refused(lambda: mfftools.calibrate(first, second, issame, names, method="gst",
                                       calibrator="platt"),
            "--calibrator must be one of beta, isotonic, binning")
    refused(lambda: mfftools.calibrate(first, second, issame, names, method="gst", fit_fpr=2),
            "--fit-fpr must be between 0 and 1")
    refused(lambda: mfftools.cross_validate(first, second, issame, names, methods=[]),
            "give at least one --method")
    refused(lambda: mfftools.cross_validate(first, second, issame, names, methods="gst",
                                            n_folds=1),
            "--folds must be an integer of at least 2")
    refused(lambda: mfftools.instance(images_file, calibration=42),
            "calibration must be a Calibration")
    refused(lambda: mfftools.Calibration.load(tmp_path / "none.npz"), "no such calibration file")
    fitted = mfftools.calibrate(first, second, issame, names, method="gst")
    refused(lambda: fitted.apply(first[:, :8], second[:, :8], issame, names),
            "embeddings of dimension 8; the calibration was fitted on dimension 16")


def test_load_refuses_what_is_not_an_embeddings_file(tmp_path):
    (tmp_path / "x.h5").write_text("not hdf5")
    refused(lambda: mfftools.load(tmp_path / "x.h5"), "not an HDF5 file")
    refused(lambda: mfftools.load(tmp_path / "y.h5"), "embeddings file not found")
