"""The report's gallery of the faces behind the numbers, end to end: synthetic images (a folder
tree, a manifest under --image-root, RFW as shipped and aligned) -> extract -> inst-eval and
ident-eval -> report; --no-images; and images that cannot be read."""
import base64
import io
import json
import re
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from extraction_sources import load_tiny_model_module
from mfftools.cli import main
from mfftools.data.images import Preprocessing
from mfftools.data.source_images import THUMBNAIL
from mfftools.data.synthetic import synthesize
from mfftools.embeddings import open_embeddings
from mfftools.extract import extract
from mfftools.reporting.gallery import GROUP_CARDS, IDENTITY_IMAGES, LOWEST
from mfftools.sources import SourceOptions, open_source

JPEG = re.compile(r'<img alt="([^"]*)" title="[^"]*" src="data:image/jpeg;base64,([^"]+)">')


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gallery_data")
    summary = synthesize(folder, identities_per_group=2, images_per_identity=1.5,
                         max_images_per_identity=2, pairs_per_group=20,
                         train_identities_per_group=2, train_images_per_identity=1,
                         faces_identities_per_group=3, faces_images_per_identity=3,
                         faces_pairs_per_group=20, rfw_identities_per_group=4,
                         rfw_images_per_identity=2, rfw_pairs_per_group=20, ijbc_subjects=4,
                         ijbc_templates_per_subject=2)
    model = load_tiny_model_module(folder).TinyNet().eval()
    return folder, summary, model


@pytest.fixture(scope="module")
def faces(data, tmp_path_factory):
    """The folder tree's embeddings and their inst-eval and ident-eval results."""
    folder, _, _ = data
    out = tmp_path_factory.mktemp("faces")
    embeddings = extracted(data, folder / "faces", out / "faces.h5")
    return embeddings, evaluated(embeddings, out)


def extracted(data, source, out, **options):
    _, _, model = data
    opened = open_source(source, SourceOptions(**options)) if options else source
    return extract(opened, model=model, out_path=out, device="cpu", workers=0, progress=False)


