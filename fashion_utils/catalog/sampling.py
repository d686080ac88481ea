"""The study sample: rare classes dropped, large classes capped, small ones grown by augmentation.

The order of the steps is what keeps the evaluation honest:

1. ``splits.catalog_splits`` — every item of the catalog gets its side (train / val / test)
   once, the same for every target;
2. :func:`drop_rare_classes` — classes with fewer than ``min_per_class`` items (and rows with no
   label) leave this target's study, and the drop is *reported*;
3. :func:`cap_per_class` — at most ``cap`` items per class, drawn within each class so that the
   class keeps its train / val / test proportions;
4. :func:`augment_training_side` — training-side classes with fewer than ``augment_to`` images
   are grown with augmented copies of their **training** images only. Each copy records its
   ``source_id`` and is itself a training item, so no copy of a validation or test product
   can ever be trained on (the original study augmented before splitting).

:func:`check_provenance` verifies all of this; :func:`save_study_sample` refuses a sample that
fails it. :func:`class_weights` is the alternative to augmentation.

The study sample (``paths.processed / "study_sample.csv"`` for the default target,
``study_sample_<target>.csv`` otherwise; see :func:`study_sample_path`) has the columns
``id, image_path, <target>, <other attribute columns>, split, source_id, augmented``.
Augmented images are PNGs named after their id ``<source_id>_aug<k>`` through
:func:`image_files.id_to_stem` (``label/eight/482_aug1`` -> ``label%2Feight%2F482_aug1.png``), in
``paths.interim / "augmented" / <target>``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from fashion_utils.atomic import write_bytes_atomic, write_csv_atomic, write_json_atomic
from fashion_utils.checks import columns_present, positive_int
from fashion_utils import config
from fashion_utils.config import Paths
from fashion_utils.catalog.splits import SPLIT_NAMES, read_table_of_02
from fashion_utils.catalog.image_files import id_to_stem, read_image_rgb

__all__ = [
    "AugmentationReport",
    "augment_target",
    "augment_training_side",
    "cap_per_class",
    "check_provenance",
    "class_weights",
    "drop_rare_classes",
    "estimate_background",
    "load_study_sample",
    "make_augmenter",
    "plan_augmentation",
    "preview_augmentations",
    "save_study_sample",
    "study_sample_path",
    "study_sample_table",
]

PROVENANCE_COLUMNS: tuple[str, ...] = ("split", "source_id", "augmented")
MANIFEST_NAME = "manifest.json"


# --------------------------------------------------------------------------- classes and caps


def drop_rare_classes(catalog: pd.DataFrame, *, target: str,
                      min_per_class: int | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Remove rows without a label and classes with fewer than ``min_per_class`` items.

    Args:
        catalog, target: a table and its label column.
        min_per_class: smallest class kept (``None``: keep every labelled class).

    Returns:
        ``(kept, dropped)``: the kept rows (catalog order) and one row per dropped group
        ``[class, items, reason]`` — nothing leaves the study without being listed. Fewer
        than two classes left (nothing to classify) is a ``ValueError`` naming them.
    """
    columns_present(catalog, [target], "catalog")
    min_per_class = positive_int("min_per_class", min_per_class, allow_none=True)
    unlabelled = catalog[target].isna()
    counts = catalog.loc[~unlabelled, target].value_counts()
    rare = counts[counts < min_per_class] if min_per_class else counts.iloc[:0]
    dropped = [{"class": str(c), "items": int(n), "reason": f"fewer than {min_per_class} items"}
               for c, n in rare.items()]
    if unlabelled.any():
        dropped.append({"class": "<missing>", "items": int(unlabelled.sum()), "reason": "no label"})
    keep = ~unlabelled & ~catalog[target].isin(rare.index)
    if len(left := counts.drop(rare.index)) < 2:
        raise ValueError(f"{target!r} has {len(left)} class(es) left {left.to_dict()}: a classifier "
                         f"needs two. Received: target={target!r}, min_per_class={min_per_class!r}")
    return (catalog.loc[keep].reset_index(drop=True),
            pd.DataFrame(dropped, columns=["class", "items", "reason"]))


