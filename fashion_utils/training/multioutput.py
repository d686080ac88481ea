"""Every attribute at once: one network, a head per attribute column, missing labels masked.

The catalog describes each product by several attributes (Kaggle: ``gender, masterCategory,
subCategory, articleType, baseColour, season, usage``; Fashion-MNIST: the three levels of the
product hierarchy). :func:`build_multi_output_head` puts one softmax head per attribute on a
shared trunk over the backbone's pooled features; each head has its own classes, loss and
metrics. A product without a value for some attribute is **not dropped**: its label is ``-1``
(:data:`MISSING`) and :class:`MaskedSparseCategoricalCrossentropy` leaves it out of that head's
loss (the loss is the mean over the labelled rows only), while its other labels still train the
other heads.

- :func:`fit_label_encoders` / :class:`LabelEncoder`: classes per column (from the training
  side); missing or unknown values → ``-1``;
- :func:`train_multi_output` trains on cached features (:func:`features.extract_features`);
  with one column it is the single-target model of the same recipe (for comparisons);
- :func:`evaluate_multi_output`: accuracy and macro-F1 per attribute, on the rows that have
  the label;
- :func:`build_multi_output_end_to_end`: raw image → frozen backbone → the trained heads, with
  each output's class names inside the model (``models.ClassNames``);
  :func:`predict_attributes` runs it on image files.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import keras
import numpy as np
import pandas as pd
from keras import ops

from fashion_utils import config
from fashion_utils.vision import features
from fashion_utils.atomic import write_json_atomic
from fashion_utils.checks import positive_ints, rate
from fashion_utils.evaluation import macro_f1
from fashion_utils.progress import keras_callback
from fashion_utils.vision.models import ClassNames, check_backbone_fits_head, dense_stack

__all__ = [
    "MISSING",
    "LabelEncoder",
    "MaskedSparseCategoricalAccuracy",
    "MaskedSparseCategoricalCrossentropy",
    "build_multi_output_end_to_end",
    "build_multi_output_head",
    "compile_multi_output",
    "encode_targets",
    "evaluate_multi_output",
    "fit_label_encoders",
    "label_summary",
    "load_encoders",
    "predict_attributes",
    "predict_multi_output",
    "save_encoders",
    "train_multi_output",
]

MISSING = -1  # the label of a row without a (known) value for an attribute


# --------------------------------------------------------------------------- label encoders


def _is_missing(values: pd.Series) -> np.ndarray:
    """NaN / None / pd.NA, or a string that is empty after stripping."""
    as_text = values.astype("string").str.strip()
    return (values.isna() | as_text.isna() | (as_text == "")).to_numpy(dtype=bool)


@dataclass(frozen=True)
class LabelEncoder:
    """The classes of one attribute column; values ↔ indices, missing or unknown → ``-1``.

    Attributes:
        column: the catalog column.
        classes: class names (strings, sorted); index ``i`` is ``classes[i]``.
    """

    column: str
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes):
            raise ValueError(f"{self.column!r} needs at least 2 distinct classes. Received: "
                             f"classes={list(self.classes)!r}")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def encode(self, values: Sequence[Any] | pd.Series) -> np.ndarray:
        """Indices (int64); ``-1`` for missing values and for classes not in :attr:`classes`."""
        values = pd.Series(values).reset_index(drop=True)
        index = {c: i for i, c in enumerate(self.classes)}
        missing = _is_missing(values)
        text = values.astype("string").str.strip()
        codes = text.map(index).astype("float64").fillna(MISSING).to_numpy().astype(np.int64)
        codes[missing] = MISSING
        return codes

    def decode(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Class names (object array); ``None`` where the index is ``-1``."""
        indices = np.asarray(indices, dtype=np.int64)
        bad = (indices < MISSING) | (indices >= self.num_classes)
        if bad.any():
            raise ValueError(f"indices must be -1 or in [0, {self.num_classes}). Received: "
                             f"{np.unique(indices[bad])[:5].tolist()}")
        names = np.array(list(self.classes) + [None], dtype=object)
        return names[indices]  # -1 picks the trailing None


