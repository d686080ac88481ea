"""The explorer bench: its errors, and what it adds to the browser test's timings."""

from __future__ import annotations

import json
import subprocess

import pytest

from fashion_utils.bench import explorer as bench


def test_a_missing_browser_test_is_named(monkeypatch, tmp_path):
    monkeypatch.setattr(bench, "BROWSER_TEST", tmp_path / "nope.py")
    with pytest.raises(ValueError, match="nope.py, which is missing"):
        bench.bench_explorer(n=10)
    with pytest.raises(ValueError, match="n=0"):
        bench.bench_explorer(n=0)


def test_the_timings_are_judged_on_the_median_and_a_failure_is_reported(monkeypatch):
    calls = []

    def fake_run(command, *, env, **_):
        calls.append((command, env))
        timings = {"n_items": int(env["FASHION_PICK_ITEMS"]),
                   "decoded_ms": {"median": 120.0, "p90": 400.0, "max": 900.0},
                   "captions_ms": {"median": 100.0, "p90": 300.0, "max": 800.0}}
        with open(env["FASHION_PICK_TIMINGS"], "w") as fh:
            json.dump(timings, fh)
        return subprocess.CompletedProcess(command, 0, "1 passed", "")

    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    result = bench.bench_explorer(n=44_000)
    assert result["n_items"] == 44_000 and result["met"] and result["goal_ms"] == 300.0
    command, env = calls[0]
    assert command[-1].endswith("test_browser.py::test_pick_time_in_voila")
    assert env["FASHION_PICK_FULL_SIZE"] == "1"
    assert bench.bench_explorer(n=5, full_size=False) and calls[1][1]["FASHION_PICK_FULL_SIZE"] == "0"

    monkeypatch.setattr(bench.subprocess, "run", lambda command, **_: subprocess.CompletedProcess(
        command, 5, "no tests ran: skipped (Chromium not found)", ""))
    with pytest.raises(RuntimeError, match="(?s)exit 5.*Chromium not found"):
        bench.bench_explorer(n=10)
