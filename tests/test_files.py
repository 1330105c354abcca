"""Atomic writes and the shared results-file writer."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from mfftools.errors import MfftoolsError
from mfftools.files import atomic_output, compact, write_results
from mfftools.locks import lock_path, output_lock


def test_error_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "out.json"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_output(path) as temporary:
            temporary.write_text("half")
            raise RuntimeError("crash")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_results_file_rounds_only_the_long_lists(tmp_path):
    result = {
        "threshold": 0.123456789123,
        "results": [{"per_identity": {"tpr": [0.123456789, None], "group": [1, 2]}}],
        "roc": {"A": {"fpr": [1.0 / 3.0]}},
        "det": {"all": {"fnir": [2.0 / 3.0, None]}},
    }
    data = json.loads(write_results(result, tmp_path / "r.json").read_text())
    assert data["threshold"] == 0.123456789123
    assert data["results"][0]["per_identity"] == {"tpr": [0.123457, None], "group": [1, 2]}
    assert data["roc"]["A"]["fpr"] == [0.333333]
    assert data["det"]["all"]["fnir"] == [0.666667, None]
    assert compact(result)["threshold"] == result["threshold"]


def test_nan_is_refused_and_nothing_is_written(tmp_path):
    with pytest.raises(ValueError):
        write_results({"x": float("nan")}, tmp_path / "r.json")
    assert not (tmp_path / "r.json").exists()


def test_text_is_written_in_utf8_whatever_the_locale(tmp_path):
    # an ASCII locale, without Python's UTF-8 mode or locale coercion
    env = dict(os.environ, LC_ALL="C", PYTHONUTF8="0", PYTHONCOERCECLOCALE="0")
    script = ("import sys; from mfftools.files import write_text; "
              "write_text(sys.argv[1], 'Zo\\u00eb')")
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "t.md")], env=env, check=True)
    assert (tmp_path / "t.md").read_bytes() == "Zoë".encode("utf-8")


def test_a_file_another_process_is_writing_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "r.json"
    path.write_text("old")
    holder = textwrap.dedent("""
        import sys, time
        from mfftools.locks import output_lock
        with output_lock(sys.argv[1]):
            print("held", flush=True)
            time.sleep(60)
    """)
    process = subprocess.Popen([sys.executable, "-c", holder, str(path)], stdout=subprocess.PIPE,
                               text=True)
    try:
        assert process.stdout.readline() == "held\n"
        with pytest.raises(MfftoolsError) as error:
            write_results({"x": 1}, path)
        assert str(error.value) == (
            f"{path} is being written by another mfftools process (pid {process.pid}); wait for "
            "it to finish, or write to another file")
        assert path.read_text() == "old"
    finally:
        process.kill()
        process.wait()
    write_results({"x": 1}, path)  # the lock dies with its holder
    assert json.loads(path.read_text()) == {"x": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_the_lock_is_reentrant_within_a_process(tmp_path):
    path = tmp_path / "out.txt"
    with output_lock(path):
        with atomic_output(path) as temporary:
            temporary.write_text("new")
        assert lock_path(path).exists()
    assert path.read_text() == "new" and not lock_path(path).exists()
