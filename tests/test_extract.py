"""extract: embeddings written as the model gives them, flip TTA, batching, bad images, resume."""
import io
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from extraction_sources import (
    Interrupting, NoiseImages, encoded, load_tiny_model_module, noise_source, write_bin_folder,
    write_pair_list_with_a_bad_image, write_rfw_zip)
from mfftools.data.images import DEFAULT_PREPROCESSING, Preprocessing, decode_image
from mfftools.embeddings import open_embeddings, partial_path
from mfftools.errors import MfftoolsError
from mfftools.extract import extract
from mfftools.sources import open_source
from mfftools.models.loading import weights_sha256


def _expected(model, images, flip=True):
    with torch.no_grad():
        out = model(images)
        if flip:
            out = out + model(torch.flip(images, dims=[3]))
    return out.numpy()


def _images(source):
    return torch.stack([source.images.decode(k, DEFAULT_PREPROCESSING) for k in range(len(source))])


def test_images_layout_round_trip_with_flip(tmp_path, tiny_model):
    source = noise_source(10)
    out = extract(source, out_path=tmp_path / "e.h5", model=tiny_model, batch_size=4, workers=0,
                  device="cpu", progress=False)
    emb = open_embeddings(out, layout="images")
    assert (emb.n_rows, emb.dim, emb.group_names) == (10, 16, ["A", "B"])
    np.testing.assert_allclose(emb.read(), _expected(tiny_model, _images(source)), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(emb.identity, np.arange(10) // 2)
    np.testing.assert_array_equal(emb.group, (np.arange(10) // 2) % 2)
    assert list(emb.image_paths) == [f"img{k}" for k in range(10)]
    assert emb.attrs["flip"] and not emb.attrs["amp"]
    assert emb.attrs["source"] == "noise"
    assert emb.attrs["model"] == "TinyNet"
    assert emb.attrs["checkpoint_sha256"] == weights_sha256(tiny_model)
    assert emb.attrs["n_skipped_images"] == 0
    assert "mfftools_version" in emb.attrs


def test_flip_is_the_sum_over_both_orientations_and_can_be_disabled(tmp_path, tiny_model):
    source = noise_source(6)
    images = _images(source)
    flipped = extract(source, out_path=tmp_path / "f.h5", model=tiny_model, batch_size=6,
                      workers=0, device="cpu", progress=False)
    plain = extract(source, out_path=tmp_path / "p.h5", model=tiny_model, batch_size=6,
                    workers=0, device="cpu", flip=False, progress=False)
    plain_emb = open_embeddings(plain).read()
    np.testing.assert_allclose(plain_emb, _expected(tiny_model, images, flip=False), rtol=1e-5, atol=1e-5)
    mirrored = _expected(tiny_model, torch.flip(images, dims=[3]), flip=False)
    np.testing.assert_allclose(open_embeddings(flipped).read(), plain_emb + mirrored, rtol=1e-5, atol=1e-5)
    assert not np.allclose(plain_emb, mirrored, atol=1e-3)  # the model is not flip-symmetric
    assert not open_embeddings(plain).attrs["flip"]


def test_batch_size_and_workers_do_not_change_embeddings(tmp_path, tiny_model):
    source = noise_source(11)
    runs = [
        extract(source, out_path=tmp_path / f"b{batch}_{workers}.h5", model=tiny_model,
                batch_size=batch, workers=workers, device="cpu", progress=False)
        for batch, workers in ((1, 0), (4, 2), (11, 0))
    ]
    reference = open_embeddings(runs[0]).read()
    for run in runs[1:]:
        np.testing.assert_allclose(open_embeddings(run).read(), reference, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(open_embeddings(run).identity, open_embeddings(runs[0]).identity)


def test_in_memory_model_keeps_its_mode(tmp_path, tiny_model):
    tiny_model.train()
    before = tiny_model.norm.running_mean.clone()
    extract(noise_source(4), out_path=tmp_path / "e.h5", model=tiny_model, batch_size=2,
            workers=0, device="cpu", progress=False)
    assert tiny_model.training
    assert torch.equal(tiny_model.norm.running_mean, before)  # ran in eval mode


def test_rfw_zip_end_to_end_with_workers(tmp_path, tiny_model):
    archive = write_rfw_zip(tmp_path / "val.zip")
    out = extract(archive, out_path=tmp_path / "e.h5", model=tiny_model, batch_size=4, workers=2,
                  device="cpu", progress=False)
    emb = open_embeddings(out, layout="images")
    assert emb.group_names == ["G0", "G1"]
    np.testing.assert_array_equal(emb.identity, np.repeat(np.arange(4), 3))
    np.testing.assert_array_equal(emb.group, np.repeat([0, 1], 6))
    with zipfile.ZipFile(archive) as opened:
        images = torch.stack([decode_image(opened.read(path), path) for path in emb.image_paths])
    np.testing.assert_allclose(emb.read(), _expected(tiny_model, images), rtol=1e-5, atol=1e-5)
    assert emb.attrs["source"] == str(archive.resolve())


def test_bin_folder_pairs_layout(tmp_path, tiny_model):
    folder = write_bin_folder(tmp_path / "bins")
    out = extract(folder, out_path=tmp_path / "p.h5", model=tiny_model, batch_size=5, workers=0,
                  device="cpu", progress=False)
    emb = open_embeddings(out, layout="pairs")
    assert emb.n_rows == 12 and emb.group_names == ["G0", "G1"]
    np.testing.assert_array_equal(emb.issame, [True, False, True] * 2)
    np.testing.assert_array_equal(emb.pair_group, [0, 0, 0, 1, 1, 1])
    images = torch.stack([decode_image(encoded(100 + row), str(row)) for row in range(12)])
    np.testing.assert_allclose(emb.read(), _expected(tiny_model, images), rtol=1e-5, atol=1e-5)
    assert emb.attrs["n_dropped_pairs"] == 0


def test_bad_image_is_an_error_naming_it(tmp_path, tiny_model):
    archive = write_rfw_zip(tmp_path / "val.zip", bad={4})
    with pytest.raises(MfftoolsError, match=r"cannot decode image .*m\.G01/m\.G01_0002\.jpg"):
        extract(archive, out_path=tmp_path / "e.h5", model=tiny_model, batch_size=4, workers=2,
                device="cpu", progress=False)
    with pytest.raises(MfftoolsError) as error:
        extract(noise_source(6, bad={3}), out_path=tmp_path / "n.h5", model=tiny_model,
                batch_size=4, workers=0, device="cpu", progress=False)
    assert str(error.value) == (
        "cannot decode image img3 (not an image file Pillow can read: damaged, empty, or another "
        "kind of file); add --skip-bad-images to leave out undecodable images; nothing was "
        "written yet")
    with pytest.raises(MfftoolsError) as error:
        extract(noise_source(6, bad={5}), out_path=tmp_path / "n.h5", model=tiny_model,
                batch_size=2, workers=0, device="cpu", progress=False)
    assert str(error.value).endswith(
        "add --skip-bad-images to leave out undecodable images; the rows written so far are in "
        f"{tmp_path / 'n.h5.partial'}: rerun with --resume to continue")
    assert "BytesIO" not in str(error.value)


class _KilledInWorker(NoiseImages):
    """A worker process that reads image 4 is killed, as the out-of-memory killer would, once
    the first rows are in the partial file."""

    def __init__(self, n, parent, partial):
        super().__init__(n)
        self.parent, self.partial = parent, partial

    def encoded(self, k):
        if k == 4 and os.getpid() != self.parent:
            deadline = time.monotonic() + 10
            while not self.partial.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.3)
            os.kill(os.getpid(), signal.SIGKILL)
        return super().encoded(k)


def test_a_killed_decoding_worker_is_one_line_with_the_resume_hint(tmp_path, tiny_model):
    source = noise_source(8)
    source.images = _KilledInWorker(8, os.getpid(), tmp_path / "e.h5.partial")
    with pytest.raises(MfftoolsError) as error:
        extract(source, out_path=tmp_path / "e.h5", model=tiny_model, batch_size=2, workers=1,
                device="cpu", progress=False)
    message = str(error.value)
    assert message.startswith("an image-decoding worker died (DataLoader worker (pid")
    assert "fewer --workers or a smaller --batch-size" in message and "\n" not in message
    assert message.endswith(f"{tmp_path / 'e.h5.partial'}: rerun with --resume to continue")


def test_skip_bad_images_in_the_images_layout(tmp_path, tiny_model, caplog):
    archive = write_rfw_zip(tmp_path / "val.zip", bad={0, 7})
    caplog.set_level(logging.WARNING, logger="mfftools.extract")
    out = extract(archive, out_path=tmp_path / "e.h5", model=tiny_model, batch_size=4, workers=0,
                  device="cpu", skip_bad_images=True, progress=False)
    emb = open_embeddings(out)
    kept = [k for k in range(12) if k not in (0, 7)]
    np.testing.assert_array_equal(emb.identity, np.repeat(np.arange(4), 3)[kept])
    names = ["data/data/G0/m.G00/m.G00_0001.jpg", "data/data/G1/m.G10/m.G10_0002.jpg"]
    assert emb.attrs["n_skipped_images"] == 2
    assert list(emb.attrs["skipped_images"]) == names
    assert names[0] not in list(emb.image_paths)
    skipped_logs = [record.getMessage() for record in caplog.records if "skipped" in record.getMessage()]
    assert any(names[1] in message for message in skipped_logs)
    with h5py.File(out) as handle:
        np.testing.assert_array_equal(handle["source_index"][()], kept)


def test_skip_bad_images_drops_whole_pairs(tmp_path, tiny_model):
    folder = write_bin_folder(tmp_path / "bins", bad={5, 6})  # pairs 2 (G0) and 3 (G1)
    out = extract(folder, out_path=tmp_path / "p.h5", model=tiny_model, batch_size=4, workers=0,
                  device="cpu", skip_bad_images=True, progress=False)
    emb = open_embeddings(out, layout="pairs")
    np.testing.assert_array_equal(emb.issame, [True, False, False, True])
    np.testing.assert_array_equal(emb.pair_group, [0, 0, 1, 1])
    kept_rows = [0, 1, 2, 3, 8, 9, 10, 11]
    images = torch.stack([decode_image(encoded(100 + row), str(row)) for row in kept_rows])
    np.testing.assert_allclose(emb.read(), _expected(tiny_model, images), rtol=1e-5, atol=1e-5)
    assert emb.attrs["n_skipped_images"] == 2 and emb.attrs["n_dropped_pairs"] == 2
    assert list(emb.attrs["skipped_images"]) == ["G0_test.bin image 5", "G1_test.bin image 0"]


def test_resume_after_an_interruption_gives_the_same_file(tmp_path, tiny_model):
    source = noise_source(13, bad={6})
    options = dict(batch_size=3, workers=0, device="cpu", skip_bad_images=True, progress=False)
    reference = open_embeddings(extract(source, out_path=tmp_path / "ref.h5", model=tiny_model, **options))
    out = tmp_path / "e.h5"
    # 13 reads to find the bad image, two batches of 3, then the interruption
    with pytest.raises(KeyboardInterrupt):
        extract(noise_source(13, bad={6}, interrupt_after=13 + 6), out_path=out, model=tiny_model, **options)
    assert not out.exists()  # only a whole file appears under the real name
    with pytest.raises(MfftoolsError, match="not written yet.*e.h5.partial holds the rows"):
        open_embeddings(out)
    assert open_embeddings(partial_path(out), allow_incomplete=True).n_rows == 6
    extract(source, out_path=out, model=tiny_model, resume=True, **options)
    _assert_same_file(open_embeddings(out), reference)
    # resuming a complete file is a no-op
    assert extract(source, out_path=out, model=tiny_model, resume=True, **options) == out
    _assert_same_file(open_embeddings(out), reference)


def test_resume_in_the_pairs_layout_mid_pair(tmp_path, tiny_model):
    folder = write_bin_folder(tmp_path / "bins", pairs_per_group=4)
    options = dict(batch_size=3, workers=0, device="cpu", progress=False)
    reference = open_embeddings(extract(folder, out_path=tmp_path / "ref.h5", model=tiny_model, **options))
    source = open_source(folder)
    source.images = Interrupting(source.images, reads=9)
    out = tmp_path / "e.h5"
    with pytest.raises(KeyboardInterrupt):
        extract(source, out_path=out, model=tiny_model, **options)
    with h5py.File(partial_path(out)) as handle:
        assert handle.attrs["rows_written"] == 9  # pair 4 is half written
    extract(folder, out_path=out, model=tiny_model, resume=True, **options)
    _assert_same_file(open_embeddings(out), reference)


def _assert_same_file(emb, reference):
    np.testing.assert_array_equal(emb.read(), reference.read())
    for column in ("identity", "group", "image_paths", "issame", "pair_group"):
        np.testing.assert_array_equal(getattr(emb, column), getattr(reference, column))
    with h5py.File(emb.path) as a, h5py.File(reference.path) as b:
        np.testing.assert_array_equal(a["source_index"][()], b["source_index"][()])
    differing = {key for key in set(emb.attrs) | set(reference.attrs)
                 if str(emb.attrs.get(key)) != str(reference.attrs.get(key))}
    assert differing <= {"created"}


def test_resume_refuses_other_options_or_weights(tmp_path, tiny_model):
    source = noise_source(6)
    out = tmp_path / "e.h5"
    options = dict(batch_size=2, workers=0, device="cpu", progress=False)
    with pytest.raises(KeyboardInterrupt):
        extract(noise_source(6, interrupt_after=4), out_path=out, model=tiny_model, **options)
    with pytest.raises(MfftoolsError, match=r"flip \(--no-flip\) is True in the file, False now; "
                       "drop --resume to start over"):
        extract(source, out_path=out, model=tiny_model, resume=True, flip=False, **options)
    with torch.no_grad():
        tiny_model.fc.bias[0] += 1
    with pytest.raises(MfftoolsError, match=r"the model.s weights \(sha256\) is .* in the file"):
        extract(source, out_path=out, model=tiny_model, resume=True, **options)


def test_resume_without_a_file_starts_fresh(tmp_path, tiny_model):
    out = extract(noise_source(4), out_path=tmp_path / "new.h5", model=tiny_model, batch_size=2,
                  workers=0, device="cpu", resume=True, progress=False)
    assert open_embeddings(out).n_rows == 4


def test_amp_on_cpu_is_ignored_with_a_warning(tmp_path, tiny_model, caplog):
    caplog.set_level(logging.WARNING, logger="mfftools.extract")
    out = extract(noise_source(4), out_path=tmp_path / "e.h5", model=tiny_model, batch_size=2,
                  workers=0, device="cpu", amp=True, progress=False)
    assert not open_embeddings(out).attrs["amp"]
    assert any("CUDA only" in record.getMessage() for record in caplog.records)


def test_unusable_sources(tmp_path, tiny_model):
    options = dict(out_path=tmp_path / "e.h5", model=tiny_model, device="cpu", progress=False)
    with pytest.raises(MfftoolsError, match="no such file or folder"):
        extract(tmp_path / "absent.zip", **options)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(MfftoolsError, match="SOURCE must be"):
        extract(text, **options)
    with pytest.raises(MfftoolsError, match="no images left"):
        extract(noise_source(3, bad={0, 1, 2}), skip_bad_images=True, workers=0, **options)


def test_synthetic_data_end_to_end(tmp_path, tiny_model):
    from mfftools.data.synthetic import synthesize

    summary = synthesize(tmp_path / "synth", identities_per_group=2, images_per_identity=1.5,
                         max_images_per_identity=2, pairs_per_group=20, train_identities_per_group=2,
                         train_images_per_identity=1)
    options = dict(model=tiny_model, batch_size=16, workers=2, device="cpu", progress=False)
    images = open_embeddings(extract(summary.instance_zip, out_path=tmp_path / "i.h5", **options))
    assert images.group_names == summary.group_names
    assert images.n_rows == sum(summary.instance_images.values())
    for index, name in enumerate(summary.group_names):
        assert (images.group == index).sum() == summary.instance_images[name]
        assert len(np.unique(images.identity[images.group == index])) == summary.instance_identities[name]
    pairs = open_embeddings(extract(summary.bin_folder, out_path=tmp_path / "p.h5", **options))
    assert pairs.n_rows == 2 * sum(summary.pairs.values())
    for index, name in enumerate(summary.group_names):
        assert (pairs.pair_group == index).sum() == summary.pairs[name]
    assert np.isfinite(pairs.read()).all() and np.isfinite(images.read()).all()


KILL_SCRIPT = '''
import logging, sys
from tiny_model import TinyNet
from mfftools.extract import extract

logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(message)s")
extract(sys.argv[1], out_path=sys.argv[2], model=TinyNet(delay=0.3), batch_size=4, workers=0,
        device="cpu", resume=True, progress=False)
'''


def test_resume_after_sigkill_of_a_real_run(tmp_path, caplog):
    module = load_tiny_model_module(tmp_path)
    script = tmp_path / "run_extract.py"
    script.write_text(textwrap.dedent(KILL_SCRIPT))
    archive = write_rfw_zip(tmp_path / "val.zip", people_per_group=3, images_per_person=4)
    out = tmp_path / "killed.h5"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path)] + sys.path))
    process = subprocess.Popen(
        [sys.executable, str(script), str(archive), str(out)],
        stderr=subprocess.PIPE, text=True, env=env,
    )
    options = dict(model=module.TinyNet(), batch_size=4, workers=0, device="cpu", progress=False)
    try:
        for line in process.stderr:
            if line.startswith("wrote rows 4-7"):
                # a second writer of the same file is refused, and leaves the first's alone
                with pytest.raises(MfftoolsError) as error:
                    extract(archive, out_path=out, **options)
                assert str(error.value) == (
                    f"{out} is being written by another mfftools process (pid {process.pid}); "
                    "wait for it to finish, or write to another file")
                process.send_signal(signal.SIGKILL)
                break
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not out.exists()
    partial = open_embeddings(partial_path(out), allow_incomplete=True)
    assert not partial.attrs["complete"] and 8 <= partial.n_rows < 24
    caplog.set_level(logging.INFO, logger="mfftools.embeddings")
    extract(archive, out_path=out, resume=True, **options)
    assert f"after {partial.n_rows} rows" in caplog.text
    reference = extract(archive, out_path=tmp_path / "ref.h5", **options)
    _assert_same_file(open_embeddings(out), open_embeddings(reference))