def _allocate(total: int, sizes: np.ndarray) -> np.ndarray:
    """Split ``total`` over cells proportionally to ``sizes`` (largest remainder), never above a size."""
    exact = total * sizes / sizes.sum()
    quota = np.minimum(np.floor(exact).astype(int), sizes)
    order = np.argsort(-(exact - quota), kind="stable")
    i = 0
    while quota.sum() < total:
        cell = order[i % len(order)]
        if quota[cell] < sizes[cell]:
            quota[cell] += 1
        i += 1
    return quota


def cap_per_class(catalog: pd.DataFrame, *, target: str, cap: int | None,
                  seed: int = config.SEED) -> pd.DataFrame:
    """At most ``cap`` items per class, drawn so each class keeps its split proportions.

    Args:
        catalog: kept catalog rows with a ``split`` column (``splits.make_splits``).
        target: the label column.
        cap: items per class (the original study: 1,000); ``None`` keeps everything.
        seed: random seed; the draw does not depend on the row order.

    Returns:
        The sampled rows, in the catalog's order.
    """
    columns_present(catalog, ["id", target, "split"], "catalog")
    cap = positive_int("cap", cap, allow_none=True)
    catalog = catalog.reset_index(drop=True)
    if cap is None:
        return catalog.copy()
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for _, group in sorted(catalog.groupby(target, sort=True), key=lambda kv: str(kv[0])):
        cells = [g for _, g in sorted(group.groupby("split"), key=lambda kv: SPLIT_NAMES.index(kv[0])
                                      if kv[0] in SPLIT_NAMES else len(SPLIT_NAMES))]
        sizes = np.array([len(g) for g in cells])
        for cell, quota in zip(cells, _allocate(min(cap, int(sizes.sum())), sizes)):
            ordered = cell.sort_values("id", key=lambda s: s.astype(str))
            picked = rng.choice(len(ordered), size=int(quota), replace=False)
            chosen.extend(ordered.index[np.sort(picked)].tolist())
    return catalog.loc[sorted(chosen)].reset_index(drop=True)


def class_weights(labels: Sequence[Any], *, classes: Sequence[Any] | None = None) -> dict[Any, float]:
    """Balanced class weights (scikit-learn ``compute_class_weight``): n / (k * count).

    The alternative to augmentation: pass ``{class_index: weight}`` to ``model.fit(class_weight=...)``.

    Args:
        labels: the training labels.
        classes: the classes, in order (default: the sorted unique labels).

    Returns:
        ``{class: weight}``.
    """
    from sklearn.utils.class_weight import compute_class_weight

    y = np.asarray(labels)
    if y.size == 0:
        raise ValueError("class_weights needs at least one label. Received: 0 labels")
    classes = np.unique(y) if classes is None else np.asarray(classes)
    missing = sorted(set(classes.tolist()) - set(np.unique(y).tolist()), key=str)
    if missing:
        raise ValueError(f"Every class needs at least one training label. Missing: {missing}")
    weights = compute_class_weight("balanced", classes=classes, y=y)
    return {c.item() if isinstance(c, np.generic) else c: float(w) for c, w in zip(classes, weights)}


# --------------------------------------------------------------------------- augmentation


