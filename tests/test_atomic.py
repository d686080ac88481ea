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
