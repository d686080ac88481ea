"""The end-to-end recipes notebook 04 weighs on validation, each a named object with its own
defaults, and the model card that says which one was kept.

- :class:`FineTune`: the best head on the backbone, trained end to end at a small side.
- :class:`ScratchCNN`: a small CNN from scratch at the images' own side, in a time budget.
- :class:`FrozenBackbone`: the best head on the frozen backbone at the cached features' side
  (the candidate that trains nothing on images); once chosen, its head is refit on train +
  validation (:meth:`FrozenBackbone.refit`).

A recipe that cannot win on a catalog says why (:meth:`FineTune.skip_reason`,
:meth:`ScratchCNN.skip_reason`), so the minutes go where they can buy accuracy. The study's
plan (``make``) passes each recipe's settings; :func:`recipes_from_settings` builds them.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from fashion_utils import config
from fashion_utils.atomic import write_json_atomic
from fashion_utils.checks import positive_float, positive_int
from fashion_utils.training.finetune import (FineTuneResult, frozen_backbone_model,
                                             end_to_end_with_head, fine_tune)
from fashion_utils.training.scratch import native_image_size, train_scratch_cnn

__all__ = ["BUDGET_FIELDS", "FineTune", "FrozenBackbone", "ImageData", "RECIPE_NAMES",
           "ScratchCNN", "budget_table", "read_model_card", "recipes_from_settings",
           "write_model_card"]


@dataclass(frozen=True)
class ImageData:
    """What every recipe trains and validates on: image files and encoded labels."""

    train_paths: Sequence[str]
    train_labels: np.ndarray
    val_paths: Sequence[str]
    val_labels: np.ndarray
    class_names: Sequence[str]

    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments :func:`finetune.fine_tune` and the scratch CNN take."""
        return {"train_paths": list(self.train_paths), "train_labels": self.train_labels,
                "val_paths": list(self.val_paths), "val_labels": self.val_labels,
                "class_names": list(self.class_names)}


@dataclass(frozen=True)
class FineTune:
    """Fine-tuning: the best head on the backbone, every layer but BatchNorm unfrozen, images
    streamed with notebook 02's augmentation, warm-up then cosine decay, early stopping.

    Attributes:
        image_size: the side it trains at (2 CPU cores afford 32-96 px).
        epochs: planned epochs (the cosine schedule spans them).
        max_seconds: no epoch starts that would end past it (``None``: no cap).
        rows: training images (a seeded subsample; ``None``: every original one).
        learning_rate, batch_size, unfreeze: the optimiser's peak, images per step, and
            ``"all"`` or the number of top blocks to unfreeze.
    """

    name: ClassVar[str] = "fine-tune"
    file_stem: ClassVar[str] = "finetune"
    image_size: int = 64
    epochs: int = 2
    max_seconds: float | None = 1800.0
    rows: int | None = None
    learning_rate: float = 3e-4
    batch_size: int = 64
    unfreeze: str | int = "all"

    def skip_reason(self, *, catalog_side: int, image_path: str | os.PathLike) -> str | None:
        """Why this recipe cannot win here: it would see the images at half the side the
        frozen features see them at, or less (detail it cannot make up in the epochs 2 CPU
        cores afford)."""
        if self.image_size * config.RECIPE_SIDE_RATIO <= catalog_side:
            return (f"fine-tuning at {self.image_size} px would see the {catalog_side}-px images "
                    f"the frozen features see at half the side or less")
        return None

    def train(self, head: Any, *, backbone: str, data: ImageData, model_path: str | os.PathLike,
              seed: int, verbose: int | str = 2) -> FineTuneResult:
        return fine_tune(head, backbone_name=backbone, **data.kwargs(),
                         image_size=self.image_size, model_path=model_path,
                         unfreeze=self.unfreeze, epochs=self.epochs,
                         patience=max(2, self.epochs), batch_size=self.batch_size,
                         learning_rate=self.learning_rate, schedule="cosine", augment=True,
                         max_seconds=self.max_seconds, seed=seed, verbose=verbose)


