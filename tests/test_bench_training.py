"""The training-budget benchmark (bench/training.py) on a tiny catalog, in seconds."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fashion_utils import config
from fashion_utils.catalog import data, splits
from fashion_utils.tools.bench import training

from conftest import build_kaggle_dir


def _sample(root) -> pd.DataFrame:
    """A study sample of the tiny catalog: 6 article types x 8 products, split 4/2/2."""
    catalog, _ = data.load_catalog(root)
    position = catalog.groupby("articleType").cumcount()
    catalog["split"] = np.where(position < 4, "train", np.where(position < 6, "val", "test"))
    catalog["source_id"], catalog["augmented"] = catalog["id"], False
    return catalog


def test_coarser_classes_are_the_columns_the_target_determines():
    sample = pd.DataFrame({"articleType": ["Tee", "Tee", "Shirt", "Jeans"],
                           "subCategory": ["Top", "Top", "Top", "Bottom"],
                           "masterCategory": ["Apparel"] * 4,  # one class: nothing to imply
                           "gender": ["Men", "Women", "Men", "Men"]})  # not determined
    found = training.coarser_classes(sample, target="articleType",
                                     candidates=["subCategory", "masterCategory", "gender"])
    assert found == {"subCategory": {"Jeans": "Bottom", "Shirt": "Top", "Tee": "Top"}}
    sample.loc[0, "subCategory"] = None  # a missing value disqualifies the column
    assert training.coarser_classes(sample, target="articleType",
                                    candidates=["subCategory"]) == {}


@pytest.mark.slow  # trains a tiny CNN for two epochs and predicts like a user: a few seconds
def test_measure_budget_trains_scores_once_and_counts_from_the_saved_file(tmp_path):
    sample = _sample(build_kaggle_dir(tmp_path / "catalog", n_per_type=8))
    row = training.measure_budget(sample, target="articleType", minutes=0.2,
                                  model_dir=tmp_path / "models", image_size=16, widths=(8, 16),
                                  batch_size=8, warmup_epochs=1, epochs=2, verbose=0)
    assert row["minutes"] == 0.2 and row["target"] == "articleType"
    test = row["test"]
    assert test["n_test"] == 12 and 0 <= test["ci_low"] <= test["accuracy"] <= test["ci_high"] <= 1
    check = row["user_check"]
    assert check["images"] == 12 and check["correct_from_file"] == check["correct_in_memory"]
    assert check["correct_in_memory"] == round(test["accuracy"] * 12)
    # subCategory has as many classes as articleType here (one each): nothing coarser to imply
    assert set(row["coarser"]) == {"masterCategory"}
    for scores in row["coarser"].values():  # a coarser label is right whenever the fine one is
        assert scores["accuracy"] >= test["accuracy"]
    curve = row["curve"]
    assert len(curve["minutes"]) == len(curve["val_accuracy"]) == row["settings"]["epochs_run"]
    assert (tmp_path / "models" / "scratch_articleType_0.2min.keras").is_file()
    json.dumps(row)  # JSON-able for benchmarks.json


def test_measure_budget_needs_every_side(tmp_path):
    sample = _sample(build_kaggle_dir(tmp_path / "catalog", n_per_type=8))
    with pytest.raises(ValueError, match="no test rows"):
        training.measure_budget(sample[sample["split"] != "test"], target="articleType",
                                minutes=1, model_dir=tmp_path)
    with pytest.raises(ValueError, match="minutes"):
        training.measure_budget(sample, target="articleType", minutes=0, model_dir=tmp_path)


def _result(**budget) -> dict:
    row = {"minutes": 30.0, "load_before": [0.4, 0.3, 0.2], "load_after": [1.9, 1.8, 1.5],
           "settings": {"seconds": 1790.0, "epochs_run": 24, "planned_epochs": 24},
           "val_accuracy": 0.9412,
           "test": {"accuracy": 0.9401, "ci_low": 0.9355, "ci_high": 0.9447},
           "user_check": {"images": 10000, "correct_in_memory": 9401, "correct_from_file": 9401},
           "coarser": {"masterCategory": {"accuracy": 0.998, "ci_low": 0.997, "ci_high": 0.999}},
           **budget}
    return {"catalog": "fashion-mnist", "target": "articleType", "started": "2026-12-02 11:21",
            "figure": "/x/bench_training_minutes.png", "budgets": [row]}


def test_the_page_table_has_a_row_per_budget_from_the_result():
    text = training.training_markdown(_result(retrieval={
        "whole_catalog": {"articleType": {"precision@5": 0.9312}},
        "held_out": {"articleType": {"precision@5": 0.9201}}}))
    assert "| 30 | 29.8 | 24 of 24 planned | 0.9412 | 0.9401 (0.9355–0.9447) |" in text
    assert "| 9,401 / 9,401 of 10,000 | 0.9980 (0.9970–0.9990) | 0.931 / 0.920 | 0.40 / 1.90 |" \
        in text
    assert "masterCategory implied" in text and "bench_training_minutes.png" in text
    assert "| – |" in training.training_markdown(_result())  # no retrieval measured yet


def test_retrieval_only_needs_a_measured_training_section(tmp_path):
    out = tmp_path / "benchmarks.json"
    out.write_text(json.dumps({"scale": {}}))
    with pytest.raises(ValueError, match="No training section"):
        training.bench_training(retrieval_only=True, out=out)


@pytest.mark.slow  # embeds a tiny catalog with a tiny model and evaluates retrieval
def test_retrieval_scores_are_05s_evaluation_of_the_models_embeddings(tmp_path):
    root = build_kaggle_dir(tmp_path / "catalog", n_per_type=8)
    sample = _sample(root)
    paths = config.get_paths(root)
    splits.save_splits(sample[["id", "split"]], paths)
    row = training.measure_budget(sample, target="articleType", minutes=0.2,
                                  model_dir=tmp_path / "models", image_size=16, widths=(8, 16),
                                  batch_size=8, warmup_epochs=1, epochs=2, verbose=0)
    scores = training.retrieval_scores(row["settings"]["model_path"], paths=paths,
                                       target="articleType")
    assert set(scores) == {"whole_catalog", "held_out"}
    for side in scores.values():
        assert {"articleType", "subCategory", "masterCategory"} <= set(side)
        for level in side.values():
            assert 0 <= level["precision@5"] <= 1 and level["n_queries"] == 12
    result = {"catalog": paths.catalog, "target": "articleType", "budgets": [row]}
    out = tmp_path / "benchmarks.json"
    training.add_retrieval(result, data_dir=root, out=out)
    assert json.loads(out.read_text())["training"]["budgets"][0]["retrieval"] == scores
