"""Fine-tuning helpers that need no training: the plan that fits a fine-tune to its time cap,
the probe it is planned from, and the frozen-backbone candidate validation weighs against it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import numpy as np
import pytest

from fashion_utils import config, evaluation, provenance
from fashion_utils.training import finetune


def test_the_plan_fills_the_time_cap_with_pixels_then_epochs():
    plan = finetune.plan_fine_tune
    # Fashion-MNIST at make's budget: one 64 px epoch fits 600 s, two do not
    assert plan(n_train=54_000, n_val=6_000, seconds_per_image=0.00686, probe_size=64,
                max_seconds=600) == (64, 1)
    # the real sample: 10 epochs fit at 96 px, not at 128
    assert plan(n_train=2_118, n_val=236, seconds_per_image=0.0073, probe_size=64,
                max_seconds=600) == (96, 10)
    # ... and 160 px when the probe is twice as fast
    assert plan(n_train=2_118, n_val=236, seconds_per_image=0.00354, probe_size=64,
                max_seconds=600) == (160, 10)
    # a tiny catalog gets the largest side; a huge one still gets one epoch
    assert plan(n_train=100, n_val=10, seconds_per_image=0.01, probe_size=64,
                max_seconds=600) == (finetune.PLAN_SIZES[-1], 10)
    assert plan(n_train=10**6, n_val=0, seconds_per_image=0.01, probe_size=64,
                max_seconds=60) == (64, 1)
    # property: whatever it picks fits the cap (or is the one epoch that always runs)
    for n in (50, 500, 5_000, 50_000):
        for cap in (30, 300, 3_000):
            side, epochs = plan(n_train=n, n_val=n // 9, seconds_per_image=0.005, probe_size=64,
                                max_seconds=cap)
            cost = 0.005 * (n + n // 9 / 3) * (side / 64) ** 2 * epochs
            assert side in finetune.PLAN_SIZES and 1 <= epochs <= finetune.PLAN_MAX_EPOCHS
            assert cost <= cap or (side, epochs) == (64, 1)


@pytest.mark.parametrize("bad, match", [({"n_train": 0}, "n_train=0"),
                                        ({"seconds_per_image": -1.0}, "seconds_per_image=-1.0"),
                                        ({"sizes": ()}, "sizes")])
def test_a_bad_plan_input_is_named(bad, match):
    options = dict(n_train=10, n_val=1, seconds_per_image=0.01, probe_size=64, max_seconds=60)
    with pytest.raises(ValueError, match=match):
        finetune.plan_fine_tune(**{**options, **bad})


def _probe_result(*, seconds=(9.0, 2.5), images=500, backbone="efficientnet_lite0", size=64):
    settings = {"train_images": images, "backbone": backbone, "image_size": size}
    return finetune.FineTuneResult(model=None, model_path=Path("probe.keras"), history={},
                                   epoch_seconds=list(seconds), seconds=sum(seconds),
                                   best_val_accuracy=0.75, settings=settings,
                                   trainable={"trainable_params": 1234})


def test_a_probe_summary_holds_what_a_plan_reuses():
    summary = finetune.probe_summary(_probe_result())
    assert summary == {"first_epoch_s": 9.0, "second_epoch_s": 2.5, "val_accuracy": 0.75,
                       "images": 500, "trainable_params": 1234,
                       "backbone": "efficientnet_lite0", "image_size": 64}


def test_the_plan_reuses_the_first_targets_probe(tmp_path):
    paths = config.Paths(data_dir=tmp_path / "catalog", root=tmp_path).ensure()
    lite = "efficientnet_lite0"
    own = {finetune.PLAN_PROBE: finetune.probe_summary(_probe_result(size=96))}
    # this run's probe wins, with or without paths
    for where in (None, paths):
        speed = finetune.planning_probe(own, backbone=lite, paths=where)
        assert speed == {"s_per_image": 2.5 / 500, "probe_size": 96, "source": "this run's probe"}
    # no probe here and nothing recorded: no plan
    assert finetune.planning_probe({}, backbone=lite, paths=paths) is None
    # the first target's 04 recorded one: the second target (no probes) plans from it
    first = {finetune.PLAN_PROBE: finetune.probe_summary(_probe_result(seconds=(8.0, 3.0)))}
    here = {"machine": {"cpu": provenance.cpu()}}
    evaluation.write_metrics("04_tuning", {"probes": first, "provenance": here}, paths=paths)
    speed = finetune.planning_probe({}, backbone=lite, paths=paths)
    assert speed == {"s_per_image": 3.0 / 500, "probe_size": 64,
                     "source": "the probe of 04_tuning"}
    assert finetune.planning_probe({}, backbone=lite, paths=None) is None
    # another backbone's speed, or a record without the probe's side, plans nothing
    assert finetune.planning_probe({}, backbone="mobilenet_v3_small", paths=paths) is None
    old = {k: v for k, v in first[finetune.PLAN_PROBE].items() if k != "image_size"}
    evaluation.write_metrics("04_tuning", {"probes": {finetune.PLAN_PROBE: old},
                                           "provenance": here}, paths=paths)
    assert finetune.planning_probe({}, backbone=lite, paths=paths) is None
    # nor does a speed measured on another CPU, or on an unrecorded one
    elsewhere = {"machine": {"cpu": {"model": "another CPU", "vector_isa": "avx512_bf16"}}}
    for record in ({"probes": first, "provenance": elsewhere}, {"probes": first}):
        evaluation.write_metrics("04_tuning", record, paths=paths)
        assert finetune.planning_probe({}, backbone=lite, paths=paths) is None


@pytest.mark.slow  # builds the Lite0 architecture (random weights): ~5-10 s
def test_the_frozen_backbone_candidate_predicts_from_files_what_its_head_predicts_on_features(
        tmp_path, make_image):
    from fashion_utils.vision import features, models
    from fashion_utils.vision.backbones import feature_dim

    names = ["dark", "light", "mid"]
    paths = [str(make_image(tmp_path / f"{i}.png", size=(40, 30), seed=i)) for i in range(5)]
    head = models.build_classifier_head(feature_dim("efficientnet_lite0"), len(names))
    before = [w.copy() for w in head.get_weights()]
    result = finetune.frozen_backbone_candidate(
        head, backbone_name="efficientnet_lite0", class_names=names, image_size=32,
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
    candidate = finetune.frozen_backbone_candidate(
        head, backbone_name="efficientnet_lite0", class_names=names, image_size=32,
        model_path=tmp_path / "frozen.keras", val_accuracy=0.75, seconds=90.0,
        train_images=40, val_images=5, weights=None)
    before = [w.copy() for w in refit_head.get_weights()]
    refit = finetune.refit_frozen_candidate(candidate, refit_head,
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
        finetune.refit_frozen_candidate(candidate, refit_head, model_path=tmp_path / "x.keras",
                                        refit_images=0)
    with pytest.raises(ValueError, match="3 outputs but 2 class names|2 outputs but 3 class"):
        finetune.refit_frozen_candidate(candidate, models.build_classifier_head(dim, 2),
                                        model_path=tmp_path / "x.keras", refit_images=45)
    fine_tuned = dataclasses.replace(candidate, settings={"recipe": "fine-tune"})
    with pytest.raises(ValueError, match="recipe='fine-tune'"):
        finetune.refit_frozen_candidate(fine_tuned, refit_head, model_path=tmp_path / "x.keras",
                                        refit_images=45)
    assert not (tmp_path / "x.keras").exists()

@pytest.mark.parametrize("bad, match", [
    ({"val_accuracy": 1.5}, "val_accuracy=1.5"), ({"val_accuracy": -0.1}, "val_accuracy=-0.1"),
    ({"seconds": 0}, "seconds=0"), ({"train_images": 0}, "train_images=0"),
    ({"class_names": ["a", "b"]}, "3 outputs but 2 class names")])
def test_a_bad_frozen_candidate_input_is_named(bad, match, tmp_path):
    from fashion_utils.vision import models

    options = dict(backbone_name="efficientnet_lite0", class_names=["a", "b", "c"], image_size=32,
                   model_path=tmp_path / "frozen.keras", val_accuracy=0.5, seconds=1.0,
                   train_images=4, val_images=2, weights=None)
    with pytest.raises(ValueError, match=match):
        finetune.frozen_backbone_candidate(models.build_classifier_head(1280, 3),
                                           **{**options, **bad})
    assert not (tmp_path / "frozen.keras").exists()


def test_a_later_choice_judges_the_train_only_model_when_04_refit_it(tmp_path):
    paths = config.Paths(data_dir=tmp_path / "catalog", root=tmp_path).ensure()
    saved = paths.models / "finetuned_articleType.keras"
    chosen = paths.models / "recipes" / "frozen_articleType.keras"
    for path in (saved, chosen):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"model")
    assert finetune.train_only_model(saved, paths=paths) is None  # 04 wrote no metrics
    ft = {"saved_model": str(saved), "chosen_recipe": "frozen",
          "recipes": {"frozen": {"model_path": str(chosen)}}}
    name = config.named_for_target("04_tuning", target="articleType")
    evaluation.write_metrics(name, {"fine_tune": ft}, paths=paths)
    assert finetune.train_only_model(saved, paths=paths) is None  # not refit
    evaluation.write_metrics(name, {"fine_tune": {**ft, "refit_images": 3220}}, paths=paths)
    assert finetune.train_only_model(saved, paths=paths) == chosen
    # the metrics of another target's model, or of another file, say nothing of this one
    other = paths.models / "finetuned_masterCategory.keras"
    assert finetune.train_only_model(other, paths=paths) is None
    evaluation.write_metrics(name, {"fine_tune": {**ft, "refit_images": 3220,
                                                  "saved_model": str(other)}}, paths=paths)
    assert finetune.train_only_model(saved, paths=paths) is None
    evaluation.write_metrics(name, {"fine_tune": {**ft, "refit_images": 3220}}, paths=paths)
    chosen.unlink()
    with pytest.raises(FileNotFoundError, match="frozen_articleType.keras"):
        finetune.train_only_model(saved, paths=paths)
