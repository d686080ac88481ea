"""The explorer bench: its errors, and what it adds to the browser test's timings."""

from __future__ import annotations

import json
import subprocess

import pytest

from fashion_utils.tools.bench import explorer as bench


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
    assert env["FASHION_PICK_CATALOG_ROOT"].endswith("data/bench")
    assert bench.bench_explorer(n=5, full_size=False) and calls[1][1]["FASHION_PICK_FULL_SIZE"] == "0"

    monkeypatch.setattr(bench.subprocess, "run", lambda command, **_: subprocess.CompletedProcess(
        command, 5, "no tests ran: skipped (Chromium not found)", ""))
    with pytest.raises(RuntimeError, match="(?s)exit 5.*Chromium not found"):
        bench.bench_explorer(n=10)


def test_the_page_lines_name_the_catalog_the_goal_and_the_verdict():
    result = {"picks": 12, "front_end": "voila", "browser": "chromium (headless)", "n_items": 44_000,
              "image_size": [1800, 2400], "dim": 1280, "goal_ms": 300.0, "met": False,
              "load_average": [0.31, 0.5, 0.6],
              "captions_ms": {"median": 250.4, "p90": 290.0, "max": 340.0},
              "decoded_ms": {"median": 310.2, "p90": 350.0, "max": 420.0}}
    text = bench.explorer_markdown(result)
    assert "12 picks in Voila" in text and "44,000 products with 1800×2400 JPEGs" in text
    assert "is **missed**" in text and "Load average before the run 0.31" in text
    assert "| every image decoded | 310 | 350 | 420 |" in text
