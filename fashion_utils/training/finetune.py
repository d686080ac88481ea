"""Fine-tuning the backbone under the tuned head, and choosing the end-to-end model to keep.

- :func:`fine_tune` puts a trained head on the backbone (``models.build_end_to_end_model``,
  so the saved ``.keras`` file carries its class names and works with
  ``models.predict_images``), unfreezes all of the backbone or its top N blocks — BatchNorm
  layers stay frozen (``trainable = False`` on each: calling the backbone with
  ``training=False`` was measured *not* to keep them frozen in Keras 3.15) — and trains on
  images streamed from their files with ``tf.data``, the augmentation pipeline of notebook 02
  (``sampling.make_augmenter``), a lower learning rate with a warm-up + cosine schedule, early
  stopping on validation, an optional wall-clock budget and optional ``mixed_bfloat16``.
- :func:`frozen_backbone_model` saves a trained head on the frozen backbone end to end, and
  :func:`end_to_end_with_head` swaps in another head (the recipes of ``training.recipes``).
- :func:`choose_on_validation` keeps whichever saved model predicts validation best.
"""

from __future__ import annotations

import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

import keras

from fashion_utils import config
from fashion_utils.vision.backbones import load_backbone
from fashion_utils.checks import one_of, positive_float, positive_int
from fashion_utils.vision.features import decode_image_tensor, predict_image_files
from fashion_utils.vision.models import (FROZEN_SUFFIX, build_end_to_end_model, class_names_of,
                                         model_image_size, save_end_to_end_model)
from fashion_utils.progress import keras_callback
from fashion_utils.catalog.sampling import make_augmenter

__all__ = ["FineTuneResult", "backbone_blocks", "choose_on_validation", "end_to_end_with_head",
           "fine_tune", "frozen_backbone_model", "labelled_image_dataset",
           "set_backbone_trainable"]

SCHEDULES = ("cosine", "constant")
_BLOCK_PATTERN = re.compile(r"^(block\d+[a-z]?|conv\d+_block\d+|conv\d+|stem|top)(?:_|$)")


# ---------------------------------------------------------------------------------- data


