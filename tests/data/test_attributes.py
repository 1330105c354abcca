"""Per-identity attributes joined to any source; --group-by on pair lists."""
import numpy as np
import pytest
from click.testing import CliRunner

from data_builders import encoded_image, rfw_members, write_zip
from mfftools.cli import main
from mfftools.data.attributes import Attributes
from mfftools.embeddings import open_embeddings
from mfftools.errors import MfftoolsError
from mfftools.sources import SourceOptions, open_source


def _tree(root, people):
    """root/<folder group>/<identity>/k.png for {(group, identity): images}."""
    seed = 0
    for (group, identity), count in people.items():
        folder = root / group / identity
        folder.mkdir(parents=True)
        for k in range(count):
            (folder / f"{k}.png").write_bytes(encoded_image(seed, size=16))
            seed += 1
    return root


ATTRIBUTES = "identity,ethnicity,gender,group\nann,Asian,Female,x\nbob,African,Male,y\n" \
             "cy,Asian,Male,x\n"


def test_attributes_regroup_a_folder_tree(tmp_path):
    root = _tree(tmp_path / "faces", {("all", "ann"): 2, ("all", "bob"): 1, ("all", "cy"): 2})
    attributes = tmp_path / "people.tsv"
    attributes.write_text(ATTRIBUTES.replace(",", "\t"))
    source = open_source(root, SourceOptions(attributes=attributes,
                                             group_by=("ethnicity", "gender")))
    assert source.group_names == ["African-Male", "Asian-Female", "Asian-Male"]
    np.testing.assert_array_equal(source.group, [1, 1, 0, 2, 2])
    default = open_source(root, SourceOptions(attributes=attributes))  # its `group` column
    assert default.group_names == ["x", "y"]
    with pytest.raises(MfftoolsError, match="--group-by needs --attributes FILE"):
        open_source(root, SourceOptions(group_by=("gender",)))


def test_attributes_regroup_an_rfw_zip_and_a_manifest(tmp_path):
    archive = write_zip(tmp_path / "rfw.zip", rfw_members(
        {"African": ["m.a"], "Asian": ["m.b"]}, {("African", "m.a"): 2, ("Asian", "m.b"): 2}))
    attributes = tmp_path / "people.csv"
    attributes.write_text("identity,gender\nm.a,Female\nm.b,Female\nm.zz,Male\n")
    zipped = open_source(archive, SourceOptions(attributes=attributes, group_by=("gender",)))
    assert zipped.group_names == ["Female"] and list(zipped.group) == [0] * 4
    for k in range(3):
        (tmp_path / f"{k}.png").write_bytes(encoded_image(k, size=16))
    manifest = tmp_path / "faces.csv"
    manifest.write_text("path,identity\n0.png,m.a\n1.png,m.b\n2.png,m.a\n")  # no group column
    listed = open_source(manifest, SourceOptions(attributes=attributes, group_by=("gender",)))
    assert listed.group_names == ["Female"]


def test_an_identity_without_attributes_or_with_conflicting_rows_is_named(tmp_path):
    root = _tree(tmp_path / "faces", {("all", "ann"): 1, ("all", "dan"): 1})
    attributes = tmp_path / "people.csv"
    attributes.write_text(ATTRIBUTES)
    with pytest.raises(MfftoolsError) as error:
        open_source(root, SourceOptions(attributes=attributes, group_by=("gender",)))
    assert str(error.value) == (f"{attributes}: no row for identity 'dan' (add one: every "
                                "identity of the source needs its attributes)")
    attributes.write_text(ATTRIBUTES + "ann,Asian,Female,x\nann,Asian,Male,x\n")
    with pytest.raises(MfftoolsError) as error:
        Attributes(attributes)
    assert str(error.value) == (f"{attributes}, lines 2 and 6: identity 'ann' has two rows that "
                                "disagree; keep one")
    attributes.write_text("identity,gender\nann,\ndan,Male\n")
    with pytest.raises(MfftoolsError, match=r"line 2, column 2 \(gender\): empty value for "
                                            "identity 'ann'"):
        open_source(root, SourceOptions(attributes=attributes, group_by=("gender",)))
    with pytest.raises(MfftoolsError, match="give --group-by COLUMNS"):
        open_source(root, SourceOptions(attributes=attributes))


def _pair_images(folder, count=6):
    for k in range(count):
        (folder / f"{k}.png").write_bytes(encoded_image(k, size=16))