def make_augmenter(*, seed: int = config.SEED, flip: bool = True, rotation: float = 0.05,
                   zoom: float = 0.1, translation: float = 0.05, contrast: float = 0.2,
                   fill_mode: str = "constant", fill_value: float = 0.0) -> "keras.Sequential":  # noqa: F821
    """The augmentation pipeline: a ``keras.Sequential`` of random preprocessing layers.

    Takes float RGB 0–255 images ``(B, H, W, 3)``; call it with ``training=True``.

    Args:
        seed: seeds every layer (a new augmenter with the same seed repeats the same images).
        flip: random horizontal flips.
        rotation: rotation range as a fraction of a full turn (0.05 = ±18°).
        zoom: zoom range (fraction of the side).
        translation: shift range (fraction of the side), both directions.
        contrast: contrast factor range.
        fill_mode: how pixels from outside the image are filled (``"constant"``, ``"nearest"``,
            ``"reflect"``, ``"wrap"``). ``"nearest"`` smears products that touch the border (most
            Fashion-MNIST items do), so the default is a constant background colour.
        fill_value: that background (0 black, 255 white); see :func:`estimate_background`.

    Returns:
        A ``keras.Sequential`` named ``augmentation``.
    """
    import keras
    from keras import layers

    for name, value in (("rotation", rotation), ("zoom", zoom), ("translation", translation),
                        ("contrast", contrast)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise ValueError(f"{name} must be a number with 0 <= x < 1. Received: {name}={value!r}")
    if isinstance(fill_value, bool) or not isinstance(fill_value, (int, float)) or not 0 <= fill_value <= 255:
        raise ValueError(f"fill_value must be a pixel value in 0..255. Received: fill_value={fill_value!r}")
    fill = {"fill_mode": fill_mode, "fill_value": float(fill_value)}
    steps = [layers.RandomFlip("horizontal", seed=seed, name="flip")] if flip else []
    if rotation:
        steps.append(layers.RandomRotation(rotation, seed=seed + 1, name="rotation", **fill))
    if zoom:
        steps.append(layers.RandomZoom(zoom, seed=seed + 2, name="zoom", **fill))
    if translation:
        steps.append(layers.RandomTranslation(translation, translation, seed=seed + 3, name="translation",
                                              **fill))
    if contrast:
        steps.append(layers.RandomContrast(contrast, seed=seed + 4, name="contrast"))
    if not steps:
        raise ValueError("The augmenter would do nothing: enable at least one transformation.")
    return keras.Sequential(steps, name="augmentation")


def estimate_background(image_paths: Sequence[str], *, n: int = 50, seed: int = config.SEED) -> float:
    """The typical background value: the median of the one-pixel border of up to ``n`` images.

    About 0 for Fashion-MNIST (black), about 255 for catalog photos on white.
    """

    paths = list(image_paths)
    if not paths:
        raise ValueError("estimate_background needs at least one image. Received: 0 paths")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(paths), size=min(n, len(paths)), replace=False)
    borders = []
    for i in chosen:
        img = read_image_rgb(paths[i]).astype(np.float32)
        borders += [img[0].ravel(), img[-1].ravel(), img[:, 0].ravel(), img[:, -1].ravel()]
    return float(np.median(np.concatenate(borders)))


def _to_uint8(batch: Any) -> np.ndarray:
    return np.clip(np.rint(np.asarray(batch, dtype=np.float32)), 0, 255).astype(np.uint8)


def preview_augmentations(image: np.ndarray, *, augmenter: Any, n: int = 7) -> list[np.ndarray]:
    """``n`` augmented versions of one image (uint8 RGB), for a figure.

    Returns:
        ``[image, aug_1, ..., aug_n]`` as uint8 arrays.
    """
    n = positive_int("n", n)
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must be an RGB array (H, W, 3). Received shape: {image.shape}")
    batch = np.repeat(image[None].astype(np.float32), n, axis=0)
    return [image.astype(np.uint8), *_to_uint8(augmenter(batch, training=True))]


def augment_target(sample: pd.DataFrame, *, target: str, augment_to: int | None = None,
                   ceiling: int = config.AUGMENT_CEILING) -> int | None:
    """The training-side size small classes grow to, from the capped ``sample``: for
    ``augment_to=None`` the largest training class's size, at most ``ceiling`` (a balanced
    catalog is not augmented); ``0`` means no augmentation (``None``); a number is itself."""
    columns_present(sample, [target, "split"], "sample")
    ceiling = positive_int("ceiling", ceiling)
    if augment_to == 0:
        return None
    if augment_to is not None:
        return positive_int("augment_to", augment_to)
    counts = sample.loc[sample["split"] == "train", target].value_counts()
    return min(ceiling, int(counts.max())) if len(counts) else None