def fit_label_encoders(frame: pd.DataFrame, columns: Sequence[str], *,
                       min_count: int = 1) -> dict[str, LabelEncoder]:
    """One :class:`LabelEncoder` per column, from the values in ``frame`` (the training side).

    Args:
        frame: rows with the attribute columns.
        columns: the attribute columns, in the order of the model's heads.
        min_count: classes seen fewer times than this are left out (their rows encode to
            ``-1``, counted as ``unknown`` by :func:`label_summary`).

    Returns:
        ``{column: encoder}`` in the order of ``columns``.

    Raises:
        ValueError: no columns, a missing or repeated column, or a column with fewer than
            2 classes.
    """
    columns = list(columns)
    if not columns:
        raise ValueError("fit_label_encoders needs at least one column. Received: columns=[]")
    if len(set(columns)) != len(columns):
        raise ValueError(f"columns must be distinct. Received: columns={columns!r}")
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise ValueError(f"frame lacks column(s) {absent}. Received columns: {list(frame.columns)}")
    if isinstance(min_count, bool) or not isinstance(min_count, (int, np.integer)) or min_count < 1:
        raise ValueError(f"min_count must be an integer >= 1. Received: min_count={min_count!r}")
    encoders = {}
    for column in columns:
        values = frame[column]
        text = values[~_is_missing(values)].astype(str).str.strip()
        counts = text.value_counts()
        classes = tuple(sorted(counts[counts >= min_count].index))
        if len(classes) < 2:
            raise ValueError(f"Column {column!r} has fewer than 2 classes with at least {min_count} "
                             f"labelled row(s): {counts.to_dict()}. Leave it out of the targets.")
        encoders[column] = LabelEncoder(column, classes)
    return encoders


def encode_targets(frame: pd.DataFrame, encoders: Mapping[str, LabelEncoder]) -> dict[str, np.ndarray]:
    """``{column: int64 labels}`` for every encoder's column (``-1``: missing or unknown)."""
    absent = [c for c in encoders if c not in frame.columns]
    if absent:
        raise ValueError(f"frame lacks column(s) {absent}. Received columns: {list(frame.columns)}")
    return {column: enc.encode(frame[column]) for column, enc in encoders.items()}


def label_summary(frame: pd.DataFrame, encoders: Mapping[str, LabelEncoder]) -> pd.DataFrame:
    """Per attribute: classes, and rows labelled / missing / of an unknown class.

    Every row is counted once per attribute: ``labelled + missing + unknown == len(frame)``.
    """
    rows = []
    for column, enc in encoders.items():
        missing = _is_missing(frame[column])
        codes = enc.encode(frame[column])
        rows.append({"attribute": column, "classes": enc.num_classes, "labelled": int((codes >= 0).sum()),
                     "missing": int(missing.sum()), "unknown": int(((codes < 0) & ~missing).sum())})
    return pd.DataFrame(rows).set_index("attribute")


def save_encoders(encoders: Mapping[str, LabelEncoder], path: str | os.PathLike) -> Path:
    """Write the encoders as JSON (``{column: [classes]}``), atomically; returns the path."""
    return write_json_atomic(path, {c: list(e.classes) for c, e in encoders.items()}, indent=1)


def load_encoders(path: str | os.PathLike) -> dict[str, LabelEncoder]:
    """Read what :func:`save_encoders` wrote."""
    data = json.loads(Path(path).read_text())
    return {column: LabelEncoder(column, tuple(classes)) for column, classes in data.items()}


# --------------------------------------------------------------------------- masked loss and metric


def _flat_labels(y_true: Any) -> Any:
    return ops.reshape(ops.cast(y_true, "int32"), (-1,))


@keras.saving.register_keras_serializable(package="fashion_utils")
class MaskedSparseCategoricalCrossentropy(keras.losses.Loss):
    """Sparse categorical cross-entropy that ignores rows labelled ``-1``.

    With the default reduction the result is the mean cross-entropy over the *labelled* rows
    of the batch (0 when none is labelled). Unlabelled rows give 0; a labelled row gives its
    cross-entropy scaled by ``batch rows / labelled rows`` (how Keras itself weighs masked
    entries), so averaging over the batch averages over the labelled rows. Sample weights
    (e.g. class weights) multiply as usual.

    Args:
        from_logits: ``y_pred`` holds logits rather than probabilities.
        name: the loss's name.
        reduction: as in ``keras.losses.Loss``.
    """

    def __init__(self, *, from_logits: bool = False, name: str = "masked_sparse_categorical_crossentropy",
                 reduction: str = "sum_over_batch_size", dtype: Any = None) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        labels = _flat_labels(y_true)
        labelled = ops.cast(labels >= 0, y_pred.dtype)
        safe = ops.where(labels >= 0, labels, ops.zeros_like(labels))
        ce = keras.losses.sparse_categorical_crossentropy(safe, y_pred, from_logits=self.from_logits)
        rows = ops.cast(ops.shape(labelled)[0], y_pred.dtype)
        return ce * labelled * (rows / ops.maximum(ops.sum(labelled), 1.0))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "from_logits": self.from_logits}


