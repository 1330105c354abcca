"""`mfftools extract` through the command line, with a real IResNet checkpoint."""
import hashlib
import io
import zipfile

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from mfftools.cli import main
from mfftools.data.images import decode_image
from mfftools.embeddings import open_embeddings
from mfftools.models.iresnet import iresnet


def _png(seed):
    pixels = np.random.default_rng(seed).integers(0, 256, (112, 112, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _rfw_zip(path, bad=()):
    """Groups X and Y, one person each, with one and two images; images in `bad` are corrupt."""
    members = {}
    for group, count in (("X", 1), ("Y", 2)):
        members[f"data/txts/{group}/{group}_people.txt"] = f"m.{group}\t2\n"
        for number in range(1, count + 1):
            members[f"data/data/{group}/m.{group}/m.{group}_{number:04d}.jpg"] = _png(len(members))
    with zipfile.ZipFile(path, "w") as archive:
        for index, (name, data) in enumerate(members.items()):
            archive.writestr(name, b"garbage" if name.endswith(tuple(bad)) else data)
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = iresnet("r18")
    path = tmp_path_factory.mktemp("ckpt") / "backbone.pth"
    torch.save(model.state_dict(), path)
    return path, model.eval()


def _run(*args):
    return CliRunner().invoke(main, ["extract", *map(str, args)], catch_exceptions=False)


def _printed(result):
    """The lines the command printed, without the log lines (INFO ..., WARNING ...)."""
    return [line for line in result.output.splitlines()
            if not line.startswith(("DEBUG ", "INFO ", "WARNING "))]


def test_extract_writes_and_reports(tmp_path, checkpoint):
    path, model = checkpoint
    archive = _rfw_zip(tmp_path / "val.zip")
    out = tmp_path / "emb.h5"
    result = _run(archive, "--model", path, "--out", out, "--batch-size", 2, "--workers", 0,
                  "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert f"wrote 3 embeddings of dim 512 (images layout, groups X, Y) to {out}" in result.output
    assert "model iresnet-r18" in result.output and "flip on" in result.output
    written = open_embeddings(out, layout="images")
    assert written.attrs["checkpoint_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    rows = written.read()
    assert np.isfinite(rows).all() and not np.allclose(rows[1], rows[2])
    with zipfile.ZipFile(archive) as opened:  # the last row (in the last, smaller batch) by hand
        image = decode_image(opened.read(written.image_paths[2]), "last")[None]
    with torch.no_grad():
        expected = model(torch.cat([image, torch.flip(image, dims=[3])])).sum(dim=0)
    np.testing.assert_allclose(rows[2], expected.numpy(), rtol=1e-4, atol=1e-3)

    again = _run(archive, "--model", path, "--out", out, "--batch-size", 2, "--workers", 0,
                 "--device", "cpu", "--resume")
    assert again.exit_code == 0 and "is already complete: 3 embeddings" in again.output


def test_skip_bad_images_lists_them(tmp_path, checkpoint):
    archive = _rfw_zip(tmp_path / "val.zip", bad=("m.Y_0002.jpg",))
    out = tmp_path / "emb.h5"
    result = _run(archive, "--model", checkpoint[0], "--out", out, "--workers", 0,
                  "--device", "cpu", "--no-flip", "--skip-bad-images", "--arch", "r18")
    assert result.exit_code == 0, result.output
    assert "wrote 2 embeddings" in result.output and "flip off" in result.output
    assert "skipped 1 bad image:\n  data/data/Y/m.Y/m.Y_0002.jpg" in result.output


def test_user_errors_are_one_line_messages(tmp_path, checkpoint):
    archive = _rfw_zip(tmp_path / "val.zip", bad=("m.X_0001.jpg",))
    out = tmp_path / "emb.h5"
    bad_image = _run(archive, "--model", checkpoint[0], "--out", out, "--workers", 0,
                     "--device", "cpu")
    assert bad_image.exit_code == 1
    assert "Error: cannot decode image" in bad_image.output and "m.X_0001.jpg" in bad_image.output
    assert "Traceback" not in bad_image.output
    wrong_arch = _run(archive, "--model", checkpoint[0], "--out", out, "--arch", "r50",
                      "--device", "cpu")
    assert wrong_arch.exit_code == 1 and "--arch says r50" in wrong_arch.output
    no_model = _run(archive, "--out", out)
    assert no_model.exit_code == 2 and "--model" in no_model.output


def test_arch_choices_are_the_model_family():
    from mfftools.cli.options import ARCHS
    from mfftools.models.iresnet import ARCHS as MODEL_ARCHS

    assert set(ARCHS) == set(MODEL_ARCHS)


def test_each_run_says_one_true_thing(tmp_path, checkpoint):
    archive = _rfw_zip(tmp_path / "val.zip")
    out = tmp_path / "emb.h5"
    options = ("--model", checkpoint[0], "--out", out, "--workers", 0, "--device", "cpu")
    first = _run(archive, *options)
    assert first.exit_code == 0, first.output
    assert first.output.count("wrote 3 embeddings") == 1
    again = _run(archive, *options, "--resume")
    assert again.exit_code == 0, again.output
    assert _printed(again)[0] == (
        f"{out} is already complete: 3 embeddings of dim 512 (images layout, groups X, Y); "
        "nothing to resume"
    )
    assert "wrote" not in again.output


class _InterruptedNet(torch.nn.Module):
    """Wraps a model; the forward pass after `batches` image batches raises KeyboardInterrupt,
    as Ctrl-C does (forward passes of a single image, such as a blank probe, do not count)."""

    def __init__(self, model, batches):
        super().__init__()
        self.model, self.batches = model, batches

    def forward(self, images):
        if len(images) > 1:
            if self.batches == 0:
                raise KeyboardInterrupt
            self.batches -= 1
        return self.model(images)


def test_ctrl_c_says_how_to_continue(tmp_path, checkpoint, monkeypatch):
    from mfftools.models import loading

    archive = _rfw_zip(tmp_path / "val.zip")
    out = tmp_path / "emb.h5"
    real_load = loading.load_model
    monkeypatch.setattr(loading, "load_model", lambda path, arch=None: (
        (_InterruptedNet(real_load(path, arch)[0], batches=1), real_load(path, arch)[1])))
    options = ("--model", checkpoint[0], "--out", out, "--workers", 0, "--device", "cpu",
               "--batch-size", 1)
    interrupted = _run(archive, *options)
    assert interrupted.exit_code == 130
    assert _printed(interrupted) == [
        f"interrupted: {out}.partial holds 1 of 3 embeddings; run the same command with "
        f"--resume to continue where it stopped ({out} is written when they are all in)"
    ]
    assert not out.exists()
    monkeypatch.setattr(loading, "load_model", real_load)
    resumed = _run(archive, *options, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert _printed(resumed)[0] == (
        f"resumed after 1 rows: wrote 2 more, 3 embeddings of dim 512 (images layout, groups X, Y) "
        f"in {out}"
    )


def test_mean_and_std_given_on_the_0_255_scale(tmp_path, checkpoint):
    archive = _rfw_zip(tmp_path / "val.zip")
    common = ("--model", checkpoint[0], "--workers", 0, "--device", "cpu", "--batch-size", 3)
    default = _run(archive, *common, "--out", tmp_path / "a.h5")
    scaled = _run(archive, *common, "--out", tmp_path / "b.h5", "--input-mean", "127.5",
                  "--input-std", "127.5")
    assert default.exit_code == 0 and scaled.exit_code == 0, scaled.output
    assert ("mean 0.5 std 0.5 on [0, 1] pixels (given as 127.5 and 127.5 on 0-255)"
            in scaled.output)
    a, b = open_embeddings(tmp_path / "a.h5"), open_embeddings(tmp_path / "b.h5")
    np.testing.assert_array_equal(a.read(), b.read())
    np.testing.assert_array_equal(b.attrs["input_mean"], [0.5] * 3)
    assert b.attrs["input_given_scale"] == "0-255"
