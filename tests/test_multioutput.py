"""The multi-output classifier: encoders, the masked loss (checked by hand), training, evaluation."""

from __future__ import annotations

import csv

import keras
import numpy as np
import pandas as pd
import pytest

from fashion_utils.training import multioutput as mo
from fashion_utils.catalog.data import load_catalog

KAGGLE_COLUMNS = ["id", "gender", "masterCategory", "subCategory", "articleType", "baseColour",
                  "season", "year", "usage", "productDisplayName"]
TARGETS = ["gender", "masterCategory", "subCategory", "articleType", "baseColour", "season", "usage"]


@pytest.fixture
def kaggle_with_gaps(make_kaggle_dir):
    """``make_kaggle_dir``'s 24 products with empty values written into several attribute columns."""
    root = make_kaggle_dir("gappy")
    with open(root / "styles.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    blanks = {1: ["usage", "season"], 5: ["baseColour"], 9: ["usage"], 14: ["gender", "season"], 20: ["usage"]}
    for line, columns in blanks.items():
        for column in columns:
            rows[line][KAGGLE_COLUMNS.index(column)] = ""
    with open(root / "styles.csv", "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    return root


# --------------------------------------------------------------------------- encoders


def test_encoders_on_a_kaggle_catalog_with_empty_values(kaggle_with_gaps):
    catalog, report = load_catalog(kaggle_with_gaps)
    assert report.n_kept == 24  # rows with empty attributes are kept, not dropped
    targets = [c for c in TARGETS if catalog[c].nunique() >= 2]  # baseColour/usage are constant here
    encoders = mo.fit_label_encoders(catalog, targets)
    assert list(encoders) == targets
    y = mo.encode_targets(catalog, encoders)
    assert all(len(v) == 24 and v.dtype == np.int64 for v in y.values())
    assert (y["season"] == -1).sum() == 2 and (y["gender"] == -1).sum() == 1
    table = mo.label_summary(catalog, encoders)
    assert (table[["labelled", "missing", "unknown"]].sum(axis=1) == 24).all()
    assert table.loc["season", "missing"] == 2 and table.loc["masterCategory", "classes"] == 3


def test_encoder_round_trip_and_unknown_values():
    enc = mo.LabelEncoder("colour", ("Blue", "Red"))
    codes = enc.encode(["Red", None, " Blue ", "", np.nan, "Green"])
    assert codes.tolist() == [1, -1, 0, -1, -1, -1]
    assert enc.decode(codes).tolist() == ["Red", None, "Blue", None, None, None]
    with pytest.raises(ValueError, match="indices must be"):
        enc.decode([2])


def test_min_count_leaves_rare_classes_out():
    frame = pd.DataFrame({"a": ["x"] * 5 + ["y"] * 4 + ["z"]})
    enc = mo.fit_label_encoders(frame, ["a"], min_count=2)["a"]
    assert enc.classes == ("x", "y")
    assert mo.label_summary(frame, {"a": enc}).loc["a", "unknown"] == 1


@pytest.mark.parametrize("columns, match", [([], "at least one column"), (["nope"], "lacks column"),
                                            (["a", "a"], "distinct"), (["const"], "fewer than 2 classes")])
def test_fit_label_encoders_rejects_bad_input(columns, match):
    frame = pd.DataFrame({"a": ["x", "y"], "const": ["c", "c"]})
    with pytest.raises(ValueError, match=match):
        mo.fit_label_encoders(frame, columns)


def test_encoders_save_and_load(tmp_path):
    encoders = {"a": mo.LabelEncoder("a", ("p", "q")), "b": mo.LabelEncoder("b", ("r", "s", "t"))}
    path = mo.save_encoders(encoders, tmp_path / "enc" / "encoders.json")
    assert mo.load_encoders(path) == encoders
    assert not list(path.parent.glob(".*tmp*"))


# --------------------------------------------------------------------------- the masked loss


def test_masked_loss_equals_the_mean_over_labelled_rows_by_hand():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [0.25, 0.25, 0.5]], np.float32)
    labels = np.array([0, -1, 2, -1])
    by_hand = -(np.log(0.7) + np.log(0.4)) / 2  # rows 0 and 2 only
    loss = float(mo.MaskedSparseCategoricalCrossentropy()(labels, probs))
    assert loss == pytest.approx(by_hand, rel=1e-5)
    labelled_only = float(keras.losses.SparseCategoricalCrossentropy()(labels[[0, 2]], probs[[0, 2]]))
    assert loss == pytest.approx(labelled_only, rel=1e-5)


def test_masked_loss_matches_the_plain_loss_without_missing_labels_and_is_zero_with_none():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=16).astype(np.float32)
    labels = rng.integers(0, 4, 16)
    plain = float(keras.losses.SparseCategoricalCrossentropy()(labels, probs))
    assert float(mo.MaskedSparseCategoricalCrossentropy()(labels, probs)) == pytest.approx(plain, rel=1e-5)
    assert float(mo.MaskedSparseCategoricalCrossentropy()(np.full(16, -1), probs)) == 0.0


def test_masked_loss_with_logits_and_column_labels():
    logits = np.array([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]], np.float32)
    labels = np.array([[1], [-1], [0]])
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    by_hand = -(np.log(probs[0, 1]) + np.log(probs[2, 0])) / 2
    loss = mo.MaskedSparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    assert float(loss) == pytest.approx(by_hand, rel=1e-5)