def plan_augmentation(sample: pd.DataFrame, *, target: str, augment_to: int | None,
                      max_copies: int | None = None, seed: int = config.SEED) -> pd.DataFrame:
    """Which training images get augmented copies, and how many.

    Each training-side class with fewer than ``augment_to`` original images is grown to
    ``augment_to`` (or to ``1 + max_copies`` times its size, if that is less); its training
    images are used in a seeded random order, round-robin, so the copies are spread evenly over
    the sources. Validation and test items are never sources.

    Args:
        sample: the capped sample (``id``, ``target``, ``split``).
        target: the label column.
        augment_to: the training-side size to grow small classes to (``None``: no augmentation).
        max_copies: the most augmented copies one training image gives (``None``: no limit).
        seed: random seed.

    Returns:
        ``[id, source_id, <target>]`` with ids ``<source_id>_aug<k>`` (``k`` counts from 1
        for each source).
    """
    columns_present(sample, ["id", target, "split"], "sample")
    augment_to = positive_int("augment_to", augment_to, allow_none=True)
    max_copies = positive_int("max_copies", max_copies, allow_none=True)
    columns = ["id", "source_id", target]
    originals = sample if "augmented" not in sample.columns else sample[~sample["augmented"].astype(bool)]
    train = originals[originals["split"] == "train"]
    if augment_to is None or train.empty:
        return pd.DataFrame(columns=columns)
    rng = np.random.default_rng(seed)
    rows = []
    for label, group in sorted(train.groupby(target), key=lambda kv: str(kv[0])):
        need = augment_to - len(group)
        if max_copies is not None:
            need = min(need, max_copies * len(group))
        if need <= 0:
            continue
        sources = np.sort(group["id"].astype(str).to_numpy())
        sources = sources[rng.permutation(len(sources))]
        copies: dict[str, int] = {}
        for i in range(need):
            src = sources[i % len(sources)]
            copies[src] = copies.get(src, 0) + 1
            rows.append((f"{src}_aug{copies[src]}", src, label))
    return pd.DataFrame(rows, columns=columns)


@dataclass
class AugmentationReport:
    """What :func:`augment_training_side` did."""

    planned: int = 0
    written: int = 0
    reused: int = 0
    removed_stale: int = 0
    per_class: dict[str, int] = field(default_factory=dict)
    out_dir: str = ""

    def __str__(self) -> str:
        lines = [f"Augmented images: {self.planned} planned, {self.written} written, {self.reused} already "
                 f"on disk, {self.removed_stale} stale file(s) removed "
                 f"({config.display_path(self.out_dir)})"]
        lines += [f"  {label}: +{n}" for label, n in self.per_class.items()]
        return "\n".join(lines)


def _fingerprint(plan: pd.DataFrame, sources: pd.Series, augmenter: Any, **settings: Any) -> str:
    """Everything the augmented pixels depend on (the random draws depend on the batching)."""
    payload = {"plan": plan[["id", "source_id"]].astype(str).values.tolist(),
               "sources": sources.astype(str).tolist(),
               "augmenter": augmenter.get_config(), **settings}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _read_source(path: str, *, max_side: int | None) -> np.ndarray:
    """A source image as uint8 RGB, shrunk (aspect kept) so that neither side exceeds ``max_side``."""
    from PIL import Image


    img = read_image_rgb(path)
    if max_side is not None and max(img.shape[:2]) > max_side:
        scale = max_side / max(img.shape[:2])
        size = (max(1, round(img.shape[1] * scale)), max(1, round(img.shape[0] * scale)))
        img = np.asarray(Image.fromarray(img).resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0))
    return img


