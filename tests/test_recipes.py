"""The end-to-end recipes as named objects: their settings, why one is skipped, the frozen
candidate and its refit, and the card of the kept model."""

from __future__ import annotations

import dataclasses
import json

import keras
import numpy as np
import pytest

from fashion_utils.training import recipes


def test_recipes_are_built_from_their_names_with_their_own_defaults():
    built = recipes.recipes_from_settings({"fine-tune": {"image_size": 96}, "scratch CNN": {}})
    assert [type(r) for r in built] == [recipes.FineTune, recipes.ScratchCNN]
    assert built[0].image_size == 96 and built[0].epochs == recipes.FineTune().epochs
    assert built[1] == recipes.ScratchCNN()
    assert recipes.recipes_from_settings(None) == recipes.recipes_from_settings({}) == []


@pytest.mark.parametrize("settings, match", [
    ({"fine tune": {}}, "Unknown recipe 'fine tune'"),
    ({"fine-tune": {"side": 96}}, r"no setting \['side'\]"),
    ({"scratch CNN": {"image_size": 28}}, r"no setting \['image_size'\]")])
def test_an_unknown_recipe_or_setting_is_named(settings, match):
    with pytest.raises(ValueError, match=match):
        recipes.recipes_from_settings(settings)


def test_the_budget_table_sets_each_setting_beside_its_full_default():
    rows = recipes.budget_table({"fine-tune": {"epochs": 1, "max_seconds": 270}},
                                head={"head search: epochs a trial": (4, 10)})
    table = {r["setting"]: (r["this run"], r["full default"]) for r in rows}
    assert rows[0]["setting"] == "head search: epochs a trial" and table[rows[0]["setting"]] == (4, 10)
    assert table["fine-tune: epochs"] == (1, recipes.FineTune().epochs)
    assert table["fine-tune: minutes at most"] == (4.5, recipes.FineTune().max_seconds / 60)
    assert table["fine-tune: rows"] == ("all", "all")
    assert table["scratch CNN"] == ("not trained", "trained")  # left out by the settings
    assert not any(s.startswith("scratch CNN: image_size") for s in table)  # it has no such field
    with pytest.raises(ValueError, match="no setting"):
        recipes.budget_table({"fine-tune": {"sides": 3}})


def test_a_recipe_that_cannot_win_says_why(tmp_path, make_image):
    small = make_image(tmp_path / "small.png", size=(28, 28))
    photo = make_image(tmp_path / "photo.png", size=(300, 400))
    fine = recipes.FineTune(image_size=64)
    assert fine.skip_reason(catalog_side=96, image_path=small) is None
    assert "half the side or less" in fine.skip_reason(catalog_side=224, image_path=photo)
    assert recipes.FineTune(image_size=128).skip_reason(catalog_side=224, image_path=photo) is None
    scratch = recipes.ScratchCNN()
    assert scratch.skip_reason(catalog_side=96, image_path=small) is None
    assert "400-px photos" in scratch.skip_reason(catalog_side=224, image_path=photo)


def test_the_card_says_which_recipe_was_kept_and_its_train_only_twin(tmp_path):
    kept = tmp_path / "kept_articleType.keras"
    twin = tmp_path / "recipes" / "frozen_articleType.keras"
    with pytest.raises(FileNotFoundError, match="No model card"):
        recipes.read_model_card(kept)
    with pytest.raises(ValueError, match=r"Missing: \['train_only_model'\]"):
        recipes.write_model_card(kept, {"recipe": "frozen backbone"})
    card = {"recipe": "frozen backbone", "train_only_model": str(twin), "target": "articleType"}
    path = recipes.write_model_card(kept, card)
    assert path == tmp_path / "kept_articleType.json" and json.loads(path.read_text()) == card
    with pytest.raises(FileNotFoundError, match="frozen_articleType.keras.*rerun notebook 04"):
        recipes.read_model_card(kept)  # the twin is gone
    twin.parent.mkdir()
    twin.write_bytes(b"model")
    assert recipes.read_model_card(kept) == card
    recipes.write_model_card(kept, {"recipe": "fine-tune", "train_only_model": None})
    assert recipes.read_model_card(kept)["train_only_model"] is None


@pytest.mark.slow  # builds the Lite0 architecture (random weights): ~5-10 s
def test_the_frozen_backbone_recipe_predicts_from_files_what_its_head_predicts_on_features(
        tmp_path, make_image):
    from fashion_utils.vision import features, models
    from fashion_utils.vision.backbones import feature_dim

    names = ["dark", "light", "mid"]
    paths = [str(make_image(tmp_path / f"{i}.png", size=(40, 30), seed=i)) for i in range(5)]
    head = models.build_classifier_head(feature_dim("efficientnet_lite0"), len(names))
    before = [w.copy() for w in head.get_weights()]
    result = recipes.FrozenBackbone().train(
        head, backbone="efficientnet_lite0", class_names=names, image_size=32,
        model_path=tmp_path / "frozen.keras", val_accuracy=0.75, seconds=90.0,
        train_images=40, val_images=5, weights=None)

    loaded = models.load_end_to_end_model(result.model_path)
    backbone = next(layer for layer in loaded.layers if isinstance(layer, keras.Model))
    feats = features.predict_image_files(backbone, paths, image_size=32)
    expected = head.predict(feats, verbose=0)
    table = models.predict_images(result.model_path, paths)
    np.testing.assert_allclose(table[names].to_numpy(dtype=float), expected, atol=1e-5)
    assert models.class_names_of(loaded) == names and models.model_image_size(loaded) == 32
    assert all(np.array_equal(a, b) for a, b in zip(before, head.get_weights()))
    assert not any(w.trainable for w in backbone.weights)

    summary = result.row()
    assert summary["recipe"] == "frozen backbone" and summary["epochs_run"] == 0
    assert summary["trainable_params"] == 0 and summary["best_val_accuracy"] == 0.75
    assert result.curve() == {"minutes": [1.5], "val_accuracy": [0.75]}