def test_masked_accuracy_ignores_unlabelled_rows():
    metric = mo.MaskedSparseCategoricalAccuracy()
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], np.float32)
    metric.update_state(np.array([0, -1, 1, 1]), probs)  # rows 0, 2 right; row 3 wrong; row 1 ignored
    assert float(metric.result()) == pytest.approx(2 / 3)


# --------------------------------------------------------------------------- the network


def test_head_shapes_and_names():
    model = mo.build_multi_output_head(12, {"masterCategory": 3, "article type": 5}, shared_units=(8,),
                                       head_units=(4,))
    out = model(np.zeros((2, 12), np.float32))
    assert set(out) == {"masterCategory", "article type"}
    assert tuple(out["masterCategory"].shape) == (2, 3) and tuple(out["article type"].shape) == (2, 5)
    np.testing.assert_allclose(np.asarray(out["article type"]).sum(axis=1), 1.0, rtol=1e-5)
    assert "article_type" in [layer.name for layer in model.layers]


@pytest.mark.parametrize("kwargs, match", [
    (dict(input_dim=0, num_classes={"a": 2}), "input_dim"),
    (dict(input_dim=4, num_classes={}), "at least one attribute"),
    (dict(input_dim=4, num_classes={"a": 1}), "at least 2 classes"),
    (dict(input_dim=4, num_classes={"a b": 2, "a_b": 2}), "clash"),
    (dict(input_dim=4, num_classes={"a": 2}, dropout=1.0), "dropout"),
])
def test_head_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mo.build_multi_output_head(**kwargs)


def _separable_task(n: int, seed: int = 0):
    """Features whose first coordinates give each attribute; ~25% of the labels missing."""
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 3, n), rng.integers(0, 2, n)
    x = rng.normal(0, 0.3, (n, 8)).astype(np.float32)
    x[np.arange(n), a] += 3.0        # attribute "shape": coordinates 0-2
    x[:, 3] += np.where(b == 1, 3.0, -3.0)  # attribute "colour": coordinate 3
    labels = pd.DataFrame({"shape": np.array(["round", "square", "star"])[a],
                           "colour": np.array(["dark", "light"])[b]}).astype(object)
    labels.loc[rng.random(n) < 0.25, "shape"] = None
    labels.loc[rng.random(n) < 0.25, "colour"] = ""
    return x, labels


def test_a_trivially_separable_task_is_learnt_with_missing_labels():
    x, labels = _separable_task(600)
    encoders = mo.fit_label_encoders(labels.iloc[:400], ["shape", "colour"])
    model, history = mo.train_multi_output(x[:400], labels.iloc[:400], encoders=encoders, x_val=x[400:500],
                                           val_labels=labels.iloc[400:500], epochs=12, batch_size=32,
                                           learning_rate=1e-2, shared_units=(16,), head_units=(), seed=1)
    assert history["loss"][-1] < history["loss"][0]
    assert {"shape_accuracy", "val_colour_loss"} <= set(history)
    table = mo.evaluate_multi_output(model, x[500:], labels.iloc[500:], encoders=encoders)
    assert (table["accuracy"] >= 0.95).all() and (table["macro_f1"] >= 0.95).all()
    assert (table["n_labelled"] + table["n_missing"] == 100).all()  # each scored only where labelled
    pred = mo.predict_multi_output(model, x[500:505], encoders=encoders)
    assert list(pred.columns) == ["shape", "shape_p", "colour", "colour_p"] and len(pred) == 5


def test_training_is_reproducible_with_a_seed():
    x, labels = _separable_task(120)
    encoders = mo.fit_label_encoders(labels, ["shape", "colour"])
    kwargs = dict(encoders=encoders, epochs=2, batch_size=32, shared_units=(8,), head_units=(), seed=3)
    (_, h1), (_, h2) = mo.train_multi_output(x, labels, **kwargs), mo.train_multi_output(x, labels, **kwargs)
    assert h1["loss"] == h2["loss"]


def test_train_rejects_mismatched_or_half_given_inputs():
    x, labels = _separable_task(40)
    encoders = mo.fit_label_encoders(labels, ["shape"])
    with pytest.raises(ValueError, match="differ in length"):
        mo.train_multi_output(x[:10], labels, encoders=encoders)
    with pytest.raises(ValueError, match="both x_val and val_labels"):
        mo.train_multi_output(x, labels, encoders=encoders, x_val=x)


def test_end_to_end_model_predicts_image_files(tiny_kaggle_dir):
    from fashion_utils.vision.backbones import load_backbone

    catalog, _ = load_catalog(tiny_kaggle_dir)
    encoders = mo.fit_label_encoders(catalog, ["masterCategory", "gender"])
    backbone = load_backbone("efficientnet_lite0", image_size=32, weights=None)
    head = mo.build_multi_output_head(backbone.output_shape[-1], {c: e.num_classes for c, e in encoders.items()},
                                      shared_units=(8,), head_units=())
    model = mo.build_multi_output_end_to_end(backbone, head, encoders=encoders, image_size=32)
    out = model(np.zeros((1, 50, 40, 3), np.float32))  # any image size
    assert tuple(out["gender"].shape) == (1, 2)
    names = {layer.name: layer.class_names for layer in model.layers if hasattr(layer, "class_names")}
    assert names["masterCategory_class_names"] == list(encoders["masterCategory"].classes)
    table = mo.predict_attributes(model, catalog["image_path"][:3], encoders=encoders, image_size=32)
    assert len(table) == 3 and set(table["masterCategory"]) <= set(encoders["masterCategory"].classes)
    with pytest.raises(ValueError, match="differ from the encoders"):
        mo.build_multi_output_end_to_end(backbone, head, encoders={"gender": encoders["gender"]}, image_size=32)
