"""Integration: the quick study on real Kaggle photos (``../shared/real_kaggle_sample``).

The sample (2,946 real products of the Kaggle catalog, 225x300 JPEGs) lives outside the
project; set ``FASHION_REAL_SAMPLE`` to another copy. Without it the whole module is skipped
with the reason.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from fashion_utils import config
from fashion_utils.tools import runner

REAL = Path(os.environ.get("FASHION_REAL_SAMPLE",
                           config.PROJ_ROOT.parent / "shared" / "real_kaggle_sample")).resolve()
MAX_NOTEBOOK_BYTES = 3 * 2**20  # an executed notebook stays readable on a real catalog

pytestmark = [
    pytest.mark.notebooks,
    pytest.mark.skipif(not (REAL / "styles.csv").is_file(),
                       reason=f"the real Kaggle sample is not at {REAL} "
                              f"(set FASHION_REAL_SAMPLE to run this test)"),
]


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("real-quick")
    mp = pytest.MonkeyPatch()
    mp.setenv("FASHION_OUTPUT_ROOT", str(root))
    try:
        executed = runner.run_notebooks(quick=True, parameters={"DATA_DIR": str(REAL)},
                                        output_dir=root / "executed", html=False)
    finally:
        mp.undo()
    paths = config.Paths(data_dir=REAL, root=root, quick=True)
    return paths, executed


def test_every_notebook_runs_on_real_photos(real_run):
    paths, executed = real_run
    assert [p.name for p in executed] == [p.name for p in runner.notebook_paths()]
    for path in executed:
        cells = json.loads(path.read_text())["cells"]
        outputs = [o for c in cells if c["cell_type"] == "code" for o in c.get("outputs", [])]
        assert not [o for o in outputs if o.get("output_type") == "error"], path.name


def test_executed_notebooks_stay_small_on_a_real_catalog(real_run):
    """Figures are bounded (plots.MAX_CLASSES, THUMBNAIL_PX, MAX_FIGURE_PX): measured 0.8 MB
    (01) and 2.7 MB (05, the largest) with 105 article types."""
    _, executed = real_run
    sizes = {path.name: path.stat().st_size for path in executed}
    assert max(sizes.values()) < MAX_NOTEBOOK_BYTES, sizes


def test_the_real_catalog_is_loaded_with_every_row_accounted_for(real_run):
    paths, _ = real_run
    eda = json.loads((paths.metrics / "01_eda.json").read_text())
    assert eda["n_rows_read"] == eda["n_kept"] + eda["n_excluded"]
    assert eda["n_kept"] == 2946 and eda["n_repaired"] == 22
    assert eda["excluded_counts"] == {"missing image file": 19}


def test_one_split_keeps_every_test_item_away_from_training(real_run):
    """The real catalog has no split column: 02 draws one for the catalog, and neither 03/04's
    study sample nor 05's queries put a test item on the training or validation side."""
    paths, _ = real_run
    split = pd.read_csv(paths.processed / "splits.csv", dtype=str)
    test_ids = set(split.loc[split["split"] == "test", "id"])
    assert 0.15 < len(test_ids) / len(split) < 0.25
    sample = pd.read_csv(paths.processed / "study_sample.csv", dtype=str)
    fitted = set(sample.loc[sample["split"].isin(["train", "val"]), "source_id"])
    assert not fitted & test_ids
    classifier = json.loads((paths.metrics / "03_baseline_cnn.json").read_text())
    assert 0.0 <= classifier["accuracy"] <= 1.0 and classifier["n_test"] >= 1