def labelled_image_dataset(paths: Sequence[str], labels: Sequence[int] | np.ndarray, *,
                           image_size: int, batch_size: int, shuffle: bool = False,
                           seed: int = config.SEED, augmenter: Callable | None = None,
                           cache: bool = False):
    """``(images, labels)`` batches streamed from image files with ``tf.data``.

    Args:
        paths: image files (any JPEG/PNG; decoded to RGB float 0–255, resized to the square).
        labels: integer class indices, one per path.
        image_size: side of the square images.
        batch_size: images per batch.
        shuffle: reshuffle the file order every epoch (seeded).
        seed: shuffling seed.
        augmenter: a callable run on each batch with ``training=True`` (e.g.
            ``sampling.make_augmenter()``); ``None`` for none.
        cache: keep the decoded, resized images in memory (as uint8) after the first epoch.

    Returns:
        A ``tf.data.Dataset``.
    """
    import tensorflow as tf

    paths = [os.fspath(p) for p in paths]
    labels = np.asarray(labels, dtype=np.int64)
    if len(paths) != len(labels) or not paths:
        raise ValueError(f"paths and labels must be non-empty and of equal length. Received: "
                         f"{len(paths)} paths and {len(labels)} labels")
    image_size = positive_int("image_size", image_size, minimum=8)
    batch_size = positive_int("batch_size", batch_size)
    ds = tf.data.Dataset.from_tensor_slices((tf.constant(paths), tf.constant(labels)))

    def decode(path, label):
        image = decode_image_tensor(tf.io.read_file(path), image_size=image_size)
        return (tf.cast(tf.round(image), tf.uint8) if cache else image), label

    if cache:
        ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE).cache()
        if shuffle:
            ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
        ds = ds.map(lambda x, y: (tf.cast(x, tf.float32), y))
    else:
        if shuffle:
            ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
        ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(batch_size)
    if augmenter is not None:
        ds = ds.map(lambda x, y: (augmenter(x, training=True), y),
                    num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


# ---------------------------------------------------------------------------------- trainability


def backbone_blocks(backbone: keras.Model) -> list[tuple[str, list[keras.layers.Layer]]]:
    """The backbone's weighted blocks, input to output: ``[(block name, layers), ...]``.

    Blocks are named by layer-name prefix, as Keras and our Lite0 name them: ``stem``,
    ``block1a`` … ``block7a``, ``top`` (EfficientNet), ``block1`` … (VGG), ``conv2_block1``
    … (ResNet). Layers without weights (rescaling, pooling) belong to no block.
    """
    order: list[str] = []
    groups: dict[str, list[keras.layers.Layer]] = {}
    for layer in backbone.layers:
        match = _BLOCK_PATTERN.match(layer.name)
        if not match or not layer.weights:
            continue
        name = match.group(1)
        if name not in groups:
            order.append(name)
            groups[name] = []
        groups[name].append(layer)
    return [(name, groups[name]) for name in order]


def set_backbone_trainable(backbone: keras.Model, *, unfreeze: str | int = "all") -> dict[str, Any]:
    """Unfreeze all of a backbone or its top ``unfreeze`` blocks; BatchNorm stays frozen.

    Args:
        backbone: a functional backbone (see :func:`backbone_blocks`).
        unfreeze: ``"all"``, or the number of blocks to unfreeze counted from the output
            (``top`` counts as one block; 0 freezes the whole backbone).

    Returns:
        ``{"blocks": total, "unfrozen_blocks": [names], "frozen_batchnorm": count,
        "trainable_params": count}``.
    """
    blocks = backbone_blocks(backbone)
    if unfreeze == "all":
        chosen = [name for name, _ in blocks]
    else:
        n = positive_int("unfreeze", unfreeze, minimum=0) if not isinstance(unfreeze, str) else None
        if n is None or n > len(blocks):
            raise ValueError(f"unfreeze must be 'all' or an integer in [0, {len(blocks)}] (the "
                             f"backbone's blocks). Received: unfreeze={unfreeze!r}")
        chosen = [name for name, _ in blocks[len(blocks) - n:]] if n else []
    backbone.trainable = bool(chosen)
    chosen_set = set(chosen)
    in_block = {id(layer): name for name, layers in blocks for layer in layers}
    frozen_bn = 0
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False  # inference-mode statistics while fine-tuning
            frozen_bn += 1
        else:
            layer.trainable = unfreeze == "all" or in_block.get(id(layer)) in chosen_set
    trainable = int(sum(np.prod(w.shape) for w in backbone.trainable_weights))
    return {"blocks": len(blocks), "unfrozen_blocks": chosen, "frozen_batchnorm": frozen_bn,
            "trainable_params": trainable}


# ---------------------------------------------------------------------------------- fine-tuning


@dataclass
class FineTuneResult:
    """What :func:`fine_tune` returns.

    Attributes:
        model: the end-to-end model (best validation epoch's weights).
        model_path: where it was saved.
        history: per-epoch ``loss, accuracy, val_loss, val_accuracy``.
        epoch_seconds: wall time of each epoch (validation included).
        seconds: wall time of the whole fit.
        best_val_accuracy: the best epoch's validation accuracy.
        settings: every option, JSON-able (for a comparison table).
        trainable: :func:`set_backbone_trainable`'s summary.
    """

    model: keras.Model
    model_path: Path
    history: dict[str, list[float]]
    epoch_seconds: list[float]
    seconds: float
    best_val_accuracy: float
    settings: dict[str, Any] = field(default_factory=dict)
    trainable: dict[str, Any] = field(default_factory=dict)

    def curve(self) -> dict[str, list[float]]:
        """Validation accuracy after each epoch against the training minutes so far (the
        accuracy-vs-minutes curve of notebook 04)."""
        minutes = np.cumsum(self.epoch_seconds) / 60 if self.epoch_seconds else np.array([])
        return {"minutes": [round(float(m), 3) for m in minutes],
                "val_accuracy": list(self.history.get("val_accuracy", []))[:len(minutes)]}

    def row(self) -> dict[str, Any]:
        """One JSON-able row: settings, epochs, seconds, best validation accuracy (a candidate
        that trained no epoch on images, ``settings["epochs"] == 0``, ran none)."""
        median = round(float(np.median(self.epoch_seconds)), 1) if self.epoch_seconds else None
        epochs_run = 0 if self.settings.get("epochs") == 0 else len(self.epoch_seconds)
        return {**self.settings, "epochs_run": epochs_run,
                "seconds": round(self.seconds, 1), "seconds_per_epoch": median,
                "best_val_accuracy": self.best_val_accuracy,
                "trainable_params": self.trainable.get("trainable_params"),
                "model_path": str(self.model_path)}


class _EpochTimer(keras.callbacks.Callback):
    """Records each epoch's seconds; stops training before an epoch would pass ``max_seconds``."""

    def __init__(self, max_seconds: float | None) -> None:
        super().__init__()
        self.max_seconds = max_seconds
        self.seconds: list[float] = []
        self.stopped_for_time = False

    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._epoch_start)
        if self.max_seconds is not None:
            elapsed = time.perf_counter() - self._start
            if elapsed + max(self.seconds) > self.max_seconds:
                self.stopped_for_time = True
                self.model.stop_training = True


