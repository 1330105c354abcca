"""--resume: refused, naming what differs and what to do, when anything that defines the rows,
their labels or their embeddings differs; continued correctly when only the images skipped
differ."""
import h5py
import numpy as np
import pytest

from extraction_sources import (
    Interrupting, encoded, noise_source, write_bin_folder, write_pair_list_with_a_bad_image)
from mfftools.embeddings import open_embeddings, partial_path
from mfftools.errors import MfftoolsError
from mfftools.extract import extract
from mfftools.resume import check_same
from mfftools.sources import SourceOptions, open_source

OPTIONS = dict(batch_size=3, workers=0, device="cpu", progress=False)


def _manifest(folder, identities=("p1", "p1", "p2", "p2", "p3", "p3", "p4", "p4")):
    rows = ["path,identity,person,group,ethnicity,gender"]
    for k, name in enumerate(identities):
        (folder / f"{k}.png").write_bytes(encoded(k))
        ethnicity, gender = ("Asian", "African")[k // 2 % 2], ("Female", "Male")[k // 4]
        rows.append(f"{k}.png,{name},x{name},all,{ethnicity},{gender}")
    path = folder / "faces.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def _interrupted(model, path, options, reads=3):
    """An extraction of the manifest with these source options, stopped after `reads` reads."""
    source = open_source(path, options)
    source.images = Interrupting(source.images, reads=reads)
    with pytest.raises(KeyboardInterrupt):
        extract(source, out_path=path.parent / "f.h5", model=model, **OPTIONS)
    return path.parent / "f.h5"


def test_differences_are_named_with_plain_values_and_what_to_do():
    file = {"flip": np.True_, "input_size": np.array([112, 112]), "group_by": "a,b"}
    with pytest.raises(MfftoolsError) as error:
        check_same(file, {"flip": False, "input_size": np.array([96, 96]), "group_by": "a,b",
                          "model": "net"}, "f.h5.partial")
    assert str(error.value) == (
        "f.h5.partial: cannot resume, with other settings: flip (--no-flip) is True in the file, "
        "False now; --input-size is [112, 112] in the file, [96, 96] now; the model (--model) is "
        "missing in the file, 'net' now; drop --resume to start over, or rerun with the options "
        "the file was started with")
    check_same(file, {"flip": True, "input_size": np.array([112, 112]), "checkpoint": "moved"},
               "f.h5.partial")


def test_resume_with_another_grouping_is_refused(tmp_path, tiny_model):
    manifest = _manifest(tmp_path)
    out = _interrupted(tiny_model, manifest, SourceOptions(group_by=("ethnicity", "gender")))
    for options, named in (
        (SourceOptions(), "--group-by is 'ethnicity,gender' in the file, none now"),
        (SourceOptions(group_by=("gender",)), "--group-by is 'ethnicity,gender' in the file, "
                                              "'gender' now"),
    ):
        with pytest.raises(MfftoolsError, match="drop --resume to start over") as error:
            extract(open_source(manifest, options), out_path=out, model=tiny_model, resume=True,
                    **OPTIONS)
        assert named in str(error.value)
        assert "the source's rows" not in str(error.value)  # the option explains them
    rows_before = open_embeddings(partial_path(out), allow_incomplete=True).n_rows
    assert rows_before == 3  # nothing was appended by the refused runs
    same = open_source(manifest, SourceOptions(group_by=("ethnicity", "gender")))
    extract(same, out_path=out, model=tiny_model, resume=True, **OPTIONS)
    fresh = extract(same, out_path=tmp_path / "fresh.h5", model=tiny_model, **OPTIONS)
    resumed, reference = open_embeddings(out), open_embeddings(fresh)
    assert resumed.group_names == reference.group_names == [
        "African-Female", "African-Male", "Asian-Female", "Asian-Male"]
    np.testing.assert_array_equal(resumed.group, reference.group)
    np.testing.assert_array_equal(resumed.read(), reference.read())


def test_resume_with_other_columns_is_refused(tmp_path, tiny_model):
    manifest = _manifest(tmp_path)
    out = _interrupted(tiny_model, manifest, SourceOptions(group_by=("gender",)))
    other = open_source(manifest, SourceOptions(group_by=("gender",),
                                                columns={"identity": "person"}))
    with pytest.raises(MfftoolsError, match="--columns is none in the file, 'identity=person' now"):
        extract(other, out_path=out, model=tiny_model, resume=True, **OPTIONS)


def test_resume_after_the_manifest_changed_is_refused(tmp_path, tiny_model):
    manifest = _manifest(tmp_path)
    out = _interrupted(tiny_model, manifest, SourceOptions(group_by=("gender",)))
    manifest.write_text(manifest.read_text().replace("7.png,p4", "7.png,p5"))
    with pytest.raises(MfftoolsError) as error:
        extract(open_source(manifest, SourceOptions(group_by=("gender",))), out_path=out,
                model=tiny_model, resume=True, **OPTIONS)
    assert str(error.value) == (
        f"{partial_path(out)}: cannot resume, with other settings: the source's rows (its "
        "images, identities, groups or pairs changed); drop --resume to start over, or rerun "
        "with the options the file was started with")


def test_skipping_bad_images_may_start_on_resume(tmp_path, tiny_model):
    out = tmp_path / "e.h5"
    with pytest.raises(MfftoolsError, match="cannot decode image img9.*add --skip-bad-images"):
        extract(noise_source(13, bad={9}), out_path=out, model=tiny_model, **OPTIONS)
    assert open_embeddings(partial_path(out), allow_incomplete=True).n_rows == 9
    skipping = dict(OPTIONS, skip_bad_images=True)
    extract(noise_source(13, bad={9}), out_path=out, model=tiny_model, resume=True, **skipping)
    reference = extract(noise_source(13, bad={9}), out_path=tmp_path / "ref.h5",
                        model=tiny_model, **skipping)
    resumed, reference = open_embeddings(out), open_embeddings(reference)
    np.testing.assert_array_equal(resumed.read(), reference.read())  # the same batches
    np.testing.assert_array_equal(resumed.identity, reference.identity)
    for key in ("n_skipped_images", "skipped_images", "n_rows_expected", "skip_bad_images"):
        np.testing.assert_array_equal(resumed.attrs[key], reference.attrs[key])
    assert list(resumed.attrs["skipped_images"]) == ["img9"]


def test_skipping_on_resume_drops_a_half_written_pair(tmp_path, tiny_model):
    folder = write_bin_folder(tmp_path / "bins", pairs_per_group=4, bad={5})  # pair 2 of G0
    out = tmp_path / "p.h5"
    options = dict(OPTIONS, batch_size=5)
    with pytest.raises(MfftoolsError, match="G0_test.bin image 5"):
        extract(folder, out_path=out, model=tiny_model, **options)
    with h5py.File(partial_path(out)) as handle:
        assert handle.attrs["rows_written"] == 5  # pair 2's first image is in
    extract(folder, out_path=out, model=tiny_model, resume=True, skip_bad_images=True, **options)
    reference = extract(folder, out_path=tmp_path / "ref.h5", model=tiny_model,
                        skip_bad_images=True, **options)
    resumed, reference = open_embeddings(out, layout="pairs"), open_embeddings(reference)
    np.testing.assert_allclose(resumed.read(), reference.read(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(resumed.issame, [True, False, False, True, False, True, False])
    np.testing.assert_array_equal(resumed.pair_group, reference.pair_group)
    with h5py.File(out) as handle:
        np.testing.assert_array_equal(handle["source_index"][()],
                                      [0, 1, 2, 3, 6, 7] + list(range(8, 16)))
    assert resumed.attrs["n_dropped_pairs"] == 1 and resumed.attrs["n_skipped_images"] == 1


def test_a_file_that_skipped_images_is_continued_only_skipping(tmp_path, tiny_model):
    out = tmp_path / "e.h5"
    with pytest.raises(KeyboardInterrupt):
        extract(noise_source(10, bad={1}, interrupt_after=10 + 3), out_path=out,
                model=tiny_model, skip_bad_images=True, **OPTIONS)
    with pytest.raises(MfftoolsError) as error:
        extract(noise_source(10, bad={1}), out_path=out, model=tiny_model, resume=True,
                **OPTIONS)
    assert str(error.value) == (
        f"{partial_path(out)}: cannot resume: the file was started with --skip-bad-images and "
        "left out 1 images; add --skip-bad-images, or drop --resume to start over")


def test_a_partial_file_stopped_before_its_rename_is_moved_into_place(tmp_path, tiny_model):
    out = tmp_path / "e.h5"
    extract(noise_source(6), out_path=out, model=tiny_model, **OPTIONS)
    out.rename(partial_path(out))  # as a writer killed between marking complete and renaming
    report_path = extract(noise_source(6), out_path=out, model=tiny_model, resume=True, **OPTIONS)
    assert report_path == out and not partial_path(out).exists()
    assert open_embeddings(out).n_rows == 6


def test_an_incomplete_file_left_under_the_real_name_is_resumed(tmp_path, tiny_model):
    out = tmp_path / "e.h5"
    with pytest.raises(KeyboardInterrupt):
        extract(noise_source(8, interrupt_after=6), out_path=out, model=tiny_model, **OPTIONS)
    partial_path(out).rename(out)  # where earlier versions kept an interrupted extraction
    extract(noise_source(8), out_path=out, model=tiny_model, resume=True, **OPTIONS)
    reference = extract(noise_source(8), out_path=tmp_path / "ref.h5", model=tiny_model,
                        **OPTIONS)
    np.testing.assert_array_equal(open_embeddings(out).read(), open_embeddings(reference).read())


def test_a_pair_table_counts_each_bad_image_once_and_its_pairs_apart(tmp_path, tiny_model):
    pairs = write_pair_list_with_a_bad_image(
        tmp_path, "path1,path2,issame\n0.png,bad.png,1\n1.png,2.png,0\nbad.png,3.png,0\n"
                  "2.png,3.png,1\n3.png,bad.png,0\n")
    out = extract(pairs, out_path=tmp_path / "p.h5", model=tiny_model, skip_bad_images=True,
                  **OPTIONS)
    attrs = open_embeddings(out, layout="images").attrs
    assert attrs["n_skipped_images"] == 1 and list(attrs["skipped_images"]) == ["bad.png"]
    assert attrs["n_dropped_pairs"] == 3


def test_an_existing_file_is_untouched_until_the_new_one_is_whole(tmp_path, tiny_model):
    out = tmp_path / "e.h5"
    extract(noise_source(6), out_path=out, model=tiny_model, **OPTIONS)
    before = out.read_bytes()
    with pytest.raises(KeyboardInterrupt):
        extract(noise_source(6, interrupt_after=4), out_path=out, model=tiny_model, flip=False,
                **OPTIONS)
    assert out.read_bytes() == before and partial_path(out).exists()
    extract(noise_source(6), out_path=out, model=tiny_model, flip=False, **OPTIONS)
    assert not open_embeddings(out).attrs["flip"] and not partial_path(out).exists()