@dataclass(frozen=True)
class ScratchCNN:
    """A ~300k-parameter CNN from scratch at the images' own side (at most :attr:`at_most`
    px), its one-cycle schedule fitted to :attr:`max_seconds` (``scratch.train_scratch_cnn``).
    """

    name: ClassVar[str] = "scratch CNN"
    file_stem: ClassVar[str] = "scratch"
    epochs: int = 40
    max_seconds: float | None = 1800.0
    rows: int | None = None
    at_most: int = config.SCRATCH_MAX_SIDE

    def skip_reason(self, *, catalog_side: int, image_path: str | os.PathLike) -> str | None:
        """Why this recipe cannot win here: the images are photos more than twice the side it
        works at, so it would learn from thumbnails."""
        longer = native_image_size(image_path, at_most=10_000)
        if longer > config.RECIPE_SIDE_RATIO * self.at_most:
            return (f"the images are {longer}-px photos: a CNN from scratch at {self.at_most} px "
                    f"would learn from thumbnails")
        return None

    def train(self, head: Any, *, backbone: str, data: ImageData, model_path: str | os.PathLike,
              seed: int, verbose: int | str = 2) -> FineTuneResult:
        side = native_image_size(data.train_paths[0], at_most=self.at_most)
        return train_scratch_cnn(**data.kwargs(), image_size=side, model_path=model_path,
                                 epochs=self.epochs, max_seconds=self.max_seconds, seed=seed,
                                 verbose=verbose)


@dataclass(frozen=True)
class FrozenBackbone:
    """The best head on the frozen backbone at the cached features' side, saved end to end:
    its cost is the features' extraction plus the head's training."""

    name: ClassVar[str] = "frozen backbone"
    file_stem: ClassVar[str] = "frozen"

    def train(self, head: Any, *, backbone: str, class_names: Sequence[str], image_size: int,
              model_path: str | os.PathLike, val_accuracy: float, seconds: float,
              train_images: int, val_images: int,
              weights: str | None = "imagenet") -> FineTuneResult:
        """Save ``head`` (trained on the cached training features) on the frozen backbone.

        Args:
            val_accuracy: the head's accuracy on the cached validation features.
            seconds: what the model cost: extracting the features and training the head.
            train_images, val_images: the rows the head was trained and validated on.
        """
        val_accuracy = positive_float("val_accuracy", val_accuracy, allow_zero=True)
        if val_accuracy > 1:
            raise ValueError(f"val_accuracy must be at most 1. Received: "
                             f"val_accuracy={val_accuracy!r}")
        seconds = positive_float("seconds", seconds)
        train_images = positive_int("train_images", train_images)
        val_images = positive_int("val_images", val_images)
        model, path = frozen_backbone_model(head, backbone_name=backbone,
                                            class_names=class_names, image_size=image_size,
                                            model_path=model_path, weights=weights)
        settings = {"recipe": self.name, "backbone": backbone, "image_size": int(image_size),
                    "epochs": 0, "train_images": train_images, "val_images": val_images}
        return FineTuneResult(model=model, model_path=path,
                              history={"val_accuracy": [val_accuracy]},
                              epoch_seconds=[round(seconds, 2)], seconds=seconds,
                              best_val_accuracy=val_accuracy, settings=settings,
                              trainable={"trainable_params": 0})

    def refit(self, candidate: FineTuneResult, head: Any, *, model_path: str | os.PathLike,
              refit_images: int) -> FineTuneResult:
        """The chosen candidate with its head retrained on train + validation (``head``, from
        ``tuning.retrain_best``), saved end to end. It keeps the train-only head's validation
        accuracy and curve (what the choice saw) and records ``settings["refit_images"]``.

        Raises:
            ValueError: ``candidate`` is not this recipe's.
        """
        if candidate.settings.get("recipe") != self.name:
            raise ValueError(f"Only a frozen-backbone candidate is refit on its head. Received: "
                             f"recipe={candidate.settings.get('recipe')!r}")
        refit_images = positive_int("refit_images", refit_images)
        model, path = end_to_end_with_head(candidate.model, head, model_path=model_path,
                                           image_size=int(candidate.settings["image_size"]))
        return dataclasses.replace(candidate, model=model, model_path=path,
                                   settings={**candidate.settings, "refit_images": refit_images})


#: The recipes a notebook may name in ``RECIPES``, by name.
RECIPE_NAMES: dict[str, type] = {FineTune.name: FineTune, ScratchCNN.name: ScratchCNN}