KILL_AT_RANDOM_SCRIPT = '''
import sys
from tiny_model import TinyNet
from mfftools.extract import extract

print("ready", flush=True)
extract(sys.argv[1], out_path=sys.argv[2], model=TinyNet(delay=0.01), batch_size=2, workers=0,
        device="cpu", resume=True, progress=False)
'''


def test_a_writer_killed_at_random_points_leaves_nothing_or_a_resumable_or_whole_file(tmp_path):
    module = load_tiny_model_module(tmp_path)
    script = tmp_path / "run_extract.py"
    script.write_text(KILL_AT_RANDOM_SCRIPT)
    archive = write_rfw_zip(tmp_path / "val.zip", people_per_group=3, images_per_person=4)
    options = dict(model=module.TinyNet(), batch_size=2, workers=0, device="cpu", progress=False)
    reference = open_embeddings(extract(archive, out_path=tmp_path / "ref.h5", **options))
    out = tmp_path / "killed.h5"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path)] + sys.path))
    rng = np.random.default_rng(7)
    for delay in rng.uniform(0.0, 0.8, size=4):  # each run resumes the one killed before
        process = subprocess.Popen([sys.executable, str(script), str(archive), str(out)],
                                   stdout=subprocess.PIPE, text=True, env=env)
        try:
            assert process.stdout.readline() == "ready\n"
            time.sleep(delay)
            process.send_signal(signal.SIGKILL)
        finally:
            process.kill()
            process.wait()
        if out.exists():  # only ever whole and correct under the real name
            _assert_same_file(open_embeddings(out), reference)
        if partial_path(out).exists():  # readable, and its recorded rows are right
            with h5py.File(partial_path(out)) as handle:
                rows = int(handle.attrs["rows_written"])
                assert rows <= reference.n_rows
                np.testing.assert_array_equal(handle["embeddings"][:rows],
                                              reference.read(stop=rows))
    extract(archive, out_path=out, resume=True, **options)
    _assert_same_file(open_embeddings(out), reference)
    assert not partial_path(out).exists()