def _write_png(array: np.ndarray, path: Path) -> str:
    """Write ``array`` as PNG (grey when all channels are equal) atomically, unless the file
    already holds exactly these bytes.

    Returns:
        ``"new"``, ``"unchanged"`` or ``"rewritten"`` (the file existed with other pixels).
    """
    import io

    from PIL import Image

    grey = bool((array[..., 0] == array[..., 1]).all() and (array[..., 1] == array[..., 2]).all())
    buffer = io.BytesIO()
    Image.fromarray(array[..., 0] if grey else array, mode="L" if grey else "RGB").save(
        buffer, format="PNG", compress_level=1)
    data = buffer.getvalue()
    status = "new"
    if path.exists():
        if path.read_bytes() == data:
            return "unchanged"
        status = "rewritten"
    write_bytes_atomic(path, data)
    return status


def augment_training_side(sample: pd.DataFrame, *, target: str, augment_to: int | None,
                          out_dir: str | os.PathLike, max_copies: int | None = None,
                          augmenter: Any = None,
                          seed: int = config.SEED, batch_size: int = 256, max_side: int | None = 512,
                          ) -> tuple[pd.DataFrame, AugmentationReport]:
    """Grow small training-side classes with augmented copies of training images.

    Copies are written as PNG (atomically) to ``out_dir``. A manifest records what was made;
    an identical later call reuses the files without augmenting again, and leaves a copy whose
    pixels did not change untouched. (A rewritten file is a new file to the feature store,
    which names images by path, size, inode and time: its vectors are computed again.)

    Args:
        sample: the capped sample (``id``, ``image_path``, ``target``, ``split``, attributes).
        target: the label column.
        augment_to: training-side size for small classes (``None``: no augmentation).
        out_dir: folder for the augmented images (``paths.interim / "augmented" / target``).
        max_copies: the most copies one training image gives (``None``: no limit).
        augmenter: a callable like :func:`make_augmenter`'s (default: ``make_augmenter(seed=seed)``).
        seed: random seed for the plan and the default augmenter.
        batch_size: images augmented per call (and held in memory at once).
        max_side: sources larger than this (e.g. full-size 1800x2400 catalog photos) are first
            shrunk to it, keeping the aspect ratio (``None``: never). The backbones see far
            smaller images anyway.

    Returns:
        ``(study_sample, report)``: the sample plus one row per copy, with provenance columns
        ``source_id`` (the id itself for originals) and ``augmented``.
    """
    columns_present(sample, ["id", "image_path", target, "split"], "sample")
    max_side = positive_int("max_side", max_side, minimum=8, allow_none=True)
    if "augmented" in sample.columns and sample["augmented"].astype(bool).any():
        raise ValueError("sample already holds augmented rows: pass the capped sample of originals.")
    batch_size = positive_int("batch_size", batch_size)
    base = sample.drop(columns=[c for c in PROVENANCE_COLUMNS if c != "split"], errors="ignore").copy()
    base["id"] = base["id"].astype(str)
    base["source_id"] = base["id"]
    base["augmented"] = False
    plan = plan_augmentation(base, target=target, augment_to=augment_to,
                             max_copies=max_copies, seed=seed)
    out = Path(out_dir)
    report = AugmentationReport(planned=len(plan), out_dir=str(out),
                                per_class={str(k): int(v) for k, v in plan[target].value_counts().sort_index().items()})
    if plan.empty:
        return base.reset_index(drop=True), report

    augmenter = augmenter if augmenter is not None else make_augmenter(seed=seed)
    by_id = base.set_index("id")
    source_paths = by_id.loc[plan["source_id"], "image_path"].astype(str)
    files = [out / f"{id_to_stem(aug_id)}.png" for aug_id in plan["id"]]  # any id: a safe name
    fingerprint = _fingerprint(plan, source_paths, augmenter, batch_size=batch_size, max_side=max_side)
    manifest = out / MANIFEST_NAME
    out.mkdir(parents=True, exist_ok=True)
    previous = json.loads(manifest.read_text()) if manifest.exists() else {}
    if previous.get("fingerprint") == fingerprint and all(f.exists() for f in files):
        report.reused = len(files)
    else:
        manifest.unlink(missing_ok=True)  # an interrupted run must not look complete
        status: dict[str, list[str]] = {"new": [], "unchanged": [], "rewritten": []}
        for lo in range(0, len(files), batch_size):  # at most batch_size images in memory
            images = {i: _read_source(source_paths.iloc[i], max_side=max_side)
                      for i in range(lo, min(lo + batch_size, len(files)))}
            by_shape: dict[tuple[int, ...], list[int]] = {}
            for i, img in images.items():
                by_shape.setdefault(img.shape, []).append(i)
            for chunk in by_shape.values():
                batch = np.stack([images[i] for i in chunk]).astype(np.float32)
                for i, arr in zip(chunk, _to_uint8(augmenter(batch, training=True))):
                    status[_write_png(arr, files[i])].append(plan["id"].iloc[i])
        report.written = len(status["new"]) + len(status["rewritten"])
        report.reused = len(status["unchanged"])
        write_json_atomic(manifest, {"fingerprint": fingerprint, "n": len(files), "target": target,
                                     "augment_to": augment_to, "max_copies": max_copies,
                                     "seed": seed}, indent=1)
    wanted = {f.name for f in files}
    for stale in out.glob("*_aug*.png"):
        if stale.name not in wanted:
            stale.unlink()
            report.removed_stale += 1
    copies = by_id.loc[plan["source_id"]].reset_index()
    copies["id"] = plan["id"].to_numpy()
    copies["image_path"] = [str(f.resolve()) for f in files]
    copies["source_id"] = plan["source_id"].to_numpy()
    copies["split"] = "train"
    copies["augmented"] = True
    study = pd.concat([base, copies[base.columns]], ignore_index=True)
    return study, report


