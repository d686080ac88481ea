"""The extraction benchmark: its table (docs/BENCHMARKS.md) and its option checks (the runs are
heavy)."""

from __future__ import annotations

import pytest

from fashion_utils.tools.bench import extraction


def _result() -> dict:
    per_size = {"32": {"streamed_images_per_s": 1826.4, "model_only_images_per_s": 3372.0,
                       "streamed_over_model_only": 0.5416, "naive_images_per_s": 12.6,
                       "streamed_over_naive": 145.0, "n_images": 20000, "peak_rss_mib": 900.0}}
    runs = {"10000": {"seconds": 36.2, "cached_rerun_seconds": 0.012, "peak_rss_mib": 1406.3},
            "70000": {"seconds": 180.4, "cached_rerun_seconds": 0.031, "peak_rss_mib": 1874.0}}
    return {"backbone": "efficientnet_lite0", "batch_size": 256, "per_size": per_size,
            "catalog_at_default_size": {"image_size": 96, "runs": runs}}


def test_extraction_markdown_is_the_page_table():
    table = extraction.extraction_markdown(_result()).splitlines()
    assert table[0].startswith("| image size | streamed from disk (img/s) |")
    assert table[2] == "| 32 px | 1,826 | 3,372 | 0.54 | 13 | 145x |"
    assert "Whole catalog at 96 px:" in table
    assert table[-2:] == ["| 10,000 | 36 | 0.01 | 1,406 |", "| 70,000 | 180 | 0.03 | 1,874 |"]


@pytest.mark.parametrize("kwargs, match", [
    (dict(sizes=(32, 4)), "sizes must be an integer >= 8. Received: sizes=4"),
    (dict(batch_size=0), "batch_size must be an integer >= 1. Received: batch_size=0"),
    (dict(full_size=2.5), "full_size must be an integer >= 8. Received: full_size=2.5"),
])
def test_bench_extraction_rejects_bad_options_before_running(kwargs, match):
    with pytest.raises(ValueError, match=match):
        extraction.bench_extraction(**kwargs)