@keras.saving.register_keras_serializable(package="fashion_utils")
class MaskedSparseCategoricalAccuracy(keras.metrics.SparseCategoricalAccuracy):
    """Accuracy over the rows whose label is not ``-1``."""

    def __init__(self, name: str = "accuracy", dtype: Any = None) -> None:
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels = _flat_labels(y_true)
        weight = ops.cast(labels >= 0, "float32")
        if sample_weight is not None:
            weight = weight * ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
        safe = ops.where(labels >= 0, labels, ops.zeros_like(labels))
        return super().update_state(safe, y_pred, sample_weight=weight)


# --------------------------------------------------------------------------- the network


def _layer_name(column: str) -> str:
    return re.sub(r"\W", "_", str(column))


def build_multi_output_head(input_dim: int, num_classes: Mapping[str, int], *,
                            shared_units: Sequence[int] = (256,), head_units: Sequence[int] = (64,),
                            dropout: float = 0.2, activation: str = "relu",
                            name: str = "multi_output_head") -> keras.Model:
    """A shared Dense trunk over the features, then one softmax head per attribute.

    Args:
        input_dim: length of a feature vector (``backbones.feature_dim(name)``).
        num_classes: ``{attribute: number of classes}``, in head order (each >= 2).
        shared_units: Dense layers shared by every head.
        head_units: each head's own Dense layers before its softmax.
        dropout: rate after each hidden layer (0: none).
        activation: activation of the hidden layers.
        name: the model's name.

    Returns:
        An uncompiled functional model: ``(None, input_dim)`` → ``{attribute: (None, classes)}``.
    """
    if isinstance(input_dim, bool) or not isinstance(input_dim, (int, np.integer)) or input_dim < 1:
        raise ValueError(f"input_dim must be a positive integer. Received: input_dim={input_dim!r}")
    if not num_classes:
        raise ValueError("num_classes needs at least one attribute. Received: {}")
    for column, k in num_classes.items():
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
            raise ValueError(f"Each attribute needs at least 2 classes. Received: {column!r}: {k!r}")
    names = [_layer_name(c) for c in num_classes]
    if len(set(names)) != len(names):
        raise ValueError(f"Attribute names clash once made layer-safe: {names}")
    shared_units = positive_ints("shared_units", shared_units)
    head_units = positive_ints("head_units", head_units)
    dropout = rate("dropout", dropout)
    inputs = keras.Input(shape=(int(input_dim),), name="features")
    x = dense_stack(inputs, shared_units, activation=activation, dropout=dropout, prefix="shared_")
    outputs = {}
    for column, k in num_classes.items():
        base = _layer_name(column)
        h = dense_stack(x, head_units, activation=activation, dropout=dropout, prefix=f"{base}_")
        outputs[column] = keras.layers.Dense(int(k), activation="softmax", name=base)(h)
    return keras.Model(inputs, outputs, name=name)


def compile_multi_output(model: keras.Model, *, learning_rate: float = 1e-3,
                         loss_weights: Mapping[str, float] | None = None) -> keras.Model:
    """Adam, a masked cross-entropy and a masked accuracy per output (the total loss is their sum)."""
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or learning_rate <= 0:
        raise ValueError(f"learning_rate must be > 0. Received: learning_rate={learning_rate!r}")
    outputs = list(model.output.keys()) if isinstance(model.output, dict) else None
    if outputs is None:
        raise ValueError(f"Model {model.name!r} must have a dict of outputs (build_multi_output_head).")
    if loss_weights is not None and set(loss_weights) != set(outputs):
        raise ValueError(f"loss_weights must name every output {outputs}. Received: {dict(loss_weights)}")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
                  loss={c: MaskedSparseCategoricalCrossentropy() for c in outputs},
                  loss_weights=dict(loss_weights) if loss_weights else None,
                  metrics={c: [MaskedSparseCategoricalAccuracy()] for c in outputs})
    return model


