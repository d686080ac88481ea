"""Atomic writes: all or nothing."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from fashion_utils import atomic


def test_writers_create_parent_folders_and_leave_no_temporary_file(tmp_path):
    out = tmp_path / "a" / "b"
    atomic.write_text_atomic(out / "x.txt", "hello")
    atomic.write_json_atomic(out / "x.json", {"n": 1})
    atomic.write_csv_atomic(pd.DataFrame({"id": ["1", "2"]}), out / "x.csv")
    assert (out / "x.txt").read_text() == "hello"
    assert json.loads((out / "x.json").read_text()) == {"n": 1}
    assert pd.read_csv(out / "x.csv", dtype=str)["id"].tolist() == ["1", "2"]
    assert sorted(p.name for p in out.iterdir()) == ["x.csv", "x.json", "x.txt"]


def test_a_failed_write_keeps_the_old_file_and_cleans_up(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_unserialisable_json_leaves_nothing_behind(tmp_path):
    with pytest.raises(TypeError):
        atomic.write_json_atomic(tmp_path / "bad.json", {"x": object()})
    assert not list(tmp_path.iterdir())


def test_atomic_dir_builds_in_a_temporary_name_and_replaces_only_when_told(tmp_path):
    from fashion_utils.atomic import atomic_dir

    target = tmp_path / "folder"
    with atomic_dir(target) as tmp:
        assert tmp != target and not target.exists()
        (tmp / "a.txt").write_text("1")
    assert (target / "a.txt").read_text() == "1"
    with pytest.raises(FileExistsError, match="not empty"):
        with atomic_dir(target) as tmp:
            (tmp / "b.txt").write_text("2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]  # nothing half-made left
    with atomic_dir(target, replace=True) as tmp:
        (tmp / "b.txt").write_text("2")
    assert [p.name for p in target.iterdir()] == ["b.txt"]
    with pytest.raises(RuntimeError):
        with atomic_dir(target, replace=True) as tmp:
            (tmp / "c.txt").write_text("3")
            raise RuntimeError("killed mid-build")
    assert [p.name for p in target.iterdir()] == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path):
    import subprocess
    import sys

    from fashion_utils.atomic import atomic_dir, remove_stale_temporaries, temporary_dir_for

    target = tmp_path / "folder"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    pid = int(dead.stdout)
    stale = tmp_path / f".folder.tmp-{pid}"
    stale.mkdir()
    mine = temporary_dir_for(target)  # this process is alive: never removed by the sweep
    mine.mkdir()
    assert remove_stale_temporaries(target) == [stale]
    assert not stale.exists() and mine.exists()
    stale.mkdir()
    with atomic_dir(target) as tmp:
        (tmp / "x").write_text("x")
    assert not stale.exists() and (target / "x").exists()
