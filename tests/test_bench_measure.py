"""The benchmarks' measuring helper: fresh processes, peak RSS, CPU time, results files."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from fashion_utils import config, provenance
from fashion_utils.tools.bench import measure

MIB = 2**20


def _light() -> dict:
    """A child that allocates nothing on purpose."""
    return {"light": True}


def _allocate(*, mib: int) -> dict:
    """A child that touches ``mib`` MiB (``np.ones`` writes every page), then frees it; it
    reports its own RSS before (another child's baseline differs by a few pages)."""
    before = measure.rss_mib()
    block = np.ones(mib * MIB, dtype=np.uint8)
    total = int(block[::4096].sum())
    del block
    return {"touched_pages": total, "rss_before_mib": before}


def _fail() -> dict:
    raise KeyError("no such thing")


def test_peak_rss_of_a_child_counts_its_own_allocation():
    """A child that allocates 200 MiB reports a peak at least 200 MiB above a light child's,
    and a light child does not inherit its parent's peak (the ``ru_maxrss`` trap)."""
    parent_ballast = np.ones(300 * MIB, dtype=np.uint8)  # the parent's peak is now >= 300 MiB
    light = measure.run_isolated(_light)
    heavy = measure.run_isolated(_allocate, mib=200)
    parent_peak = measure.peak_rss_mib()
    del parent_ballast
    assert light["light"] is True and heavy["touched_pages"] == 200 * MIB // 4096
    # its peak holds the 200 MiB on top of what it held before, up to the interpreter's own
    # pages coming and going (measured: 0.06 MiB short of its baseline, 0.1 MiB short of a
    # light child's, on an AVX2 machine; a peak that missed the allocation would be ~80 MiB)
    assert heavy["peak_rss_mib"] - heavy["rss_before_mib"] >= 199
    assert heavy["peak_rss_mib"] - light["peak_rss_mib"] >= 198
    assert light["peak_rss_mib"] < parent_peak - 250  # its own address space, not the parent's


def test_peak_and_current_rss_in_this_process():
    before = measure.rss_mib()
    block = np.ones(64 * MIB, dtype=np.uint8)
    during = measure.rss_mib()
    assert during - before >= 60
    assert measure.peak_rss_mib() >= during - 0.1  # the peak is at least the current size
    assert measure.peak_rss_mib() == round(measure.peak_rss_mib(), 1)
    del block


def test_run_isolated_reports_the_child_error():
    with pytest.raises(RuntimeError, match="_fail.*KeyError.*no such thing"):
        measure.run_isolated(_fail)


def test_cpu_seconds_counts_work_not_sleep():
    start = measure.cpu_seconds()
    time.sleep(0.3)
    slept = measure.cpu_seconds() - start
    start = measure.cpu_seconds()
    x = np.random.default_rng(0).standard_normal(200_000)
    while measure.cpu_seconds() - start < 0.2:
        x = np.sort(x)
    assert slept < 0.15
    assert measure.cpu_seconds() - start >= 0.2


def test_load_average_and_machine_info():
    loads = measure.load_averages()
    assert len(loads) == 3 and all(v >= 0 and v == round(v, 2) for v in loads)
    assert measure.load_average() >= 0
    info = measure.machine_info()
    assert set(info) == {"cpus", "platform", "python", "date"} and info["cpus"] >= 1
    json.dumps(info)


def test_write_results_merges_sections_atomically(tmp_path):
    path = tmp_path / "reports" / "benchmarks.json"
    measure.write_results("one", {"a": 1}, path=path)
    measure.write_results("two", {"b": [1, 2]}, path=path)
    data = json.loads(path.read_text())
    assert data["one"] == {"a": 1} and data["two"] == {"b": [1, 2]}
    assert set(data["machine"]) == {"cpus", "platform", "python", "date"}
    measure.write_results("one", {"a": 3}, path=path, machine=False)
    assert json.loads(path.read_text())["one"] == {"a": 3}
    assert sorted(p.name for p in path.parent.iterdir()) == ["benchmarks.json"]  # no temp left
    assert path.read_text().endswith("}\n")
    with pytest.raises(ValueError,
                       match="section must be a non-empty string. Received: section=''"):
        measure.write_results("", {}, path=path)


def test_default_results_file_is_the_repository_report():
    assert measure.benchmarks_path().parts[-2:] == ("reports", "benchmarks.json")


def test_update_page_replaces_only_the_section_between_its_markers(tmp_path):
    page = tmp_path / "BENCHMARKS.md"
    start, end = measure.page_markers("scale")
    assert (start, end) == ("<!-- bench:scale:start -->", "<!-- bench:scale:end -->")
    other = "<!-- bench:extraction:start -->\nkeep me\n<!-- bench:extraction:end -->"
    page.write_text(f"# Title\n\n{other}\n\n{start}\nold table\n{end}\n\nTail – ünïcode\n",
                    encoding="utf-8")
    assert measure.update_page("| new | table |", page=page, section="scale") == page
    text = page.read_text(encoding="utf-8")
    assert f"{start}\n| new | table |\n{end}" in text and "old table" not in text
    assert other in text and text.startswith("# Title") and text.endswith("Tail – ünïcode\n")
    with pytest.raises(ValueError,
                       match="BENCHMARKS.md lacks the markers <!-- bench:recommender:start"):
        measure.update_page("x", page=page, section="recommender")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["BENCHMARKS.md"]


def test_each_table_has_one_page_that_holds_its_markers_once():
    """``BENCH_PAGES`` is where a section's table lives: each page exists in the repository
    and holds that section's markers exactly once, in order; no page holds another section's."""
    assert measure.BENCH_PAGES == {"extraction": "docs/BENCHMARKS.md",
                                   "scale": "docs/BENCHMARKS.md",
                                   "training": "docs/BENCHMARKS.md",
                                   "explorer": "docs/EXPLORER.md"}
    pages = {measure.bench_page(section) for section in measure.BENCH_PAGES}
    for section in measure.BENCH_PAGES:
        start, end = measure.page_markers(section)
        page = measure.bench_page(section)
        assert page == config.PROJ_ROOT / measure.BENCH_PAGES[section]
        text = page.read_text(encoding="utf-8")
        assert text.count(start) == 1 and text.count(end) == 1, (section, page)
        assert text.index(start) < text.index(end)
        for other in pages - {page}:
            assert start not in other.read_text(encoding="utf-8"), (section, other)
    readme = (config.PROJ_ROOT / "README.md").read_text(encoding="utf-8")
    assert "<!-- bench:" not in readme  # the README holds no benchmark table
    with pytest.raises(ValueError, match="one with a table.*Received: section='recommender'"):
        measure.bench_page("recommender")


def test_the_pages_make_bench_rewrites_do_not_make_the_source_dirty():
    """A run of ``make bench`` rewrites its tables: like the README's generated blocks, those
    pages are run outputs, not a change to the code (``provenance.RUN_OUTPUTS``)."""
    assert set(measure.BENCH_PAGES.values()) <= set(provenance.RUN_OUTPUTS)
