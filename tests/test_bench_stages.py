"""The scale benchmark's light stages: each in a fresh process, with its own peak RSS."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fashion_utils.tools.bench import stages, synthetic
from fashion_utils.tools.bench.measure import run_isolated


@pytest.fixture
def tiny_synthetic(tmp_path):
    """A 30-product synthetic catalog with 120x160 pictures from a pool of 4."""
    return synthetic.make_synthetic_kaggle_catalog(tmp_path / "cat", n=30, image_size=(120, 160),
                                                   pool_size=4)


def test_stages_run_isolated_report_their_own_peak_rss(tiny_synthetic, tmp_path):
    """The loading stage in a fresh process (no TensorFlow): a peak RSS comes back."""
    res = run_isolated(stages.measure_loading, data_dir=str(tiny_synthetic),
                       cache_dir=str(tmp_path / "c"))
    assert res["n_kept"] == 30 and res["peak_rss_mib"] > 10
    assert res["own_peak_rss_mib"] > 10
    assert res["peak_rss_mib"] < 400  # its own work: no TensorFlow, no parent's memory


def test_the_stage_module_imports_no_tensorflow():
    """A spawned stage imports this module to find its function: TensorFlow (or the index)
    imported there would count in the light stages' peak RSS."""
    code = ("import sys, fashion_utils.tools.bench.stages; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'faiss') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=300)
    assert done.stdout.strip() == "[]"


def test_decode_stage_times_both_decoders(tiny_synthetic):
    res = stages.measure_decode(data_dir=str(tiny_synthetic), image_size=32, n_images=5)
    assert res["n_images"] == 5 and res["full_decode_ms"] > 0 and res["dct_scaled_decode_ms"] > 0
    assert res["speedup"] > 0