def recipes_from_settings(settings: Mapping[str, Mapping[str, Any]] | None
                          ) -> list[FineTune | ScratchCNN]:
    """The end-to-end recipes named in ``settings`` (``{name: {field: value}}``), each with
    its own defaults for what is not given; the frozen candidate is always weighed too.

    >>> [r.name for r in recipes_from_settings({"scratch CNN": {"max_seconds": 60}})]
    ['scratch CNN']

    Raises:
        ValueError: an unknown recipe or setting (naming it).
    """
    out = []
    for name, fields in (settings or {}).items():
        if name not in RECIPE_NAMES:
            raise ValueError(f"Unknown recipe {name!r}; the recipes are {sorted(RECIPE_NAMES)}")
        cls = RECIPE_NAMES[name]
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(fields or {}) - known)
        if unknown:
            raise ValueError(f"The {name} recipe has no setting {unknown}; it has "
                             f"{sorted(known)}")
        out.append(cls(**(fields or {})))
    return out


#: The settings :func:`budget_table` sets side by side: those a time budget shrinks.
BUDGET_FIELDS: tuple[str, ...] = ("image_size", "epochs", "max_seconds", "rows")


def budget_table(settings: Mapping[str, Mapping[str, Any]] | None, *,
                 head: Mapping[str, tuple[Any, Any]] | None = None) -> list[dict[str, Any]]:
    """What a run's settings give each recipe against the recipe's own defaults, one row per
    setting that a budget shrinks (:data:`BUDGET_FIELDS`; ``max_seconds`` shown in minutes),
    after ``head``'s rows (``{setting: (this run, full default)}``); a recipe the settings
    leave out is one row saying so.

    >>> budget_table({"scratch CNN": {"epochs": 5}})[0]
    {'setting': 'fine-tune', 'this run': 'not trained', 'full default': 'trained'}
    """
    given = recipes_from_settings(settings)
    rows = [{"setting": name, "this run": run, "full default": full}
            for name, (run, full) in (head or {}).items()]
    for name, cls in RECIPE_NAMES.items():
        recipe = next((r for r in given if r.name == name), None)
        if recipe is None:
            rows.append({"setting": name, "this run": "not trained", "full default": "trained"})
            continue
        known = {f.name for f in dataclasses.fields(cls)}
        for field in (f for f in BUDGET_FIELDS if f in known):
            run, full = getattr(recipe, field, None), getattr(cls(), field, None)
            if field == "max_seconds":
                field, run, full = "minutes at most", *(None if v is None else round(v / 60, 1)
                                                        for v in (run, full))
            rows.append({"setting": f"{name}: {field}",
                         "this run": "all" if run is None else run,
                         "full default": "all" if full is None else full})
    return rows


# ---------------------------------------------------------------------------------- the card


def _card_path(model_path: str | os.PathLike) -> Path:
    return Path(model_path).with_suffix(".json")


def write_model_card(model_path: str | os.PathLike, card: Mapping[str, Any]) -> Path:
    """Write the card that goes with a kept model (``kept_<TARGET>.json`` beside the
    ``.keras`` file): which recipe it is, its validation score, and ``train_only_model``, the
    file validation judged when the kept one was then refit on validation (``None``
    otherwise), which a later choice on validation must judge instead.

    Raises:
        ValueError: the card lacks ``recipe`` or ``train_only_model``.
    """
    missing = [k for k in ("recipe", "train_only_model") if k not in card]
    if missing:
        raise ValueError(f"A model card needs 'recipe' and 'train_only_model'. Missing: {missing}")
    return write_json_atomic(_card_path(model_path), dict(card), indent=1)


def read_model_card(model_path: str | os.PathLike) -> dict[str, Any]:
    """The card of a kept model.

    Raises:
        FileNotFoundError: no card beside the model, or its train-only model is gone.
    """
    path = _card_path(model_path)
    if not path.is_file():
        raise FileNotFoundError(f"No model card at {path} (notebook 04 writes it with the model)")
    card = json.loads(path.read_text(encoding="utf-8"))
    twin = card.get("train_only_model")
    if twin and not Path(twin).is_file():
        raise FileNotFoundError(f"The card {path.name} names the train-only model {twin}, which "
                                f"is gone: rerun notebook 04")
    return card