def test_a_complete_file_made_with_other_options_names_them_plainly(tmp_path, tiny_model):
    options = dict(out_path=tmp_path / "e.h5", model=tiny_model, batch_size=2, workers=0,
                   device="cpu", progress=False)
    extract(noise_source(4), **options)
    with pytest.raises(MfftoolsError) as error:
        extract(noise_source(4), resume=True, flip=False, **options)
    assert str(error.value) == (f"{tmp_path / 'e.h5'}: already complete, with other settings: "
                                "flip (--no-flip) is True in the file, False now; drop --resume "
                                "to replace it")


def test_a_bad_image_drops_the_pairs_that_use_it(tmp_path, tiny_model):
    pairs = write_pair_list_with_a_bad_image(
        tmp_path, "path1,path2,issame,fold\n0.png,1.png,1,a\n2.png,bad.png,0,b\n"
                  "2.png,3.png,0,b\n0.png,3.png,1,c\n")
    out = extract(pairs, out_path=tmp_path / "p.h5", model=tiny_model, batch_size=4, workers=0,
                  device="cpu", skip_bad_images=True, progress=False)
    emb = open_embeddings(out, layout="images")
    # each image once, in order of first appearance; the pairs over the rows written
    assert list(emb.image_paths) == ["0.png", "1.png", "2.png", "3.png"]
    np.testing.assert_array_equal(emb.pair_index, [[0, 1], [2, 3], [0, 3]])
    np.testing.assert_array_equal(emb.pair_issame, [True, False, True])
    np.testing.assert_array_equal(emb.pair_fold, [0, 1, 2])
    # identities: the images the genuine pairs connect (0-1, 0-3), and 2.png alone
    np.testing.assert_array_equal(emb.identity, [0, 0, 1, 0])
    assert emb.attrs["identity_from"] == "genuine pairs"
    assert list(emb.attrs["skipped_images"]) == ["bad.png"] and emb.attrs["n_dropped_pairs"] == 1
    rows = emb.read()
    for row, name in enumerate(["0.png", "1.png", "2.png", "3.png"]):  # each image's own row
        other = "1.png" if name == "0.png" else "0.png"
        single = tmp_path / f"single_{row}.csv"
        single.write_text(f"path1,path2,issame\n{name},{other},0\n")
        alone = extract(single, out_path=tmp_path / f"s{row}.h5", model=tiny_model, batch_size=4,
                        workers=0, device="cpu", progress=False)
        np.testing.assert_allclose(open_embeddings(alone).read()[0], rows[row], rtol=1e-5,
                                   atol=1e-6)


