"""Catalogs that are not the fashion one: their label columns, and the quick study 01–06 on a
folder per class and on a CSV of other labels, both with ``TARGET=label`` (ids with ``/``,
spaces and accents)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from fashion_utils import config, notebook
from fashion_utils.catalog import data, image_files, sampling
from fashion_utils.tools import runner

from conftest import build_csv_catalog, build_folder_catalog, code_outputs, run_quick_study

BUILDERS = {"folder": build_folder_catalog, "csv": build_csv_catalog}
MAX_NOTEBOOK_BYTES = 3 * 2**20
#: Passed to every notebook of both studies: a few augmented copies per class, one trial per
#: search (what differs between catalog kinds is labels and ids, not the search); the CSV study
#: also trains no recipe on images (the folder study and tests/test_notebooks.py run them): its
#: 04 keeps the head on the frozen backbone, refit on train + validation.
TRIMMED = {"TARGET": "label", "AUGMENT_TO": 12, "MAX_TRIALS": 1}
PASSED = {"folder": TRIMMED, "csv": {**TRIMMED, "RECIPES": {}}}


# --------------------------------------------------------------------------- the label columns


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_a_catalog_of_other_labels_has_its_target_as_label_column(kind, tmp_path):
    catalog, _ = data.load_catalog(BUILDERS[kind](tmp_path / kind, n_per_class=2))
    assert notebook.label_columns(catalog, target="label") == ["label"]
    assert notebook.label_columns(catalog) == ["label"]  # no target: its "label" column
    assert notebook.label_columns(catalog, target="label", attributes=["gender"]) == ["label"]
    with pytest.raises(ValueError, match="Received: target='masterCategory'"):
        notebook.label_columns(catalog, target="masterCategory")


def test_a_fashion_catalog_has_its_hierarchy_finest_first_then_the_target(tiny_kaggle_dir):
    catalog, _ = data.load_catalog(tiny_kaggle_dir)
    hierarchy = ["articleType", "subCategory", "masterCategory"]
    assert notebook.label_columns(catalog, target="masterCategory") == hierarchy
    assert notebook.label_columns(catalog, target="gender") == [*hierarchy, "gender"]
    assert notebook.label_columns(catalog) == hierarchy
    attributes = ["gender", "masterCategory", "baseColour", "not a column"]
    assert notebook.label_columns(catalog, target="articleType", attributes=attributes) == [
        "gender", "masterCategory", "baseColour", "articleType"]  # 06's heads, in their order


def test_without_any_label_column_the_error_names_what_was_looked_for():
    with pytest.raises(ValueError, match="none of the label columns"):
        notebook.label_columns(pd.DataFrame({"id": ["1"], "colour": ["red"]}))


# --------------------------------------------------------------------------- the quick study



@pytest.fixture(scope="module", params=sorted(BUILDERS))
def study(request, tmp_path_factory):
    """One quick study per catalog kind: (its paths, the executed notebooks)."""
    base = tmp_path_factory.mktemp(f"{request.param}-study")
    catalog_dir = BUILDERS[request.param](base / "catalog", n_per_class=15, image_size=32)
    passed = {"DATA_DIR": str(catalog_dir), **PASSED[request.param]}
    executed = run_quick_study(base / "out", passed)
    return config.Paths(data_dir=catalog_dir, root=base / "out", quick=True), executed


@pytest.mark.notebooks
def test_every_notebook_runs_and_draws(study):
    _, executed = study
    # another target than the default: each executed copy says so in its name
    expected = [runner.executed_name(p, target=TRIMMED["TARGET"]) for p in runner.notebook_paths()]
    assert [p.name for p in executed] == expected and all("-label" in n for n in expected)
    for path in executed:
        outputs = code_outputs(path)
        errors = [o for o in outputs if o.get("output_type") == "error"]
        assert not errors, f"{path.name}: {errors[:1]}"
        assert any("image/png" in o.get("data", {}) for o in outputs), f"{path.name}: no figure"
        assert path.stat().st_size < MAX_NOTEBOOK_BYTES, f"{path.name}: {path.stat().st_size:,} B"


@pytest.mark.notebooks
def test_the_label_columns_are_the_catalogs_own(study):
    paths, _ = study
    eda = json.loads((paths.metrics / "01_eda.json").read_text())
    assert eda["target"] == "label" and len(eda["target_classes"]) == 4
    multi = json.loads((paths.metrics / "06_multi_output.json").read_text())
    assert multi["targets"] == ["label"]
    baseline = json.loads((paths.metrics / "03_baseline_cnn-label.json").read_text())
    assert baseline["n_classes"] == 4


@pytest.mark.notebooks
def test_augmented_copies_are_flat_safe_files_named_after_their_ids(study):
    paths, _ = study
    sample = sampling.load_study_sample(paths, target="label")
    copies = sample[sample["augmented"]]
    assert len(copies) > 0
    folder = paths.interim / "augmented" / "label"
    files = sorted(folder.glob("*.png"))
    assert len(files) == len(copies) and not [p for p in folder.iterdir() if p.is_dir()]
    assert {image_files.stem_to_id(p.stem) for p in files} == set(copies["id"])


@pytest.mark.notebooks
def test_the_frozen_head_alone_is_kept_refit_and_05_judges_its_train_only_model(study):
    """The CSV study trains no recipe on images: 04 keeps the frozen candidate, saves it with
    its head retrained on train + validation (the file check agrees), and 05's choice on
    validation embeds with the train-only model validation chose, not the refit one."""
    paths, _ = study
    if not paths.data_dir.parent.name.startswith("csv"):
        pytest.skip("the folder study trains the recipes on images too")
    tuning = json.loads((paths.metrics / "04_tuning-label.json").read_text())
    ft = tuning["kept_model"]
    assert ft["recipe"] == "frozen backbone" and list(ft["choice"]["scores"]) == [
        ft["chosen_recipe"]]
    assert ft["refit_images"] == tuning["n_train"] + tuning["n_val"] > ft["train_images"]
    assert ft["model_path"].endswith("frozen_label_refit.keras")
    train_only = ft["recipes"][ft["chosen_recipe"]]["model_path"]
    assert train_only.endswith("frozen_label.keras") and Path(train_only).is_file()
    kept = tuning["test"][f"kept: {ft['chosen_recipe']}, head refit on train + validation"]
    # the best search's head retrained: one model, scored from the files
    assert kept["accuracy"] == tuning["test"][tuning["best_search"]]["accuracy"]
    check = ft["user_check"]
    assert check["correct_from_file"] == check["correct_in_notebook"] and check["images"] > 0
    rec = json.loads((paths.metrics / "05_recommendation.json").read_text())
    assert rec["kept_model"] == ft["saved_model"]
    assert rec["embedding_choice"]["kept_judged_with"] == train_only
