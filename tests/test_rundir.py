"""Run files: written whole, and readable like any other file the user makes."""

from __future__ import annotations

import os
import stat

import pytest

from automl_tl.rundir import atomic_write, read_json, write_json


def test_run_files_follow_the_umask_not_mkstemps_private_mode(tmp_path):
    path = tmp_path / "run" / "test.json"
    write_json(path, {"accuracy": 0.9})
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert read_json(path) == {"accuracy": 0.9}


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "record.json"
    write_json(path, {"n": 1})

    def explode(handle):
        handle.write('{"n": ')
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(path, explode)
    assert read_json(path) == {"n": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]