# --------------------------------------------------------------------------- checks and tables


def check_provenance(sample: pd.DataFrame, *, splits: pd.DataFrame | None = None) -> dict[str, int]:
    """Verify that the study sample cannot leak validation or test items into training.

    Checks: unique ids; known split names; originals are their own source; every augmented row
    is a training row whose source is an original **training** item of the same sample; and,
    with ``splits``, every original keeps the side ``splits`` gave it.

    Returns:
        Counts per split, and of augmented rows (for display).

    Raises:
        ValueError: naming the offending ids.
    """
    columns_present(sample, ["id", "split", "source_id", "augmented"], "sample")
    ids = sample["id"].astype(str)
    if ids.duplicated().any():
        raise ValueError(f"Duplicate ids in the study sample, e.g. {ids[ids.duplicated()].unique()[:5].tolist()}")
    unknown = sorted(set(sample["split"].astype(str)) - set(SPLIT_NAMES))
    if unknown:
        raise ValueError(f"Unknown split name(s) {unknown}; expected {list(SPLIT_NAMES)}")
    augmented = sample["augmented"].astype(bool).to_numpy()
    originals, copies = sample[~augmented], sample[augmented]
    not_self = originals["source_id"].astype(str) != originals["id"].astype(str)
    if not_self.any():
        raise ValueError(f"Original rows must be their own source; these are not: "
                         f"{originals.loc[not_self, 'id'].head(5).tolist()}")
    off_train = copies["split"] != "train"
    if off_train.any():
        raise ValueError(f"Augmented images may only be training items; these are not: "
                         f"{copies.loc[off_train, 'id'].head(5).tolist()}")
    source_split = copies["source_id"].astype(str).map(
        originals.set_index(originals["id"].astype(str))["split"])
    orphan = source_split.isna()
    if orphan.any():
        raise ValueError(f"Augmented images whose source is not an original of the sample: "
                         f"{copies.loc[orphan, 'id'].head(5).tolist()}")
    leaked = source_split != "train"
    if leaked.any():
        bad = copies.loc[leaked, ["id", "source_id"]].assign(source_split=source_split[leaked])
        raise ValueError(f"Augmented images made from validation/test items (leak): "
                         f"{bad.head(5).to_dict('records')}")
    if splits is not None:
        official = splits.set_index(splits["id"].astype(str))["split"]
        mine = originals.set_index(originals["id"].astype(str))["split"]
        missing = mine.index.difference(official.index)
        if len(missing):
            raise ValueError(f"Sample ids absent from the splits: {missing[:5].tolist()}")
        moved = mine != official.loc[mine.index]
        if moved.any():
            raise ValueError(f"Sample items on another side than in the splits: "
                             f"{mine.index[moved][:5].tolist()}")
    counts = sample["split"].value_counts().reindex(SPLIT_NAMES, fill_value=0)
    return {**{k: int(v) for k, v in counts.items()}, "augmented": int(augmented.sum())}