@pytest.mark.slow  # builds the Lite0 architecture (random weights): ~5-10 s
def test_the_refit_candidate_keeps_the_backbone_and_predicts_with_the_refit_head(
        tmp_path, make_image):
    from fashion_utils.vision import features, models
    from fashion_utils.vision.backbones import feature_dim

    names = ["dark", "light", "mid"]
    paths = [str(make_image(tmp_path / f"{i}.png", size=(40, 30), seed=i)) for i in range(5)]
    dim = feature_dim("efficientnet_lite0")
    keras.utils.set_random_seed(1)
    head, refit_head = (models.build_classifier_head(dim, len(names)) for _ in range(2))
    rng = np.random.default_rng(0)  # "retrained": weights unlike the candidate head's
    refit_head.set_weights([rng.normal(size=w.shape).astype("float32")
                            for w in refit_head.get_weights()])
    candidate = recipes.FrozenBackbone().train(
        head, backbone="efficientnet_lite0", class_names=names, image_size=32,
        model_path=tmp_path / "frozen.keras", val_accuracy=0.75, seconds=90.0,
        train_images=40, val_images=5, weights=None)
    before = [w.copy() for w in refit_head.get_weights()]
    refit = recipes.FrozenBackbone().refit(candidate, refit_head,
                                            model_path=tmp_path / "refit.keras", refit_images=45)

    loaded = models.load_end_to_end_model(refit.model_path)
    backbone = next(layer for layer in loaded.layers if isinstance(layer, keras.Model))
    feats = features.predict_image_files(backbone, paths, image_size=32)
    table = models.predict_images(refit.model_path, paths)
    np.testing.assert_allclose(table[names].to_numpy(dtype=float),
                               refit_head.predict(feats, verbose=0), atol=1e-5)
    # the candidate's backbone, unchanged; another head's predictions
    original = models.predict_images(candidate.model_path, paths)[names].to_numpy(dtype=float)
    np.testing.assert_allclose(original, head.predict(feats, verbose=0), atol=1e-5)
    assert not np.allclose(original, table[names].to_numpy(dtype=float), atol=1e-3)
    assert all(np.array_equal(a, b) for a, b in zip(before, refit_head.get_weights()))
    assert models.class_names_of(loaded) == names and models.model_image_size(loaded) == 32
    # what validation saw stays the candidate's; the refit is recorded
    summary = refit.row()
    assert summary["refit_images"] == 45 and summary["train_images"] == 40
    assert summary["best_val_accuracy"] == 0.75 and summary["epochs_run"] == 0
    assert summary["model_path"] == str(tmp_path / "refit.keras")
    assert refit.curve() == candidate.curve()
    assert candidate.model_path == tmp_path / "frozen.keras"  # the candidate is untouched

    with pytest.raises(ValueError, match="refit_images=0"):
        recipes.FrozenBackbone().refit(candidate, refit_head, model_path=tmp_path / "x.keras",
                                        refit_images=0)
    with pytest.raises(ValueError, match="3 outputs but 2 class names|2 outputs but 3 class"):
        recipes.FrozenBackbone().refit(candidate, models.build_classifier_head(dim, 2),
                                        model_path=tmp_path / "x.keras", refit_images=45)
    fine_tuned = dataclasses.replace(candidate, settings={"recipe": "fine-tune"})
    with pytest.raises(ValueError, match="recipe='fine-tune'"):
        recipes.FrozenBackbone().refit(fine_tuned, refit_head, model_path=tmp_path / "x.keras",
                                        refit_images=45)
    assert not (tmp_path / "x.keras").exists()

@pytest.mark.parametrize("bad, match", [
    ({"val_accuracy": 1.5}, "val_accuracy=1.5"), ({"val_accuracy": -0.1}, "val_accuracy=-0.1"),
    ({"seconds": 0}, "seconds=0"), ({"train_images": 0}, "train_images=0"),
    ({"class_names": ["a", "b"]}, "3 outputs but 2 class names")])
def test_a_bad_frozen_candidate_input_is_named(bad, match, tmp_path):
    from fashion_utils.vision import models

    options = dict(backbone="efficientnet_lite0", class_names=["a", "b", "c"], image_size=32,
                   model_path=tmp_path / "frozen.keras", val_accuracy=0.5, seconds=1.0,
                   train_images=4, val_images=2, weights=None)
    with pytest.raises(ValueError, match=match):
        recipes.FrozenBackbone().train(models.build_classifier_head(1280, 3),
                                       **{**options, **bad})
    assert not (tmp_path / "frozen.keras").exists()
