import os
import pickle
import zipfile

import pytest

from data_builders import write_zip
from mfftools.data.zipsource import LazyZip
from mfftools.errors import MfftoolsError


def test_reads_members_and_reopens_per_process(tmp_path):
    archive = LazyZip(write_zip(tmp_path / "a.zip", {"x/y.txt": b"hello", "z": b"!"}))
    assert archive.names == ["x/y.txt", "z"]
    assert archive.read("x/y.txt") == b"hello"
    assert archive._handle_pid == os.getpid()
    archive._handle_pid = -1  # as seen from a forked worker: the inherited handle is not reused
    stale = archive._handle
    assert archive.read("z") == b"!" and archive._handle is not stale
    clone = pickle.loads(pickle.dumps(archive))
    assert clone._handle is None and clone.read("z") == b"!"


def test_in_memory_reads_the_file_once(tmp_path):
    path = write_zip(tmp_path / "a.zip", {"m": b"data"})
    archive = LazyZip(path, in_memory=True)
    path.unlink()
    assert archive.read("m") == b"data"


def test_missing_and_corrupt_members_are_named(tmp_path):
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as handle:
        handle.writestr("data/good.txt", b"A" * 100)
        handle.writestr("data/bad.txt", b"B" * 100)
    raw = bytearray(path.read_bytes())
    position = raw.index(b"B" * 100)
    raw[position : position + 10] = b"C" * 10  # the stored CRC no longer matches
    path.write_bytes(bytes(raw))
    archive = LazyZip(path)
    assert archive.read("data/good.txt") == b"A" * 100
    with pytest.raises(MfftoolsError, match=r"a.zip: cannot read member data/bad.txt"):
        archive.read("data/bad.txt")
    with pytest.raises(MfftoolsError, match=r"a.zip: member data/none.txt is missing"):
        archive.read("data/none.txt")


def test_missing_file_and_not_a_zip(tmp_path):
    with pytest.raises(MfftoolsError, match="absent.zip: no such file"):
        LazyZip(tmp_path / "absent.zip")
    (tmp_path / "text.zip").write_text("plain text")
    with pytest.raises(MfftoolsError, match="text.zip: not a readable zip file"):
        LazyZip(tmp_path / "text.zip")
    with pytest.raises(MfftoolsError, match="no such file"):
        LazyZip(tmp_path)
