"""The study sample: drops, caps, training-side augmentation with provenance, class weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fashion_utils import config
from fashion_utils.catalog import image_files, sampling, splits

TARGET = "masterCategory"


def _catalog(tmp_path, sizes=None, *, image_side=12):
    """A tiny catalog of real PNG files (grey for class A, colour otherwise)."""
    sizes = sizes or {"A": 40, "B": 12, "C": 6, "Rare": 2}
    folder = tmp_path / "images"
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    for label, n in sizes.items():
        for _ in range(n):
            item = str(len(rows))
            shape = (image_side, image_side) if label == "A" else (image_side, image_side + 2, 3)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(folder / f"{item}.png")
            rows.append({"id": item, "image_path": str(folder / f"{item}.png"), TARGET: label,
                         "articleType": f"{label}-type"})
    return pd.DataFrame(rows)


def _split(catalog, seed=0):
    kept, _ = sampling.drop_rare_classes(catalog, target=TARGET, min_per_class=5)
    return splits.attach_splits(kept, splits.make_splits(kept, target=TARGET, seed=seed))


@pytest.fixture()
def paths(tmp_path):
    return config.Paths(data_dir=tmp_path / "catalog", root=tmp_path).ensure()


@pytest.fixture()
def study(tmp_path):
    """A study sample with class B and C grown to 10 training images."""
    catalog = _catalog(tmp_path)
    capped = sampling.cap_per_class(_split(catalog), target=TARGET, cap=30, seed=0)
    sample, report = sampling.augment_training_side(
        capped, target=TARGET, augment_to=10, out_dir=tmp_path / "augmented", seed=0)
    return catalog, capped, sample, report


def test_drop_rare_classes_reports_every_dropped_row(tmp_path):
    catalog = _catalog(tmp_path).astype({TARGET: object})
    catalog.loc[0, TARGET] = None
    kept, dropped = sampling.drop_rare_classes(catalog, target=TARGET, min_per_class=5)
    assert set(kept[TARGET]) == {"A", "B", "C"}
    assert dropped.set_index("class")["items"].to_dict() == {"Rare": 2, "<missing>": 1}
    assert len(kept) + dropped["items"].sum() == len(catalog)
    assert "fewer than 5" in dropped.set_index("class").loc["Rare", "reason"]
    everything, none = sampling.drop_rare_classes(catalog.dropna(), target=TARGET, min_per_class=None)
    assert len(everything) == len(catalog) - 1 and none.empty


@pytest.mark.parametrize("cap", [1, 5, 10, 30])
def test_cap_per_class_caps_and_keeps_split_proportions(tmp_path, cap):
    table = _split(_catalog(tmp_path))
    capped = sampling.cap_per_class(table, target=TARGET, cap=cap, seed=1)
    counts = capped[TARGET].value_counts()
    full = table[TARGET].value_counts()
    for label in full.index:
        assert counts.get(label, 0) == min(cap, full[label])
        expected = table.loc[table[TARGET] == label, "split"].value_counts(normalize=True) * counts[label]
        got = capped.loc[capped[TARGET] == label, "split"].value_counts().reindex(expected.index, fill_value=0)
        assert (abs(got - expected) < 1).all()
    assert capped["id"].is_unique and set(capped["id"]) <= set(table["id"])


def test_cap_per_class_is_deterministic_and_none_keeps_all(tmp_path):
    table = _split(_catalog(tmp_path))
    a = sampling.cap_per_class(table, target=TARGET, cap=8, seed=3)
    b = sampling.cap_per_class(table.sample(frac=1, random_state=2), target=TARGET, cap=8, seed=3)
    assert sorted(a["id"]) == sorted(b["id"])
    assert len(sampling.cap_per_class(table, target=TARGET, cap=None)) == len(table)
    with pytest.raises(ValueError, match="cap=0"):
        sampling.cap_per_class(table, target=TARGET, cap=0)


def test_plan_grows_only_training_side_minority_classes(tmp_path):
    capped = sampling.cap_per_class(_split(_catalog(tmp_path)), target=TARGET, cap=30, seed=0)
    plan = sampling.plan_augmentation(capped, target=TARGET, augment_to=10, seed=0)
    train = capped[capped["split"] == "train"]
    before = train[TARGET].value_counts()
    assert plan[TARGET].value_counts().to_dict() == {c: 10 - n for c, n in before.items() if n < 10}
    assert set(plan["source_id"]) <= set(train["id"])
    assert plan["id"].is_unique
    assert all(i.startswith(f"{s}_aug") for i, s in zip(plan["id"], plan["source_id"]))
    assert sampling.plan_augmentation(capped, target=TARGET, augment_to=None).empty


@pytest.mark.parametrize("max_copies", [1, 2, 3])
def test_no_training_image_gives_more_than_max_copies(tmp_path, max_copies):
    capped = sampling.cap_per_class(_split(_catalog(tmp_path)), target=TARGET, cap=30, seed=0)
    plan = sampling.plan_augmentation(capped, target=TARGET, augment_to=1000,
                                      max_copies=max_copies, seed=0)
    before = capped[capped["split"] == "train"][TARGET].value_counts()
    assert plan[TARGET].value_counts().to_dict() == {c: max_copies * n for c, n in before.items()}
    assert plan["source_id"].value_counts().max() == max_copies
    unlimited = sampling.plan_augmentation(capped, target=TARGET, augment_to=1000, seed=0)
    assert unlimited[TARGET].value_counts().to_dict() == {c: 1000 - n for c, n in before.items()}
    with pytest.raises(ValueError, match="max_copies=0"):
        sampling.plan_augmentation(capped, target=TARGET, augment_to=10, max_copies=0)


def test_augment_target_grows_towards_the_largest_training_class(tmp_path):
    capped = sampling.cap_per_class(_split(_catalog(tmp_path)), target=TARGET, cap=30, seed=0)
    largest = capped[capped["split"] == "train"][TARGET].value_counts().max()
    assert sampling.augment_target(capped, target=TARGET) == largest
    assert sampling.augment_target(capped, target=TARGET, ceiling=3) == 3
    assert sampling.augment_target(capped, target=TARGET, augment_to=0) is None
    assert sampling.augment_target(capped, target=TARGET, augment_to=7) == 7
    balanced = capped.assign(**{TARGET: "A"})  # one class: nothing to grow
    plan = sampling.plan_augmentation(
        balanced, target=TARGET, augment_to=sampling.augment_target(balanced, target=TARGET))
    assert plan.empty
    with pytest.raises(ValueError, match="augment_to=-2"):
        sampling.augment_target(capped, target=TARGET, augment_to=-2)


def test_augmented_images_are_training_items_made_from_training_items(study):
    _, capped, sample, report = study
    copies = sample[sample["augmented"]]
    originals = sample[~sample["augmented"]].set_index("id")
    assert len(copies) == report.planned == report.written > 0
    # The leak the original study had: no augmented image may come from a val/test item.
    assert (originals.loc[copies["source_id"], "split"] == "train").all()
    assert (copies["split"] == "train").all()
    assert not set(copies["source_id"]) & set(capped.loc[capped["split"] != "train", "id"])
    # Minority classes reach augment_to on the training side; the large class is untouched.
    train_counts = sample[sample["split"] == "train"][TARGET].value_counts()
    assert train_counts["B"] == train_counts["C"] == 10
    assert not (copies[TARGET] == "A").any()
    # Copies inherit the source's attributes, and their files are PNGs of the source's size.
    for _, row in copies.head(5).iterrows():
        src = originals.loc[row["source_id"]]
        assert row["articleType"] == src["articleType"]
        with Image.open(row["image_path"]) as img, Image.open(src["image_path"]) as orig:
            assert img.format == "PNG" and img.size == orig.size
    assert sampling.check_provenance(sample, splits=capped[["id", "split"]])["augmented"] == len(copies)


def _mean_colour_model():
    import keras

    inputs = keras.Input((None, None, 3))
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))


def _stored_features(sample, cache_dir):
    from fashion_utils.vision import features

    return features.extract_embeddings(sample["id"], sample["image_path"],
                                       model_factory=_mean_colour_model, model_key="mean",
                                       image_size=16, cache_dir=cache_dir, batch_size=8,
                                       chunk_size=8, progress=False)[1]


def test_identical_rerun_reuses_files_and_changed_settings_never_serve_stale_features(
        study, tmp_path):
    """A copy made again with other settings is a new file to the feature store: the features
    read after the change are those of the new pixels (checked against a fresh store)."""
    _, capped, sample, _ = study
    stored = tmp_path / "features"
    before = _stored_features(sample, stored)
    files = {p: Path(p).stat().st_mtime_ns for p in sample["image_path"]}
    again, report = sampling.augment_training_side(capped, target=TARGET, augment_to=10,
                                                   out_dir=tmp_path / "augmented", seed=0)
    assert report.reused == report.planned and report.written == 0
    pd.testing.assert_frame_equal(again, sample)
    assert {p: Path(p).stat().st_mtime_ns for p in again["image_path"]} == files  # untouched
    np.testing.assert_array_equal(_stored_features(again, stored), before)
    changed_sample, changed = sampling.augment_training_side(
        capped, target=TARGET, augment_to=10, out_dir=tmp_path / "augmented", seed=0,
        augmenter=sampling.make_augmenter(seed=9))
    assert changed.written == changed.planned > 0
    after = _stored_features(changed_sample, stored)
    np.testing.assert_allclose(after, _stored_features(changed_sample, tmp_path / "fresh"),
                               atol=1e-4)
    copies = changed_sample["augmented"].to_numpy()
    assert not np.allclose(after[copies], before[copies], atol=1e-3)


def test_identical_regeneration_leaves_the_files_untouched(study, tmp_path):
    _, capped, sample, _ = study
    # Same settings without the manifest: augmented again, byte-identical, files not rewritten.
    files = {p: Path(p).stat().st_mtime_ns for p in sample["image_path"]}
    (tmp_path / "augmented" / sampling.MANIFEST_NAME).unlink()
    _, again = sampling.augment_training_side(capped, target=TARGET, augment_to=10, seed=0,
                                              out_dir=tmp_path / "augmented")
    assert again.reused == again.planned and again.written == 0
    assert {p: Path(p).stat().st_mtime_ns for p in sample["image_path"]} == files


def test_check_provenance_catches_leaks(study):
    _, capped, sample, _ = study
    test_item = capped.loc[capped["split"] == "test", "id"].iloc[0]
    leaky = sample.copy()
    leaky.loc[leaky.index[leaky["augmented"]][0], "source_id"] = test_item
    with pytest.raises(ValueError, match="leak"):
        sampling.check_provenance(leaky)
    moved = sample.copy()
    moved.loc[moved.index[moved["augmented"]][0], "split"] = "test"
    with pytest.raises(ValueError, match="only be training items"):
        sampling.check_provenance(moved)
    orphan = sample.copy()
    orphan.loc[orphan.index[orphan["augmented"]][0], "source_id"] = "no-such-id"
    with pytest.raises(ValueError, match="not an original"):
        sampling.check_provenance(orphan)
    other_side = capped[["id", "split"]].copy()
    other_side.loc[other_side["split"] == "train", "split"] = "val"
    with pytest.raises(ValueError, match="another side"):
        sampling.check_provenance(sample, splits=other_side)


def test_study_sample_table_adds_up(study):
    catalog, _, sample, _ = study
    table = sampling.study_sample_table(catalog, sample, target=TARGET)
    assert list(table.columns) == ["catalog", "sampled", "augmented", "final", "train", "val", "test"]
    body = table.drop(index="total")
    assert (body["sampled"] + body["augmented"] == body["final"]).all()
    assert (body[["train", "val", "test"]].sum(axis=1) == body["final"]).all()
    assert body.loc["Rare", "catalog"] == 2 and body.loc["Rare", "final"] == 0
    assert table.loc["total", "final"] == len(sample)


def test_save_and_load_study_sample_round_trip(study, paths):
    _, _, sample, _ = study
    out = sampling.save_study_sample(sample, paths, target=TARGET)
    assert out.name == "study_sample.csv"
    loaded = sampling.load_study_sample(paths)
    assert list(loaded.columns[:3]) == ["id", "image_path", TARGET]
    assert list(loaded.columns[-3:]) == ["split", "source_id", "augmented"]
    assert loaded["augmented"].dtype == bool and loaded["id"].tolist() == sample["id"].tolist()
    other = sampling.save_study_sample(sample, paths, target="articleType")
    assert other.name == "study_sample_articleType.csv"
    with pytest.raises(FileNotFoundError, match="run notebook 02"):
        sampling.load_study_sample(paths, target="subCategory")


def test_class_weights_balance_the_classes():
    labels = np.array([0] * 8 + [1] * 2)
    weights = sampling.class_weights(labels)
    assert weights == pytest.approx({0: 10 / (2 * 8), 1: 10 / (2 * 2)})
    assert sum(weights[c] * (labels == c).sum() for c in weights) == pytest.approx(len(labels))
    assert set(sampling.class_weights(["a", "b", "b"])) == {"a", "b"}
    with pytest.raises(ValueError, match="Missing: \\[2\\]"):
        sampling.class_weights(labels, classes=[0, 1, 2])


def test_augmenter_and_preview():
    image = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    previews = sampling.preview_augmentations(image, augmenter=sampling.make_augmenter(seed=1), n=4)
    assert len(previews) == 5 and all(p.shape == (16, 16, 3) and p.dtype == np.uint8 for p in previews)
    assert (previews[0] == image).all() and any((p != image).any() for p in previews[1:])
    again = sampling.preview_augmentations(image, augmenter=sampling.make_augmenter(seed=1), n=4)
    assert all((a == b).all() for a, b in zip(previews, again))
    with pytest.raises(ValueError, match="rotation=1.5"):
        sampling.make_augmenter(rotation=1.5)
    with pytest.raises(ValueError, match="fill_value=300"):
        sampling.make_augmenter(fill_value=300)


def test_augmentation_fills_with_the_background():
    image = np.full((20, 20, 3), 255, np.uint8)
    image[5:15, 5:15] = 0  # a dark product on white
    augmenter = sampling.make_augmenter(seed=0, flip=False, rotation=0.0, zoom=0.0, translation=0.2,
                                        contrast=0.0, fill_value=255)
    shifted = sampling.preview_augmentations(image, augmenter=augmenter, n=6)[1:]
    assert all((p[[0, -1]] >= 250).all() and (p[:, [0, -1]] >= 250).all() for p in shifted)


def test_estimate_background(tmp_path):
    paths = []
    for i, value in enumerate([0, 0, 255]):
        img = np.full((10, 10), value, np.uint8)
        img[3:7, 3:7] = 128
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(img).save(paths[-1])
    assert sampling.estimate_background(paths) == 0.0
    assert sampling.estimate_background(paths[2:]) == 255.0


def test_large_sources_are_shrunk_before_augmentation(tmp_path):
    catalog = _catalog(tmp_path, {"A": 10, "B": 6}, image_side=40)
    capped = sampling.cap_per_class(_split(catalog), target=TARGET, cap=None)
    sample, report = sampling.augment_training_side(capped, target=TARGET, augment_to=8, seed=0,
                                                    out_dir=tmp_path / "aug", max_side=20, batch_size=3)
    copies = sample[sample["augmented"]]
    assert len(copies) == report.planned > 0
    for path in copies["image_path"]:
        with Image.open(path) as img:
            assert max(img.size) == 20
    with pytest.raises(ValueError, match="max_side=4"):
        sampling.augment_training_side(capped, target=TARGET, augment_to=8, out_dir=tmp_path / "x", max_side=4)


# --------------------------------------------------------------------------- file names from ids


def test_augmented_files_of_awkward_ids_are_flat_safe_and_name_their_ids(tmp_path):
    """Folder-catalog ids hold "/" (``eight/more/5``), others spaces, "..", accents: every copy
    is one PNG directly in out_dir, named through image_files.id_to_stem; a changed plan
    removes the old copies."""
    catalog = _catalog(tmp_path)
    awkward = ["label/eight/", "a b ", "../", "größe/", ".x"]
    catalog["id"] = [f"{awkward[i % len(awkward)]}{i}" for i in range(len(catalog))]
    capped = sampling.cap_per_class(_split(catalog), target=TARGET, cap=30, seed=0)
    out = tmp_path / "augmented"
    sample, report = sampling.augment_training_side(capped, target=TARGET, augment_to=10,
                                                    out_dir=out, seed=0)
    copies = sample[sample["augmented"]]
    files = sorted(out.glob("*.png"))
    assert report.written == len(copies) == len(files) > 0
    assert not [p for p in out.rglob("*") if p.is_dir()] and not list(tmp_path.glob("*.png"))
    assert {image_files.stem_to_id(p.stem) for p in files} == set(copies["id"])
    assert all(Path(p).parent == out for p in copies["image_path"])
    removed = set(copies["id"]) - set(sampling.plan_augmentation(capped, target=TARGET,
                                                                  augment_to=8, seed=0)["id"])
    _, smaller = sampling.augment_training_side(capped, target=TARGET, augment_to=8, out_dir=out,
                                                seed=0)
    assert smaller.removed_stale == len(removed) > 0
    assert {image_files.stem_to_id(p.stem) for p in out.glob("*.png")} == (
        set(copies["id"]) - removed)
