"""Fine-tuning the backbone under the tuned head, and choosing the end-to-end model to keep.

- :func:`fine_tune` puts a trained head on the backbone (``models.build_end_to_end_model``,
  so the saved ``.keras`` file carries its class names and works with
  ``models.predict_images``), unfreezes all of the backbone or its top N blocks — BatchNorm
  layers stay frozen (``trainable = False`` on each: calling the backbone with
  ``training=False`` was measured *not* to keep them frozen in Keras 3.15) — and trains on
  images streamed from their files with ``tf.data``, the augmentation pipeline of notebook 02
  (``sampling.make_augmenter``), a lower learning rate with a warm-up + cosine schedule, early
  stopping on validation, an optional wall-clock budget and optional ``mixed_bfloat16``.
- :func:`frozen_backbone_candidate` saves the tuned head on the frozen backbone end to end,
  and :func:`choose_on_validation` keeps whichever saved model predicts validation best; once
  chosen, :func:`refit_frozen_candidate` swaps in its head retrained on train + validation.
- :func:`plan_fine_tune` fits the fine-tune's image side and epochs to its time cap from a
  probe's speed (:func:`planning_probe`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

import keras

from fashion_utils import config, provenance
from fashion_utils.evaluation import read_metrics
from fashion_utils.vision.backbones import load_backbone
from fashion_utils.checks import one_of, positive_float, positive_int
from fashion_utils.vision.features import decode_image_tensor, predict_image_files
from fashion_utils.vision.models import (FROZEN_SUFFIX, build_end_to_end_model, class_names_of,
                                         model_image_size, save_end_to_end_model)
from fashion_utils.progress import keras_callback
from fashion_utils.catalog.sampling import make_augmenter

__all__ = ["FineTuneResult", "backbone_blocks", "choose_on_validation", "fine_tune",
           "frozen_backbone_candidate", "labelled_image_dataset", "plan_fine_tune",
           "planning_probe", "probe_summary", "refit_frozen_candidate", "set_backbone_trainable",
           "train_only_model"]

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


def frozen_backbone_candidate(head: keras.Model, *, backbone_name: str, class_names: Sequence[str],
                              image_size: int, model_path: str | os.PathLike, val_accuracy: float,
                              seconds: float, train_images: int, val_images: int,
                              weights: str | None = "imagenet") -> FineTuneResult:
    """The trained head on the frozen backbone at the cached features' side, saved end to end:
    the candidate that trains nothing on images, for validation to weigh against the recipes.

    Fine-tuning on 2 CPU cores affords a smaller side (64-192 px) than a real catalog's cached
    features (224 px): the detail lost can cost more than training the backbone gains, and then
    this model is the one to keep.

    Args:
        head: the head trained on the cached features (copied, not changed).
        backbone_name, image_size, weights: the backbone the features came from.
        class_names: one per head output; stored in the saved model.
        model_path: the ``.keras`` file to write (atomically).
        val_accuracy: the head's accuracy on the cached validation features.
        seconds: what the model cost: extracting the features and training the head.
        train_images, val_images: the images the head was trained and validated on.

    Returns:
        A :class:`FineTuneResult` with no epochs on images; its curve is one point.
    """
    val_accuracy = positive_float("val_accuracy", val_accuracy, allow_zero=True)
    if val_accuracy > 1:
        raise ValueError(f"val_accuracy must be at most 1. Received: val_accuracy={val_accuracy!r}")
    seconds = positive_float("seconds", seconds)
    train_images, val_images = (positive_int("train_images", train_images),
                                positive_int("val_images", val_images))
    _check_head_fits(head, class_names)
    head_copy = _copy_of(head)
    backbone = load_backbone(backbone_name, image_size=image_size, weights=weights)
    model = build_end_to_end_model(backbone, head_copy, class_names=class_names,
                                   image_size=image_size,
                                   name=f"{backbone_name}{FROZEN_SUFFIX}")
    model_path = save_end_to_end_model(model, model_path)
    settings = {"recipe": "frozen backbone", "backbone": backbone_name,
                "image_size": int(image_size), "epochs": 0, "train_images": train_images,
                "val_images": val_images}
    return FineTuneResult(model=model, model_path=model_path,
                          history={"val_accuracy": [val_accuracy]},
                          epoch_seconds=[round(seconds, 2)], seconds=seconds,
                          best_val_accuracy=val_accuracy, settings=settings,
                          trainable={"trainable_params": 0})


def refit_frozen_candidate(candidate: FineTuneResult, head: keras.Model, *,
                           model_path: str | os.PathLike, refit_images: int) -> FineTuneResult:
    """The chosen frozen candidate with its head retrained on train + validation, saved end to
    end (the final evaluation of notebook 04 retrains every searched head the same way).

    Validation chose the candidate with its head trained on the training side alone; the
    result keeps that head's validation accuracy and curve (what the choice saw) and records
    ``settings["refit_images"]``. The backbone is the candidate's own (same weights, frozen).

    Args:
        candidate: what :func:`frozen_backbone_candidate` returned.
        head: the same configuration retrained on train + validation
            (``tuning.retrain_best``); copied, not changed.
        model_path: the ``.keras`` file to write (atomically).
        refit_images: the feature rows the head was retrained on.

    Returns:
        A :class:`FineTuneResult` like ``candidate`` with the refit model and its file.
    """
    if candidate.settings.get("recipe") != "frozen backbone":
        raise ValueError(f"Only a frozen-backbone candidate is refit on its head. Received: "
                         f"recipe={candidate.settings.get('recipe')!r}")
    refit_images = positive_int("refit_images", refit_images)
    class_names = class_names_of(candidate.model)
    _check_head_fits(head, class_names)
    backbone = next(layer for layer in candidate.model.layers if isinstance(layer, keras.Model))
    size = int(candidate.settings["image_size"])
    model = build_end_to_end_model(backbone, _copy_of(head), class_names=class_names,
                                   image_size=size, name=candidate.model.name)
    return dataclasses.replace(candidate, model=model,
                               model_path=save_end_to_end_model(model, model_path),
                               settings={**candidate.settings, "refit_images": refit_images})


def train_only_model(model_path: str | os.PathLike, *, paths: config.Paths) -> Path | None:
    """The file validation chose ``finetuned_<target>.keras`` as, when notebook 04 then refit
    its head on train + validation (its metrics say so): what a later choice on validation
    must judge instead, since the refit model was trained on validation. ``None`` otherwise.

    Raises:
        FileNotFoundError: 04 recorded a refit but the train-only file is gone.
    """
    model_path = Path(model_path)
    target = model_path.stem.removeprefix("finetuned_")
    try:
        ft = read_metrics(config.named_for_target("04_tuning", target=target),
                          paths=paths).get("fine_tune") or {}
    except FileNotFoundError:
        return None
    if not ft.get("refit_images") or Path(ft["saved_model"]).resolve() != model_path.resolve():
        return None
    chosen = Path(ft["recipes"][ft["chosen_recipe"]]["model_path"])
    if not chosen.is_file():
        raise FileNotFoundError(f"04 refit {model_path.name} on train + validation, but the "
                                f"model validation chose is gone: no file at {chosen}")
    return chosen


#: Image sides the fine-tune plan chooses from, smallest first (Lite0's own side is 224).
PLAN_SIZES = (64, 96, 128, 160, 192)
#: The most epochs the plan gives a fine-tune (more rarely pays on a pretrained backbone).
PLAN_MAX_EPOCHS = 10


def plan_fine_tune(*, n_train: int, n_val: int, seconds_per_image: float, probe_size: int,
                   max_seconds: float, sizes: Sequence[int] = PLAN_SIZES,
                   max_epochs: int = PLAN_MAX_EPOCHS) -> tuple[int, int]:
    """The image side and epochs that fill a fine-tune's time cap, from a probe's speed.

    An epoch is estimated at ``seconds_per_image × (n_train + n_val / 3) × (side /
    probe_size)²``, where ``seconds_per_image`` is a probe epoch's seconds per image at
    ``probe_size`` (training and validating it: an estimate that errs long) and validation
    only predicts (a third of a training step). The largest side
    whose ``max_epochs`` epochs fit ``max_seconds`` wins; when none does, the smallest side gets
    the epochs that fit (at least one). A big catalog on 2 cores keeps 64 px and one epoch
    (Fashion-MNIST: ~370 s of a 600 s cap); a small one gets more pixels and epochs.

    >>> plan_fine_tune(n_train=54_000, n_val=6_000, seconds_per_image=0.00686, probe_size=64,
    ...                max_seconds=600)
    (64, 1)
    >>> plan_fine_tune(n_train=2_118, n_val=236, seconds_per_image=0.0073, probe_size=64,
    ...                max_seconds=600)
    (96, 10)
    """
    n_train, n_val = positive_int("n_train", n_train), positive_int("n_val", n_val, minimum=0)
    speed, cap = positive_float("seconds_per_image", seconds_per_image), \
        positive_float("max_seconds", max_seconds)
    probe_size, max_epochs = positive_int("probe_size", probe_size), \
        positive_int("max_epochs", max_epochs)
    sizes = sorted(positive_int("size", v) for v in sizes)
    if not sizes:
        raise ValueError(f"sizes must hold at least one side. Received: sizes={sizes!r}")
    per_epoch = {side: speed * (n_train + n_val / 3) * (side / probe_size) ** 2 for side in sizes}
    fitting = [side for side in sizes if cap / per_epoch[side] >= max_epochs]
    if fitting:
        return fitting[-1], max_epochs
    return sizes[0], max(1, min(max_epochs, int(cap / per_epoch[sizes[0]])))


#: The probe whose speed plans the fine-tune: the recipe's own settings.
PLAN_PROBE = "all blocks, float32"


def probe_summary(result: FineTuneResult) -> dict[str, Any]:
    """A fine-tuning probe's record: its two epochs' seconds (the second has nothing left to
    trace: the speed), its validation accuracy, and what a plan needs to reuse its speed."""
    return {"first_epoch_s": result.epoch_seconds[0], "second_epoch_s": result.epoch_seconds[-1],
            "val_accuracy": result.best_val_accuracy, "images": result.settings["train_images"],
            "trainable_params": result.trainable["trainable_params"],
            "backbone": result.settings["backbone"], "image_size": result.settings["image_size"]}


def planning_probe(probes: Mapping[str, Mapping[str, Any]], *, backbone: str,
                   paths: config.Paths | None = None) -> dict[str, Any] | None:
    """The probe speed a fine-tune plan (:func:`plan_fine_tune`) is made from.

    This run's :data:`PLAN_PROBE` when it ran; else, with ``paths``, the one notebook 04 recorded
    for the catalog's default target (the study's second target skips the probes:
    ``budget.study_plan``), if it probed the same backbone on this CPU (``provenance.cpu``:
    speeds differ several-fold between CPUs). A probe's seconds per image cover training and
    validating it.

    Returns:
        ``{"s_per_image", "probe_size", "source"}``, or ``None`` when no such probe exists.
    """
    probe, source = probes.get(PLAN_PROBE), "this run's probe"
    name = config.named_for_target("04_tuning")
    if probe is None and paths is not None and (paths.metrics / f"{name}.json").exists():
        record = read_metrics(name, paths=paths)
        recorded_on = record.get("provenance", {}).get("machine", {}).get("cpu")
        if recorded_on == provenance.cpu():
            probe, source = record.get("probes", {}).get(PLAN_PROBE), f"the probe of {name}"
    if not probe or probe.get("backbone") != backbone or "image_size" not in probe:
        return None
    return {"s_per_image": probe["second_epoch_s"] / probe["images"],
            "probe_size": int(probe["image_size"]), "source": source}


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