def _original_read_image(data):
    """MixFairFace's input, restated: `ReadImage` (imageio's imread with pilmode='RGB', which is
    Pillow's convert('RGB'); no resize at 112x112; float32 / 255), then torchvision's ToTensor,
    which only moves the channels first for a float array; nothing normalises further."""
    with Image.open(io.BytesIO(data)) as image:
        pixels = np.asarray(image.convert("RGB")).astype(np.float32) / 255
    return torch.from_numpy(pixels.transpose(2, 0, 1).copy())


def test_the_papers_checkpoints_are_fed_the_papers_input(tmp_path):
    from mfftools.models.mixfair import MixFairFaceNet

    torch.manual_seed(3)
    model = MixFairFaceNet("r10-mini", num_classes=5).eval()
    path = tmp_path / "mixfairface.pth"
    torch.save(model.state_dict(), path)
    source = noise_source(4)
    out = extract(source, path, tmp_path / "e.h5", batch_size=4, workers=0, device="cpu",
                  flip=False, progress=False)
    written = open_embeddings(out)
    np.testing.assert_array_equal(written.attrs["input_mean"], [0, 0, 0])
    np.testing.assert_array_equal(written.attrs["input_std"], [1, 1, 1])
    assert written.attrs["checkpoint_format"] == "mixfairface"
    original = torch.stack([_original_read_image(encoded(k)) for k in range(4)])
    ours = Preprocessing(size=None, mean=None, std=None).for_model(
        (112, 112), "paper", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    assert torch.equal(torch.stack([ours.decode(encoded(k), str(k)) for k in range(4)]),
                       original)  # bit for bit
    with torch.no_grad():
        expected = model(original).numpy()
    np.testing.assert_allclose(written.read(), expected, rtol=1e-4, atol=1e-4)
    # given explicitly, the user's normalisation wins
    given = extract(source, path, tmp_path / "g.h5", batch_size=4, workers=0, device="cpu",
                    flip=False, progress=False, preprocessing=Preprocessing.given(
                        mean=(0.5,) * 3, std=(0.5,) * 3))
    np.testing.assert_array_equal(open_embeddings(given).attrs["input_mean"], [0.5] * 3)


def test_amp_for_an_onnx_model_warns_that_it_does_nothing(tmp_path, caplog):
    from model_files import export_onnx, small_iresnet

    onnx_path = export_onnx(small_iresnet(), tmp_path / "m.onnx")
    caplog.set_level(logging.WARNING)
    out = extract(noise_source(4), onnx_path, tmp_path / "e.h5", batch_size=4, workers=0,
                  device="cpu", amp=True, progress=False)
    assert not open_embeddings(out).attrs["amp"]
    assert [r.getMessage() for r in caplog.records if "--amp" in r.getMessage()] == [
        "--amp/--fp16 does nothing for an ONNX model: it runs as exported"]


def test_crops_resized_to_the_model_are_said_so(tmp_path, caplog):
    from model_files import export_onnx, small_iresnet, trace_torchscript

    caplog.set_level(logging.WARNING, logger="mfftools.extraction_checks")
    wide = tmp_path / "wide.onnx"
    export_onnx(torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(112), small_iresnet()), wide,
                size=(224, 224))
    extract(noise_source(4), wide, tmp_path / "w.h5", batch_size=4, workers=0, device="cpu",
            progress=False)
    assert ("the images are 112x112 and wide takes 224x224: every crop is resized (bicubic) to "
            "the model's size") in caplog.text
    caplog.clear()
    scripted = trace_torchscript(small_iresnet(), tmp_path / "s.pt")
    extract(noise_source(4), scripted, tmp_path / "s.h5", batch_size=4, workers=0, device="cpu",
            progress=False)
    assert "s does not declare its input size: images are fed at 112x112" in caplog.text
    assert "resized" not in caplog.text
    caplog.clear()
    extract(noise_source(4), scripted, tmp_path / "t.h5", batch_size=4, workers=0, device="cpu",
            progress=False, preprocessing=Preprocessing.given(size=(112, 112)))
    assert caplog.text == ""