def _learning_rate(schedule: str, learning_rate: float, *, total_steps: int, warmup_steps: int):
    if schedule == "constant":
        return learning_rate
    if warmup_steps:
        return keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=learning_rate / 10, decay_steps=max(1, total_steps - warmup_steps),
            alpha=0.01, warmup_target=learning_rate, warmup_steps=warmup_steps)
    return keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(1, total_steps),
                                                  alpha=0.01)


def _check_head_fits(head: keras.Model, class_names: Sequence[str]) -> None:
    if head.output_shape[-1] != len(class_names):
        raise ValueError(f"The head has {head.output_shape[-1]} outputs but {len(class_names)} class "
                         f"names were given. Received: class_names={list(class_names)!r}")


def _copy_of(head: keras.Model) -> keras.Model:
    """A trained head's copy, weights included: the caller's head stays as it was."""
    copy = keras.models.clone_model(head)
    copy.set_weights(head.get_weights())
    return copy


def fine_tune(head: keras.Model, *, backbone_name: str, train_paths: Sequence[str],
              train_labels: Sequence[int], val_paths: Sequence[str], val_labels: Sequence[int],
              class_names: Sequence[str], image_size: int, model_path: str | os.PathLike,
              unfreeze: str | int = "all", epochs: int = 3, batch_size: int = 64,
              learning_rate: float = 3e-4, schedule: str = "cosine", warmup_epochs: float = 0.2,
              weight_decay: float = 0.0, augment: bool = True, erasing: float = 0.0,
              augmenter: Callable | None = None, mixed_precision: bool = False,
              patience: int = 2, max_seconds: float | None = None, cache_images: bool = False,
              weights: str | None = "imagenet", seed: int = config.SEED,
              verbose: int | str = "auto") -> FineTuneResult:
    """Fine-tune the backbone with a trained head on top, from image files; save the model.

    Args:
        head: a trained head taking the backbone's pooled features (it is copied, not changed).
        backbone_name: e.g. ``"efficientnet_lite0"`` (``backbones.load_backbone``).
        train_paths, train_labels: training images and integer labels.
        val_paths, val_labels: validation images and labels (early stopping, best weights).
        class_names: one per head output; stored in the saved model.
        image_size: square input side (32–96 px is what 2 CPU cores afford).
        model_path: the ``.keras`` file to write (atomically).
        unfreeze: ``"all"`` or the number of top blocks (see :func:`set_backbone_trainable`).
        epochs: most epochs.
        batch_size: images per step.
        learning_rate: peak learning rate (lower than for the head: e.g. 3e-4 with Adam).
        schedule: ``"cosine"`` (linear warm-up from lr/10, then cosine decay to lr/100 at the
            last planned step) or ``"constant"``.
        warmup_epochs: warm-up length in epochs (may be fractional; cosine only).
        weight_decay: > 0 uses AdamW with this decay instead of Adam.
        augment: apply the augmentation pipeline (``sampling.make_augmenter(seed=seed)``
            unless ``augmenter`` is given) to training batches.
        erasing: > 0 adds ``keras.layers.RandomErasing(factor=erasing)`` to it.
        augmenter: a custom batch augmenter (called with ``training=True``).
        mixed_precision: build the backbone under ``mixed_bfloat16`` (head and output stay
            float32).
        patience: early-stopping patience in epochs (on ``val_accuracy``).
        max_seconds: stop after the epoch that would let the next one end past this budget.
        cache_images: keep decoded training/validation images in memory after epoch 1.
        weights: ``"imagenet"`` or ``None`` (random backbone, for tests).
        seed: weights, shuffling and augmentation seed.
        verbose: Keras verbosity.

    Returns:
        A :class:`FineTuneResult`.
    """
    epochs = positive_int("epochs", epochs)
    batch_size = positive_int("batch_size", batch_size)
    learning_rate = positive_float("learning_rate", learning_rate)
    warmup_epochs = positive_float("warmup_epochs", warmup_epochs, allow_zero=True)
    weight_decay = positive_float("weight_decay", weight_decay, allow_zero=True)
    erasing = positive_float("erasing", erasing, allow_zero=True)
    patience = positive_int("patience", patience)
    if max_seconds is not None:
        max_seconds = positive_float("max_seconds", max_seconds)
    one_of("schedule", schedule, SCHEDULES)
    _check_head_fits(head, class_names)
    model_path = Path(model_path)
    if model_path.suffix != ".keras":
        raise ValueError(f"model_path must end with .keras. Received: model_path={str(model_path)!r}")

    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    previous_policy = keras.config.dtype_policy()
    try:
        if mixed_precision:
            keras.config.set_dtype_policy("mixed_bfloat16")
        backbone = load_backbone(backbone_name, image_size=image_size, weights=weights)
    finally:
        keras.config.set_dtype_policy(previous_policy)
    head_copy = _copy_of(head)
    model = build_end_to_end_model(backbone, head_copy, class_names=class_names,
                                   image_size=image_size, name=f"{backbone_name}_finetuned")
    trainable = set_backbone_trainable(backbone, unfreeze=unfreeze)
    head_copy.trainable = True

    if augment and augmenter is None:
        augmenter = make_augmenter(seed=seed)
    if augment and erasing:
        augmenter = keras.Sequential([augmenter, keras.layers.RandomErasing(
            factor=erasing, value_range=(0, 255), seed=seed + 7, name="erasing")],
            name="augmentation_with_erasing")
    train = labelled_image_dataset(train_paths, train_labels, image_size=image_size,
                                   batch_size=batch_size, shuffle=True, seed=seed,
                                   augmenter=augmenter if augment else None, cache=cache_images)
    val = labelled_image_dataset(val_paths, val_labels, image_size=image_size,
                                 batch_size=max(batch_size, 256), cache=cache_images)

    steps = math.ceil(len(train_paths) / batch_size)
    lr = _learning_rate(schedule, learning_rate, total_steps=steps * epochs,
                        warmup_steps=int(round(warmup_epochs * steps)) if schedule == "cosine" else 0)
    optimizer = (keras.optimizers.AdamW(lr, weight_decay=weight_decay) if weight_decay
                 else keras.optimizers.Adam(lr))
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    timer = _EpochTimer(max_seconds)
    stop = keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=patience,
                                         restore_best_weights=True)
    start = time.perf_counter()
    history = model.fit(train, validation_data=val, epochs=epochs,
                        callbacks=[timer, stop, keras_callback("fine-tuning")],
                        shuffle=False, verbose=verbose)  # the dataset reshuffles itself
    seconds = time.perf_counter() - start
    save_end_to_end_model(model, model_path)
    hist = {k: [float(v) for v in values] for k, values in history.history.items()}
    settings = {"recipe": "fine-tune", "backbone": backbone_name, "image_size": int(image_size),
                "unfreeze": unfreeze,
                "epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
                "schedule": schedule, "warmup_epochs": warmup_epochs, "weight_decay": weight_decay,
                "augment": bool(augment), "erasing": erasing, "mixed_precision": bool(mixed_precision),
                "patience": patience, "max_seconds": max_seconds,
                "stopped_for_time": timer.stopped_for_time, "train_images": len(train_paths),
                "val_images": len(val_paths), "seed": seed}
    return FineTuneResult(model=model, model_path=model_path, history=hist,
                          epoch_seconds=[round(s, 2) for s in timer.seconds], seconds=seconds,
                          best_val_accuracy=max(hist.get("val_accuracy", [float("nan")])),
                          settings=settings, trainable=trainable)