def study_sample_table(catalog: pd.DataFrame, sample: pd.DataFrame, *, target: str) -> pd.DataFrame:
    """Per class: catalog count, sampled, augmented, final, and train / val / test counts.

    Classes that were dropped show their catalog count and zeros. A ``total`` row closes it.
    """
    columns_present(sample, [target, "split", "augmented"], "sample")
    augmented = sample["augmented"].astype(bool)
    table = pd.DataFrame({
        "catalog": catalog[target].value_counts(),
        "sampled": sample.loc[~augmented, target].value_counts(),
        "augmented": sample.loc[augmented, target].value_counts(),
        "final": sample[target].value_counts(),
    })
    by_split = pd.crosstab(sample[target], sample["split"]).reindex(columns=list(SPLIT_NAMES), fill_value=0)
    table = table.join(by_split).fillna(0).astype(int)
    table = table.sort_values(["final", "catalog"], ascending=False)
    table.loc["total"] = table.sum()
    table.index.name = target
    return table


# --------------------------------------------------------------------------- files


def study_sample_path(paths: Paths, *, target: str = config.DEFAULT_TARGET) -> Path:
    """``study_sample.csv`` for the default target, ``study_sample_<target>.csv`` otherwise."""
    suffix = "" if target == config.DEFAULT_TARGET else f"_{target}"
    return paths.processed / f"study_sample{suffix}.csv"


def save_study_sample(sample: pd.DataFrame, paths: Paths, *, target: str = config.DEFAULT_TARGET,
                      splits: pd.DataFrame | None = None) -> Path:
    """Check provenance (:func:`check_provenance`), then write the sample atomically."""
    columns_present(sample, ["id", "image_path", target, *PROVENANCE_COLUMNS], "sample")
    check_provenance(sample, splits=splits)
    first = ["id", "image_path", target]
    columns = first + [c for c in sample.columns if c not in first and c not in PROVENANCE_COLUMNS]
    return write_csv_atomic(sample[columns + list(PROVENANCE_COLUMNS)], study_sample_path(paths, target=target))


def load_study_sample(paths: Paths, *, target: str = config.DEFAULT_TARGET) -> pd.DataFrame:
    """Read the study sample notebook 02 wrote (ids as strings, ``augmented`` as bool).

    Raises:
        FileNotFoundError: notebook 02 has not run for this data set / target yet.
    """
    path = study_sample_path(paths, target=target)
    sample = read_table_of_02(path, what="study sample", target=target,
                              dtype={"id": str, "source_id": str, "split": str, target: str},
                              keep_default_na=False, na_values=[""])
    sample["augmented"] = sample["augmented"].astype(str).str.lower().map({"true": True, "false": False})
    if sample["augmented"].isna().any():
        raise ValueError(f"{path}: the 'augmented' column must hold True/False.")
    check_provenance(sample)
    return sample
