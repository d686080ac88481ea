"""The scale benchmark: the plumbing of ``bench_scale``, its stages and its table
(docs/BENCHMARKS.md)."""

from __future__ import annotations

import json

import pytest

from fashion_utils.tools.bench import scale


def test_bench_scale_plumbing_on_a_tiny_catalog(tmp_path):
    result = scale.bench_scale(n=16, subset=8, image_size=32, full_image_size=(64, 80),
                               small_image_size=(16, 20), pool_size=3, n_queries=4, weights=None,
                               root=tmp_path, isolated=False, log=lambda _: None)
    json.dumps(result)  # JSON-able
    assert set(result["runs"]) == {"full-64x80", "small-16x20"}
    assert set(result["runs"]["full-64x80"]) == {"8", "16"}
    for sizes in result["runs"].values():
        for size, stages in sizes.items():
            assert set(stages) == {"load_cold", "load_cached", "extract", "index"}
            assert stages["load_cold"]["n_kept"] == int(size)
            assert stages["load_cold"]["n_from_cache"] == 0
            assert stages["load_cached"]["n_from_cache"] == int(size)
            assert stages["extract"]["feature_shape"] == [int(size), 1280]
            assert "feature_cache" not in stages["extract"]  # handed to the index stage only
            assert stages["index"]["n"] == int(size) and stages["index"]["n_queries"] == 4
            assert stages["load_cold"]["cpu_seconds"] >= 0
            assert stages["extract"]["own_peak_rss_mib"] > 10
    summary = result["summary"]
    assert summary["extrapolated_to_n"]["extract"] == pytest.approx(
        2 * result["runs"]["full-64x80"]["8"]["extract"]["seconds"], abs=0.11)
    assert "meets_time_target" in summary
    assert set(result["catalogs"]) == {"full-64x80-8", "full-64x80-16", "small-16x20-16"}
    table = scale.scale_markdown(result)
    assert table.count("\n| full-64x80 |") == 8 and "small-16x20" in table


def test_bench_scale_rejects_a_subset_not_smaller_than_n(tmp_path):
    with pytest.raises(ValueError, match="subset must be smaller"):
        scale.bench_scale(n=10, subset=10, root=tmp_path, isolated=False)


@pytest.mark.parametrize("kwargs, match", [
    (dict(n=0), "n must be an integer >= 1. Received: n=0"),
    (dict(n=10, subset=0), "subset must be an integer >= 1. Received: subset=0"),
    (dict(n=10, subset=None, measure_full=False), "Nothing to measure"),
    (dict(n=10, subset=None, n_queries=0),
     "n_queries must be an integer >= 1. Received: n_queries=0"),
    (dict(n=10, subset=None, full_image_size=(4, 4)),
     "full_image_size must be \\(width, height\\)"),
])
def test_bench_scale_rejects_bad_options_before_making_anything(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        scale.bench_scale(root=tmp_path, isolated=False, log=lambda _: None, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_scale_markdown_shows_dashes_for_unknown_figures():
    stage = {"seconds": 1.0, "cpu_seconds": None, "load_average": None, "own_peak_rss_mib": None,
             "peak_rss_mib": None}
    result = {"image_size": 96, "n": 4, "subset": None, "note": "A note.", "runs": {"full-8x8": {
        "4": {"load_cold": stage, "load_cached": stage,
              "extract": {**stage, "images_per_s": 10.0, "cached_rerun_seconds": 0.01},
              "index": {**stage, "build_seconds": 0.5, "n_queries": 3, "query_p50_ms": 1.0}}}}}
    table = scale.scale_markdown(result)
    row = "| full-8x8 | 4 | index build | 0.5 (+ 3 queries: p50 1.0 ms each) | – | – | – |"
    assert row in table
    assert table.endswith("_A note. Peak RSS: each stage's own process (VmHWM)._")
