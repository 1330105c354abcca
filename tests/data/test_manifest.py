"""Manifests (CSV/TSV): labels, --group-by, --image-root, --columns, every error located."""
import numpy as np
import pytest

from data_builders import encoded_image
from mfftools.data.images import DEFAULT_PREPROCESSING
from mfftools.data.manifest import read_manifest
from mfftools.data.table import parse_column_map
from mfftools.errors import MfftoolsError


def write_images(folder, names, fmt="PNG"):
    for seed, name in enumerate(names):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encoded_image(seed, fmt=fmt))


def test_rows_keep_their_order_and_labels_follow_names(tmp_path):
    write_images(tmp_path, ["img/b1.png", "img/a1.png", "img/a2.png"])
    manifest = tmp_path / "faces.csv"
    manifest.write_text("path,identity,group,age\nimg/b1.png,bob,B,30\nimg/a1.png,ann,A,40\n"
                        "img/a2.png,ann,A,41\n")
    read = read_manifest(manifest)
    assert read.group_names == ["A", "B"]
    np.testing.assert_array_equal(read.group, [1, 0, 0])
    np.testing.assert_array_equal(read.identity, [1, 0, 0])  # ann < bob
    assert read.identity_names == ["bob", "ann", "ann"]
    assert read.images.image_name(0) == "img/b1.png"
    assert read.images.encoded(1) == (tmp_path / "img/a1.png").read_bytes()
    assert read.images.decode(2, DEFAULT_PREPROCESSING).shape == (3, 112, 112)


def test_tsv_group_by_two_columns_and_an_image_root(tmp_path):
    write_images(tmp_path / "root", ["x.jpg", "y.jpg"], fmt="JPEG")
    (tmp_path / "lists").mkdir()
    manifest = tmp_path / "lists" / "faces.tsv"
    manifest.write_text("path\tidentity\tethnicity\tgender\nx.jpg\tp1\tAsian\tFemale\n"
                        "y.jpg\tp2\tAsian\tMale\n")
    read = read_manifest(manifest, image_root=tmp_path / "root", group_by=["ethnicity", "gender"])
    assert read.group_names == ["Asian-Female", "Asian-Male"]
    np.testing.assert_array_equal(read.group, [0, 1])


def test_columns_map_other_names(tmp_path):
    write_images(tmp_path, ["f.png", "g.png"])
    manifest = tmp_path / "m.csv"
    manifest.write_text("file,subject,race\nf.png,1,A\ng.png,2,B\n")
    columns = parse_column_map("path=file, identity=subject,group=race")
    read = read_manifest(manifest, columns=columns)
    assert read.identity_names == ["1", "2"] and read.group_names == ["A", "B"]


def test_every_problem_is_located(tmp_path):
    write_images(tmp_path, ["ok.png"])
    manifest = tmp_path / "faces.csv"
    manifest.write_text("path,identity,group\nok.png,a,G\nmissing.png,b,G\nok.png,,G\nok.png,c\n"
                        "ok.png,d,\n")
    with pytest.raises(MfftoolsError) as error:
        read_manifest(manifest)
    assert str(error.value).splitlines() == [
        f"{manifest}, line 3, column 1 (path): no image file 'missing.png' in {tmp_path} "
        "(paths are relative to the list's folder, or to --image-root DIR)",
        f"{manifest}, line 4, column 2 (identity): empty identity",
        f"{manifest}, line 5: 2 fields, the header has 3",
        f"{manifest}, line 6, column 3 (group): empty group value",
    ]


def test_missing_columns_say_how_to_map_them(tmp_path):
    manifest = tmp_path / "faces.csv"
    manifest.write_text("file,identity,group\n")
    with pytest.raises(MfftoolsError) as error:
        read_manifest(manifest)
    assert str(error.value) == (
        f"{manifest}, line 1: no column path for a manifest (path, identity, group); the columns "
        "are file, identity, group (map yours with --columns path=YOUR_COLUMN)"
    )
    manifest.write_text("path,identity\n")
    with pytest.raises(MfftoolsError, match="no column group; add one, or give --group-by"):
        read_manifest(manifest)
    with pytest.raises(MfftoolsError, match=r"line 1: no column 'gender'; the columns are path"):
        read_manifest(manifest, group_by=["gender"])
    with pytest.raises(MfftoolsError, match=r"no column 'img' \(mapped to path by --columns\)"):
        read_manifest(manifest, columns={"path": "img"})
    with pytest.raises(MfftoolsError, match="--columns: unknown name pth"):
        read_manifest(manifest, columns={"pth": "path"})
    with pytest.raises(MfftoolsError, match=r"--columns: 'path' is not NAME=COLUMN"):
        parse_column_map("path")


def test_text_that_is_not_utf8_names_its_line(tmp_path):
    manifest = tmp_path / "faces.csv"
    manifest.write_bytes(b"path,identity,group\na.png,\xff\xfe,G\n")
    with pytest.raises(MfftoolsError, match=r"faces.csv, line 2: not UTF-8 text"):
        read_manifest(manifest)


def test_a_byte_order_mark_is_allowed(tmp_path):
    write_images(tmp_path, ["a.png"])
    manifest = tmp_path / "faces.csv"
    manifest.write_bytes("\ufeffpath,identity,group\na.png,x,G\n".encode("utf-8"))
    assert read_manifest(manifest).identity_names == ["x"]


def test_a_tab_separated_csv_is_read_by_its_tabs(tmp_path):
    write_images(tmp_path, ["x.png", "y.png"])
    for name, text in (("tabs.csv", "path\tidentity\tgroup\nx.png\tp1\tA\ny.png\tp2\tB\n"),
                       ("commas.tsv", "path,identity,group\nx.png,p1,A\ny.png,p2,B\n")):
        (tmp_path / name).write_text(text)
        read = read_manifest(tmp_path / name)
        assert read.group_names == ["A", "B"] and read.identity_names == ["p1", "p2"]
    # a comma inside a tab-separated row's value stays in the value
    (tmp_path / "mixed.csv").write_text("path\tidentity\tgroup\nx.png\tDoe, J\tA\ny.png\tp2\tB\n")
    assert read_manifest(tmp_path / "mixed.csv").identity_names == ["Doe, J", "p2"]
