"""Search data: synthetic blobs, notebook 02/03's train and validation features, the .npz file."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from fashion_utils.tools import search_data

DIM, CLASSES = 8, 3


def _cache_pooled_features(rows, *, cache_dir):
    """Cache 3-d features (mean RGB) of these rows, as notebook 03 would cache the backbone's."""
    from fashion_utils.vision import features

    def factory():
        inputs = keras.Input((None, None, 3))
        return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))

    features.extract_embeddings(rows["id"], rows["image_path"], model_factory=factory,
                                model_key="efficientnet_lite0", image_size=32,
                                cache_dir=cache_dir, progress=False)


@pytest.fixture
def data():
    return search_data.synthetic_search_data(n=160, dim=DIM, num_classes=CLASSES, seed=0)


def test_search_data_round_trips_through_npz(tmp_path, data):
    path = search_data.save_search_data(data, tmp_path / "d.npz")
    back = search_data.read_search_data(path)
    for key in ("x_train", "y_train", "x_val", "y_val"):
        np.testing.assert_array_equal(back[key], data[key])
    assert back["class_names"] == data["class_names"] and back["source"] == data["source"]
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically, nothing left behind


def test_load_search_data_reads_train_and_val_from_the_feature_cache(tiny_kaggle_dir, output_root):
    """The study sample that 02 writes from its split, the features 03 caches: as in 03 and 04."""
    from fashion_utils import config
    from fashion_utils.catalog import sampling, splits
    from fashion_utils.catalog.data import load_catalog

    catalog, _ = load_catalog(tiny_kaggle_dir, check_images=False)
    split_table = splits.make_splits(catalog, target="masterCategory", seed=0)
    sample = splits.attach_splits(catalog, split_table)[["id", "image_path", "masterCategory", "split"]]
    sample = sample.assign(source_id=sample["id"], augmented=False)
    sampling.save_study_sample(sample, config.get_paths(tiny_kaggle_dir), target="masterCategory")

    _cache_pooled_features(catalog, cache_dir=config.get_paths(tiny_kaggle_dir).features)
    loaded = search_data.load_search_data(tiny_kaggle_dir, target="masterCategory", image_size=32)
    assert loaded["class_names"] == sorted(catalog["masterCategory"].unique())
    assert loaded["x_train"].shape[1] == 3 and len(loaded["x_train"]) == len(loaded["y_train"])
    assert len(loaded["x_val"]) >= 1 and loaded["missing"] == {"train": 0, "val": 0}
    assert len(loaded["x_train"]) + len(loaded["x_val"]) < len(catalog)  # the test side stays out


def test_load_search_data_prefers_the_study_sample(tiny_kaggle_dir, output_root):
    """Rows and labels come from notebook 02's study sample when there is one (as in 03)."""
    from fashion_utils import config
    from fashion_utils.catalog import sampling
    from fashion_utils.catalog.data import load_catalog

    catalog, _ = load_catalog(tiny_kaggle_dir, check_images=False)
    sample = catalog[["id", "image_path", "masterCategory"]].copy()
    sample["split"] = ["train", "train", "val", "test"] * (len(sample) // 4)
    sample["source_id"] = sample["id"]
    sample["augmented"] = False
    paths = config.get_paths(tiny_kaggle_dir)
    sampling.save_study_sample(sample, paths, target="masterCategory")

    # The cache lacks one validation row: it is counted as missing, not dropped silently.
    cached = sample[sample["id"] != sample.loc[sample["split"] == "val", "id"].iloc[0]]
    _cache_pooled_features(cached, cache_dir=paths.features)
    loaded = search_data.load_search_data(tiny_kaggle_dir, target="masterCategory", image_size=32)
    assert "study sample" in loaded["source"]
    assert (len(loaded["x_train"]), len(loaded["x_val"])) == (12, 5)
    assert loaded["missing"] == {"train": 0, "val": 1}


def test_load_search_data_without_a_cache_says_so(tiny_kaggle_dir, output_root):
    with pytest.raises(FileNotFoundError, match="No finished 'efficientnet_lite0' feature cache"):
        search_data.load_search_data(tiny_kaggle_dir)


def test_load_search_data_without_a_study_sample_says_so(tiny_kaggle_dir, output_root):
    """No second pipeline: without notebook 02's study sample there is nothing to search on."""
    from fashion_utils import config
    from fashion_utils.catalog.data import load_catalog

    catalog, _ = load_catalog(tiny_kaggle_dir, check_images=False)

    _cache_pooled_features(catalog, cache_dir=config.get_paths(tiny_kaggle_dir).features)
    with pytest.raises(FileNotFoundError, match="study_sample"):
        search_data.load_search_data(tiny_kaggle_dir, target="masterCategory", image_size=32)