def _check_rows(name: str, x: Any, labels: pd.DataFrame) -> None:
    if len(x) != len(labels):
        raise ValueError(f"{name}: features and labels differ in length: {len(x)} != {len(labels)}")
    if len(x) == 0:
        raise ValueError(f"{name}: nothing to train or evaluate on. Received: 0 rows")


def train_multi_output(x_train: Any, train_labels: pd.DataFrame, *, encoders: Mapping[str, LabelEncoder],
                       x_val: Any = None, val_labels: pd.DataFrame | None = None, epochs: int = 40,
                       batch_size: int = 256, learning_rate: float = 1e-3,
                       shared_units: Sequence[int] = (256,), head_units: Sequence[int] = (64,),
                       dropout: float = 0.2, patience: int = 4, seed: int = config.SEED,
                       verbose: int = 0) -> tuple[keras.Model, dict[str, list[float]]]:
    """Train the multi-output head on cached features; one encoder gives a single-target model.

    Args:
        x_train: ``(N, D)`` features of the training rows.
        train_labels: the same rows' attribute columns (missing values allowed: masked).
        encoders: ``{attribute: encoder}`` (:func:`fit_label_encoders`), in head order.
        x_val, val_labels: validation rows; early stopping on the validation loss (best
            weights restored) when given.
        epochs: at most this many epochs.
        batch_size: rows per step.
        learning_rate: Adam's learning rate.
        shared_units, head_units, dropout: see :func:`build_multi_output_head`.
        patience: epochs without a better validation loss before stopping.
        seed: ``keras.utils.set_random_seed`` before building (same inputs, same model).
        verbose: Keras' ``fit`` verbosity.

    Returns:
        ``(model, history)``: the trained model and Keras' ``History.history`` plus
        ``"seconds"`` (wall time) and ``"epochs_run"``.
    """
    _check_rows("train", x_train, train_labels)
    if (x_val is None) != (val_labels is None):
        raise ValueError("Pass both x_val and val_labels, or neither.")
    keras.utils.set_random_seed(int(seed))
    model = build_multi_output_head(int(np.shape(x_train)[1]), {c: e.num_classes for c, e in encoders.items()},
                                    shared_units=shared_units, head_units=head_units, dropout=dropout)
    compile_multi_output(model, learning_rate=learning_rate)
    y_train = encode_targets(train_labels, encoders)
    unlabelled = [c for c, y in y_train.items() if not (y >= 0).any()]
    if unlabelled:
        raise ValueError(f"No training row has a known label for {unlabelled}")
    callbacks, validation = [keras_callback("multi-output heads")], None
    if x_val is not None:
        _check_rows("validation", x_val, val_labels)
        validation = (np.asarray(x_val, dtype=np.float32), encode_targets(val_labels, encoders))
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=int(patience),
                                                       restore_best_weights=True))
    start = time.perf_counter()
    history = model.fit(np.asarray(x_train, dtype=np.float32), y_train, validation_data=validation,
                        epochs=int(epochs), batch_size=int(batch_size), callbacks=callbacks,
                        verbose=verbose, shuffle=True)
    logs = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    if len(encoders) == 1:  # Keras names one output's metrics without its name: add the names
        (column,) = encoders
        for side in ("", "val_"):
            for metric in ("accuracy", "loss"):
                if f"{side}{metric}" in logs:  # "val_accuracy" -> "val_<column>_accuracy"
                    logs.setdefault(f"{side}{column}_{metric}", logs[f"{side}{metric}"])
    logs["seconds"] = [round(time.perf_counter() - start, 2)]
    logs["epochs_run"] = [len(logs.get("loss", []))]
    return model, logs


def _predict_probabilities(model: keras.Model, x: Any, *, batch_size: int) -> dict[str, np.ndarray]:
    probs = model.predict(np.asarray(x, dtype=np.float32), batch_size=int(batch_size), verbose=0)
    if not isinstance(probs, dict):  # Keras returns a dict for dict outputs; be safe otherwise
        names = list(model.output.keys())
        probs = dict(zip(names, probs if isinstance(probs, (list, tuple)) else [probs]))
    return {c: np.asarray(p) for c, p in probs.items()}


def predict_multi_output(model: keras.Model, x: Any, *, encoders: Mapping[str, LabelEncoder],
                         batch_size: int = 1024) -> pd.DataFrame:
    """Predicted class name per attribute (one column each) and its probability (``<attr>_p``)."""
    probs = _predict_probabilities(model, x, batch_size=batch_size)
    table = {}
    for column, enc in encoders.items():
        p = probs[column]
        table[column] = enc.decode(p.argmax(axis=1))
        table[f"{column}_p"] = p.max(axis=1)
    return pd.DataFrame(table)