def run(*args):
    result = CliRunner().invoke(main, ["-q", *map(str, args)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def evaluated(embeddings, folder, ident=True):
    """inst-eval (and ident-eval) results of `embeddings` in `folder`."""
    files = [folder / "inst.json"]
    run("inst-eval", embeddings, "--fpr", "1e-2", "--device", "cpu", "--json", files[0])
    if ident:
        files.append(folder / "ident.json")
        run("ident-eval", embeddings, "--fpir", "0.2", "--device", "cpu", "--json", files[1])
    return files


def report(files, out, *options):
    run("report", *files, "--out", out, "--bootstrap", "0", "--permutations", "0", *options)
    return (out / "report.html").read_text(), (out / "report.md").read_text()


def thumbnails(html):
    """(path, decoded image) of every thumbnail in the page."""
    return [(path, Image.open(io.BytesIO(base64.b64decode(data)))) for path, data in
            JPEG.findall(html)]


def expected_thumbnails(instance, identification, embeddings):
    """Thumbnails the galleries show: the lowest-TPR identities' first images, both images of
    each impostor pair, each search and its template's first images."""
    entry = instance["results"][0]
    rows = entry["per_identity"]
    count = 0
    for g in range(len(instance["group_names"])):
        members = [k for k, group in enumerate(rows["group"])
                   if group == g and rows["tpr"][k] is not None]
        labels = instance["identities"]["identity"]
        lowest = sorted(members, key=lambda k: (rows["tpr"][k], labels[k]))
        for k in lowest[:LOWEST]:
            count += min(IDENTITY_IMAGES, int((embeddings.identity == labels[k]).sum()))
    top = instance["top_impostors"]
    count += 2 * (len(top["all"]) + sum(min(len(pairs), GROUP_CARDS)
                                        for pairs in top["groups"].values()))
    searches = identification["top_nonmated"]
    for listed in [searches["all"]] + [found[:GROUP_CARDS] for found in
                                       searches["groups"].values()]:
        count += sum(1 + min(IDENTITY_IMAGES, len(search["template"]["rows"]))
                     for search in listed)
    return count


def test_gallery_of_a_folder_tree(data, faces, tmp_path):
    folder, _, _ = data
    embeddings, files = faces
    html, markdown = report(files, tmp_path / "report")
    instance, identification = (json.loads(file.read_text()) for file in files)
    shown = thumbnails(html)
    opened = open_embeddings(embeddings)
    assert len(shown) == expected_thumbnails(instance, identification, opened) > 0
    for path, image in shown:
        assert image.format == "JPEG" and max(image.size) == THUMBNAIL
        assert (folder / "faces" / path).is_file()
    # the highest-scoring pair, its two faces and its score
    best = instance["top_impostors"]["all"][0]
    assert best["path"] == [str(opened.image_paths[row]) for row in best["rows"]]
    assert f'alt="{best["path"][0]}"' in html and f'alt="{best["path"][1]}"' in html
    assert f"score {best['score']:.4f}" in html
    # the identity with the lowest TPR of each group, by name
    entry = instance["results"][0]
    rows, labels = entry["per_identity"], instance["identities"]["identity"]
    for g, name in enumerate(instance["group_names"]):
        members = [k for k, group in enumerate(rows["group"]) if group == g]
        lowest = min(members, key=lambda k: (rows["tpr"][k], labels[k]))
        who = opened.identity_names[np.flatnonzero(opened.identity == labels[lowest])[0]]
        assert f"Lowest TPR in {name} at FPR 1e-02, bisection" in html
        assert f"{who} (identity {labels[lowest]})" in html
    search = identification["top_nonmated"]["all"][0]
    assert f'alt="{search["path"]}"' in html
    assert f'alt="{search["template"]["path"][0]}"' in html
    assert "Gallery of" not in html  # every image read: nothing left out
    assert "Faces behind the numbers: TinyNet, instance protocol" in markdown
    assert f"`{best['path'][0]}`" in markdown and "base64" not in markdown


def test_no_images_leaves_every_face_out_and_says_where_they_are(data, faces, tmp_path):
    folder, _, _ = data
    _, files = faces
    html, markdown = report(files, tmp_path / "report", "--no-images")
    assert "data:image/jpeg" not in html and "/9j/" not in html  # no JPEG, base64 or not
    assert not list((tmp_path / "report").glob("*.jp*g"))
    best = json.loads(files[0].read_text())["top_impostors"]["all"][0]
    assert f'<span class="where">{best["path"][0]}</span>' in html
    source = str((folder / "faces").resolve())
    note = (f"Thumbnails are left out (--no-images): the galleries name each image by its path "
            f"in its source ({source}).")
    assert note in html and note in markdown


def test_images_that_cannot_be_read_give_notes(data, tmp_path):
    folder, _, _ = data
    copy = shutil.copytree(folder / "faces", tmp_path / "faces")
    embeddings = extracted(data, copy, tmp_path / "faces.h5")
    files = evaluated(embeddings, tmp_path, ident=False)
    best = json.loads(files[0].read_text())["top_impostors"]["all"][0]
    (copy / best["path"][0]).unlink()  # one image gone
    html, _ = report(files, tmp_path / "one")
    assert thumbnails(html)
    # a folder tree read again lists the images still there
    assert re.search(r"Gallery of TinyNet \(instance\): \d+ images could not be read and are "
                     r"named by their path instead \(the first: "
                     + re.escape(f"{copy.resolve()} holds no image &#x27;{best['path'][0]}&#x27;: "
                                 "the source changed after the extraction)."), html)
    assert f'<span class="where">{best["path"][0]}</span>' in html
    copy.rename(tmp_path / "moved")  # the whole source gone
    html, markdown = report(files, tmp_path / "all")
    assert "data:image/jpeg" not in html
    note = (f"Gallery of TinyNet (instance): no thumbnails: {copy.resolve()}: the source of "
            f"{embeddings} is not there (moved or deleted).")
    assert note in html and note in markdown
    embeddings.rename(tmp_path / "elsewhere.h5")  # the embeddings file gone
    html, _ = report(files, tmp_path / "none")
    assert f"Gallery of TinyNet (instance): left out: {embeddings}: embeddings file not found." \
        in html
    assert "Faces behind the numbers" not in html


def test_another_file_under_the_recorded_name_is_not_shown(data, tmp_path):
    folder, _, _ = data
    embeddings = extracted(data, folder / "faces", tmp_path / "faces.h5")
    files = evaluated(embeddings, tmp_path, ident=False)
    extracted(data, folder / "RFW" / "test", tmp_path / "faces.h5")
    html, _ = report(files, tmp_path / "report")
    assert "data:image/jpeg" not in html
    assert (f"Gallery of TinyNet (instance): left out: {embeddings} is not what the result was "
            "computed on (its n, paths_sha256, identities_sha256 differ).") in html


def test_a_manifest_under_an_image_root_and_a_relative_source(data, tmp_path, monkeypatch):
    """The source's options come back from the file (--image-root); a `source` recorded relative
    to the folder inst-eval ran in is found beside the results when the report runs elsewhere."""
    folder, _, _ = data
    manifest = tmp_path / "lists" / "faces.csv"
    manifest.parent.mkdir()
    shutil.copy(folder / "faces.csv", manifest)
    extracted(data, manifest, tmp_path / "faces.h5", image_root=folder)
    monkeypatch.chdir(tmp_path)
    run("inst-eval", "faces.h5", "--fpr", "1e-2", "--device", "cpu", "--json", "inst.json")
    assert json.loads((tmp_path / "inst.json").read_text())["source"] == "faces.h5"
    monkeypatch.chdir(folder)
    html, _ = report([tmp_path / "inst.json"], tmp_path / "report")
    assert thumbnails(html) and "Gallery of" not in html


def test_rfw_as_shipped_shows_the_aligned_faces(data, tmp_path):
    folder, summary, _ = data
    embeddings = extracted(data, summary.shipped.rfw_folder, tmp_path / "rfw.h5")
    assert open_embeddings(embeddings).attrs["alignment_template"] == "arcface-112"
    files = evaluated(embeddings, tmp_path)
    html, _ = report(files, tmp_path / "report")
    shown = thumbnails(html)
    assert shown and all(image.size == (THUMBNAIL, THUMBNAIL) for _, image in shown)
    assert "Gallery of" not in html
    # each face as the model saw it: aligned by its landmarks, not the loose image resized
    source = open_source(summary.shipped.rfw_folder)
    index = {source.images.image_name(k): k for k in range(len(source))}
    as_seen = Preprocessing(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    for path, image in shown[:4]:
        thumbnail = np.asarray(image.convert("RGB"), dtype=np.float64)
        aligned = source.images.decode(index[path], as_seen).permute(1, 2, 0).numpy()
        loose = Image.open(io.BytesIO(source.images.encoded(index[path]))).convert("RGB")
        gaps = [np.abs(np.asarray(face.resize(image.size, Image.Resampling.LANCZOS), np.float64)
                       - thumbnail).mean()
                for face in (Image.fromarray(np.uint8(np.rint(aligned * 255))), loose)]
        assert gaps[0] < 10 and 2 * gaps[0] < gaps[1], gaps  # JPEG's loss, not another face


def test_two_files_show_searches_from_the_probes_and_templates_from_the_gallery(data, tmp_path):
    folder, _, _ = data
    rows = (folder / "faces.csv").read_text().splitlines()
    header, rows = rows[0], rows[1:]
    identities = sorted({row.split(",")[1] for row in rows})
    enrolled = set(identities[0::2])
    for name, keep in (("gallery", lambda row: row.split(",")[1] in enrolled),
                       ("probes", lambda row: True)):  # enrolled identities: mated searches
        (folder / f"{name}.csv").write_text("\n".join([header] + list(filter(keep, rows))) + "\n")
        extracted(data, folder / f"{name}.csv", tmp_path / f"{name}.h5")
    run("ident-eval", "--gallery", tmp_path / "gallery.h5", "--probes", tmp_path / "probes.h5",
        "--fpir", "0.2", "--device", "cpu", "--json", tmp_path / "ident.json")
    html, _ = report([tmp_path / "ident.json"], tmp_path / "report")
    search = json.loads((tmp_path / "ident.json").read_text())["top_nonmated"]["all"][0]
    found = dict(thumbnails(html))
    assert search["path"] in found and search["template"]["path"][0] in found
    assert search["identity_name"] not in enrolled
    assert search["template"]["identity_name"] in enrolled
    assert "Gallery of" not in html


def test_results_without_recorded_pairs_give_a_note(faces, tmp_path):
    _, recorded = faces
    files = [tmp_path / file.name for file in recorded]
    instance, identification = (json.loads(file.read_text()) for file in recorded)
    del instance["top_impostors"]
    identification["top_nonmated"]["all"][0]["row"] = "not a row"
    for file, result in zip(files, (instance, identification)):
        file.write_text(json.dumps(result))
    html, markdown = report(files, tmp_path / "report")
    assert ("Gallery of TinyNet (instance): nothing from 'top_impostors': the result does not "
            "record it (an older file).") in markdown
    assert ("Gallery of TinyNet (identification): nothing from 'top_nonmated': it is not as "
            "mfftools writes it.") in markdown
    assert "Lowest TPR in" in html and thumbnails(html)
