"""Where a run reads and writes: every catalog keeps its own data, models and reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from fashion_utils import config


@pytest.mark.parametrize("quick", [False, True])
def test_every_catalog_reports_in_its_own_folder(tmp_path, quick):
    default = config.Paths(data_dir=tmp_path / "raw" / config.DEFAULT_CATALOG_NAME,
                           root=tmp_path, quick=quick)
    other = config.Paths(data_dir=tmp_path / "shop" / "my_catalog", root=tmp_path, quick=quick)
    top = tmp_path / "reports" / ("quick" if quick else "")
    for paths, name in ((default, config.DEFAULT_CATALOG_NAME), (other, "my_catalog")):
        assert paths.reports == top / name
        assert (paths.figures, paths.metrics, paths.executed) == (
            top / name / "figures", top / name / "metrics", top / name / "executed")
    mine = [other.interim, other.processed, other.models, other.reports, other.executed]
    theirs = [default.interim, default.processed, default.models, default.reports,
              default.executed]
    for path in mine:  # nothing the other catalog writes lands in the default's folders
        parts = Path(path).relative_to(tmp_path).parts
        assert any(part in ("my_catalog", "my_catalog-quick") for part in parts), path
        assert path not in theirs and not any(t in path.parents for t in theirs)


def test_get_paths_creates_the_catalogs_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("FASHION_OUTPUT_ROOT", str(tmp_path / "out"))
    paths = config.get_paths(tmp_path / "real", quick=True)
    assert paths.catalog == "real"
    for folder in (paths.interim, paths.processed, paths.features, paths.models,
                   paths.figures, paths.metrics, paths.executed):
        assert folder.is_dir() and (tmp_path / "out") in folder.parents


@pytest.mark.parametrize("target,expected", [(None, "04_tuning"),
                                             (config.DEFAULT_TARGET, "04_tuning"),
                                             ("articleType", "04_tuning-articleType")])
def test_named_for_target_adds_a_target_other_than_the_default(target, expected):
    assert config.named_for_target("04_tuning", target=target) == expected


@pytest.mark.parametrize("name", ["", None, 4])
def test_named_for_target_needs_a_name(name):
    with pytest.raises(ValueError, match=f"Received: name={name!r}"):
        config.named_for_target(name)


@pytest.mark.parametrize("short_side, expected", [
    (28, 96), (60, 96), (96, 96), (127, 96), (128, 128), (170, 160), (225, 224), (1800, 224),
    (150.5, 128)])
def test_catalog_image_size_rounds_the_images_side_down_within_96_to_224(short_side, expected):
    assert config.catalog_image_size(short_side) == expected


def test_catalog_image_size_is_a_multiple_of_32_within_bounds_and_grows_with_the_side():
    sizes = [config.catalog_image_size(side) for side in range(1, 3000, 7)]
    assert all(s % 32 == 0 and config.DEFAULT_IMAGE_SIZE <= s <= config.MAX_IMAGE_SIZE
               for s in sizes)
    assert sizes == sorted(sizes)


@pytest.mark.parametrize("bad", [0, -5, float("nan"), "225", None, True])
def test_catalog_image_size_refuses_what_is_not_a_side(bad):
    with pytest.raises(ValueError, match="short_side must be a positive number"):
        config.catalog_image_size(bad)


def test_display_path_hides_the_machines_folders(monkeypatch, tmp_path):
    """Issue 30: printed paths name no folder of this machine: project-relative, ``~/``, or the
    last two parts after ``…/``."""
    monkeypatch.setattr(Path, "home", classmethod(lambda cls: tmp_path / "home"))
    model = config.PROJ_ROOT / "models" / "fashion-mnist" / "kept_articleType.keras"
    assert config.display_path(model) == "models/fashion-mnist/kept_articleType.keras"
    assert config.display_path(str(config.PROJ_ROOT)) == "."
    assert config.display_path(tmp_path / "home" / "data" / "x.csv") == "~/data/x.csv"
    outside = "/srv/run-7/reports/metrics/01_eda.json"
    assert config.display_path(outside) == "…/metrics/01_eda.json"
    assert config.display_path("data/raw/x.png") == "data/raw/x.png"  # relative: as it is
    with pytest.raises(ValueError, match="Received: path=3"):
        config.display_path(3)


def test_importing_tensorflow_through_the_package_prints_nothing_on_stderr():
    """TensorFlow 2.21's abseil start-up lines ignore TF_CPP_MIN_LOG_LEVEL; the package's first
    import of Keras silences them (and a Python warning still shows)."""
    import subprocess
    import sys

    code = ("import fashion_utils.vision.models, warnings, tensorflow as tf; "
            "tf.constant(1); warnings.warn('still shown')")
    err = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, check=True).stderr
    assert "absl" not in err and "oneDNN" not in err and "I0000" not in err, err
    assert "UserWarning: still shown" in err


def test_tensorflows_retracing_notice_is_dropped_and_other_records_pass(caplog):
    """A model per trial or seed traces its own predict step once: no "retracing" notice."""
    import logging

    logger = logging.getLogger("tensorflow")
    with caplog.at_level(logging.WARNING, logger="tensorflow"):
        logger.warning("5 out of the last 5 calls to <function f> triggered tf.function "
                       "retracing. Tracing is expensive")
        logger.warning("a record that matters")
    assert [r.getMessage() for r in caplog.records] == ["a record that matters"]