def evaluate_multi_output(model: keras.Model, x: Any, labels: pd.DataFrame, *,
                          encoders: Mapping[str, LabelEncoder], batch_size: int = 1024) -> pd.DataFrame:
    """Accuracy and macro-F1 per attribute, each on the rows that have a known label.

    Args:
        model: a trained model (:func:`train_multi_output`).
        x: ``(N, D)`` features.
        labels: the same rows' attribute columns.
        encoders: the training encoders.
        batch_size: rows per forward pass.

    Returns:
        Indexed by attribute: ``classes``, ``n_labelled`` (rows scored), ``n_missing``,
        ``n_unknown`` (a class never seen in training), ``accuracy``, ``macro_f1``.
    """

    _check_rows("evaluate", x, labels)
    probs = _predict_probabilities(model, x, batch_size=batch_size)
    summary = label_summary(labels, encoders)
    rows = []
    for column, enc in encoders.items():
        y = enc.encode(labels[column])
        keep = y >= 0
        pred = probs[column].argmax(axis=1)
        acc = float(np.mean(pred[keep] == y[keep])) if keep.any() else float("nan")
        f1 = macro_f1(y[keep], pred[keep]) if keep.any() else float("nan")
        rows.append({"attribute": column, "classes": enc.num_classes, "n_labelled": int(keep.sum()),
                     "n_missing": int(summary.loc[column, "missing"]),
                     "n_unknown": int(summary.loc[column, "unknown"]), "accuracy": acc, "macro_f1": f1})
    return pd.DataFrame(rows).set_index("attribute")


# --------------------------------------------------------------------------- end to end


def build_multi_output_end_to_end(backbone: keras.Model, head: keras.Model, *,
                                  encoders: Mapping[str, LabelEncoder], image_size: int,
                                  trainable_backbone: bool = False,
                                  name: str = "multi_output_classifier") -> keras.Model:
    """Raw RGB image (float 0–255, any size) → Resizing → backbone → the heads, with class names.

    Args:
        backbone: ``backbones.load_backbone(..., include_top=False)`` at ``image_size``.
        head: the trained model from :func:`train_multi_output`.
        encoders: its encoders (each output's class names go into a ``models.ClassNames`` layer
            named ``<attribute>_class_names``).
        image_size: the backbone's input side.
        trainable_backbone: leave the backbone trainable (fine-tuning); frozen by default.
        name: the model's name.

    Returns:
        A functional model ``(None, None, None, 3)`` → ``{attribute: probabilities}``.
    """

    check_backbone_fits_head(backbone, head, image_size=image_size)
    if set(head.output.keys()) != set(encoders):
        raise ValueError(f"The head's outputs {list(head.output)} differ from the encoders' {list(encoders)}")
    backbone.trainable = bool(trainable_backbone)
    inputs = keras.Input(shape=(None, None, 3), name="image")
    x = keras.layers.Resizing(int(image_size), int(image_size), interpolation="bilinear", antialias=True,
                              name="resize")(inputs)
    probs = head(backbone(x))
    outputs = {c: ClassNames(enc.classes, name=f"{_layer_name(c)}_class_names")(probs[c])
               for c, enc in encoders.items()}
    return keras.Model(inputs, outputs, name=name)


def predict_attributes(model: keras.Model, image_paths: Sequence[str | os.PathLike], *,
                        encoders: Mapping[str, LabelEncoder], image_size: int,
                        batch_size: int = 64) -> pd.DataFrame:
    """Predicted class per attribute for image files, with the end-to-end model.

    Images go through ``features.predict_image_files`` (the extractor's decoding: DCT-scaled
    JPEG decode, then resize), so predictions match the cached-feature pipeline.

    Returns:
        ``image_path``, then per attribute its predicted class and ``<attr>_p``.
    """
    paths = [os.fspath(p) for p in image_paths]
    if not paths:
        raise ValueError("predict_attributes needs at least one image. Received: 0 paths")
    out = features.predict_image_files(model, paths, image_size=image_size, batch_size=batch_size)
    table: dict[str, Any] = {"image_path": paths}
    for column, enc in encoders.items():
        table[column] = enc.decode(out[column].argmax(axis=1))
        table[f"{column}_p"] = out[column].max(axis=1)
    return pd.DataFrame(table)