def test_a_pair_list_grouped_by_each_images_columns(tmp_path):
    _pair_images(tmp_path)
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("p1,p2,label,e1,e2,g1,g2\n"
                     "0.png,1.png,1,Asian,Asian,Male,Male\n"
                     "2.png,3.png,0,Asian,African,Male,Male\n"     # two groups: left out
                     "4.png,5.png,0,African,African,Female,Female\n"
                     "1.png,0.png,0,Asian,Asian,Male,Male\n")
    options = SourceOptions(columns={"path1": "p1", "path2": "p2", "issame": "label"},
                            group_by=("e", "g"))
    source = open_source(pairs, options)
    assert source.group_names == ["African-Female", "Asian-Male"]
    # each image once (2.png and 3.png only in the left-out pair), its group that of its pairs
    assert [source.images.image_name(k) for k in range(len(source))] == [
        "0.png", "1.png", "4.png", "5.png"]
    np.testing.assert_array_equal(source.group, [1, 1, 0, 0])
    np.testing.assert_array_equal(source.pair_index, [[0, 1], [2, 3], [1, 0]])
    np.testing.assert_array_equal(source.pair_issame, [True, False, False])
    # an image whose columns put it in two groups cannot be embedded once for both
    pairs.write_text("p1,p2,label,e1,e2,g1,g2\n0.png,1.png,1,Asian,Asian,Male,Male\n"
                     "0.png,5.png,0,African,African,Male,Male\n")
    with pytest.raises(MfftoolsError, match="image '0.png' is in pairs of groups"):
        open_source(pairs, options)


def test_a_pair_list_grouped_by_attributes(tmp_path):
    _pair_images(tmp_path)
    attributes = tmp_path / "people.csv"
    attributes.write_text(ATTRIBUTES)
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("path1,path2,issame,id1,id2\n0.png,1.png,1,ann,ann\n2.png,3.png,0,ann,cy\n"
                     "4.png,5.png,0,cy,cy\n")
    source = open_source(pairs, SourceOptions(columns={"identity1": "id1", "identity2": "id2"},
                                              attributes=attributes,
                                              group_by=("ethnicity", "gender")))
    assert source.group_names == ["Asian-Female", "Asian-Male"]
    np.testing.assert_array_equal(source.group[source.pair_index[:, 0]], [0, 1])
    by_ethnicity = open_source(pairs, SourceOptions(
        columns={"identity1": "id1", "identity2": "id2"}, attributes=attributes,
        group_by=("ethnicity",)))
    assert by_ethnicity.group_names == ["Asian"] and len(by_ethnicity.pair_issame) == 3
    with pytest.raises(MfftoolsError, match="needs each image's identity: columns identity1 and "
                                            "identity2"):
        open_source(pairs, SourceOptions(attributes=attributes, group_by=("gender",)))


def test_extract_records_the_attributes_and_refuses_another_on_resume(tmp_path):
    from mfftools.models.iresnet import iresnet
    import torch

    root = _tree(tmp_path / "faces", {("all", "ann"): 2, ("all", "bob"): 2, ("all", "cy"): 2})
    attributes = tmp_path / "people.csv"
    attributes.write_text(ATTRIBUTES)
    torch.manual_seed(0)
    checkpoint = tmp_path / "m.pth"
    torch.save(iresnet("r10-mini").state_dict(), checkpoint)
    out = tmp_path / "e.h5"
    result = CliRunner().invoke(main, [
        "extract", str(root), "--model", str(checkpoint), "--out", str(out), "--workers", "0",
        "--device", "cpu", "--attributes", str(attributes), "--group-by", "ethnicity"])
    assert result.exit_code == 0, result.output
    written = open_embeddings(out)
    assert written.group_names == ["African", "Asian"]
    assert written.attrs["attributes"] == str(attributes.resolve())
    assert written.attrs["group_by"] == "ethnicity"


def test_attributes_regroup_rfw_as_shipped_and_ijb_points_to_its_metadata(tmp_path):
    from mfftools.data.synthetic_shipped import write_shipped

    summary = write_shipped(tmp_path / "shipped", seed=4, rfw_identities_per_group=2,
                            rfw_images_per_identity=2, rfw_pairs_per_group=20, ijbc_subjects=4,
                            ijbc_templates_per_subject=2)
    rfw = open_source(summary.rfw_folder)
    attributes = tmp_path / "people.csv"
    names = sorted(set(rfw.identity_names))
    attributes.write_text("identity,gender\n" + "".join(
        f"{name},{('F', 'M')[k % 2]}\n" for k, name in enumerate(names)))
    regrouped = open_source(summary.rfw_folder, SourceOptions(attributes=attributes,
                                                              group_by=("gender",)))
    assert regrouped.group_names == ["F", "M"]
    expected = [("F", "M")[names.index(name) % 2] for name in rfw.identity_names]
    assert [regrouped.group_names[g] for g in regrouped.group] == expected
    assert regrouped.attrs == rfw.attrs  # still aligned by its landmarks
    with pytest.raises(MfftoolsError, match="template-eval --metadata joins IJB's demographics"):
        open_source(summary.ijbc_folder, SourceOptions(attributes=attributes))
