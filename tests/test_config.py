"""Where a run reads and writes: every catalog keeps its own data, models and reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from fashion_utils import config


@pytest.mark.parametrize("quick", [False, True])
def test_the_default_catalog_reports_at_the_top_and_others_in_their_own_folder(tmp_path, quick):
    default = config.Paths(data_dir=tmp_path / "raw" / config.DEFAULT_CATALOG_NAME,
                           root=tmp_path, quick=quick)
    other = config.Paths(data_dir=tmp_path / "shop" / "my_catalog", root=tmp_path, quick=quick)
    top = tmp_path / "reports" / ("quick" if quick else "")
    assert default.metrics == top / "metrics" and default.figures == top / "figures"
    assert other.metrics == top / "my_catalog" / "metrics"
    assert other.figures == top / "my_catalog" / "figures"
    assert other.executed.parent == default.executed and other.executed.name == "my_catalog"
    mine = [other.interim, other.processed, other.models, other.reports, other.executed]
    theirs = [default.interim, default.processed, default.models, default.reports,
              default.executed]
    for path in mine:  # nothing the other catalog writes lands in the default's folders
        parts = Path(path).relative_to(tmp_path).parts
        assert any(part in ("my_catalog", "my_catalog-quick") for part in parts), path
        assert path not in theirs


def test_get_paths_creates_the_catalogs_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("FASHION_OUTPUT_ROOT", str(tmp_path / "out"))
    paths = config.get_paths(tmp_path / "real", quick=True)
    assert paths.catalog == "real"
    for folder in (paths.interim, paths.processed, paths.features, paths.models,
                   paths.figures, paths.metrics, paths.executed):
        assert folder.is_dir() and (tmp_path / "out") in folder.parents