def frozen_backbone_model(head: keras.Model, *, backbone_name: str, class_names: Sequence[str],
                          image_size: int, model_path: str | os.PathLike,
                          weights: str | None = "imagenet") -> tuple[keras.Model, Path]:
    """A trained head (copied) on the frozen backbone at ``image_size``, saved end to end
    (``recipes.FrozenBackbone``): the model that trains nothing on images."""
    _check_head_fits(head, class_names)
    backbone = load_backbone(backbone_name, image_size=image_size, weights=weights)
    model = build_end_to_end_model(backbone, _copy_of(head), class_names=class_names,
                                   image_size=image_size,
                                   name=f"{backbone_name}{FROZEN_SUFFIX}")
    return model, save_end_to_end_model(model, model_path)


def end_to_end_with_head(model: keras.Model, head: keras.Model, *, model_path: str | os.PathLike,
                         image_size: int) -> tuple[keras.Model, Path]:
    """An end-to-end model's backbone (same weights) under another head (copied), saved."""
    class_names = class_names_of(model)
    _check_head_fits(head, class_names)
    backbone = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    new = build_end_to_end_model(backbone, _copy_of(head), class_names=class_names,
                                 image_size=image_size, name=model.name)
    return new, save_end_to_end_model(new, model_path)


def choose_on_validation(results: Mapping[str, FineTuneResult], *, val_paths: Sequence[str],
                         val_labels: Sequence[int]) -> dict[str, Any]:
    """Score each trained model on the same validation images, the way a user would predict
    (``features.predict_image_files`` at the model's own size), and choose the most accurate.

    Returns:
        ``{"scores": {name: validation accuracy}, "chosen": name, "val_images": count}``.
    """
    if not results:
        raise ValueError("choose_on_validation needs at least one trained model. Received: none")
    labels = np.asarray(val_labels, dtype=np.int64)
    if len(labels) != len(val_paths) or not len(labels):
        raise ValueError(f"val_paths and val_labels must be non-empty and of equal length. "
                         f"Received: {len(val_paths)} and {len(labels)}")
    scores = {}
    for name, result in results.items():
        probs = predict_image_files(result.model, val_paths,
                                    image_size=model_image_size(result.model), batch_size=256)
        scores[name] = float(np.mean(probs.argmax(axis=1) == labels))
    return {"scores": scores, "chosen": max(scores, key=scores.get), "val_images": len(labels)}
