"""The small CNN from scratch (scratch.py): its models, its budgeted schedule, its training."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from fashion_utils.vision import models
from fashion_utils.training import finetune, scratch

NAMES = ["dark", "light"]


class _Clock:
    """A stand-in for time.perf_counter that the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _drive(schedule: scratch.BudgetedOneCycle, clock: _Clock, epoch_seconds: list[float]):
    """Run the callback through epochs of the given lengths as ``fit`` would; returns the
    rate at every step and the epochs that ran."""
    model = types.SimpleNamespace(stop_training=False, optimizer=types.SimpleNamespace(
        learning_rate=keras.Variable(0.0)))
    schedule.set_model(model)
    rates, ran = [], 0
    schedule.on_train_begin()
    for epoch, seconds in enumerate(epoch_seconds):
        schedule.on_epoch_begin(epoch)
        for batch in range(schedule.steps_per_epoch):
            schedule.on_train_batch_begin(batch)
            rates.append(float(model.optimizer.learning_rate.numpy()))
        clock.now += seconds
        schedule.on_epoch_end(epoch)
        ran += 1
        if model.stop_training:
            break
    return rates, ran


@pytest.fixture
def clock(monkeypatch):
    fake = _Clock()
    monkeypatch.setattr(scratch.time, "perf_counter", fake)
    return fake


def test_without_a_budget_the_rate_warms_up_peaks_and_falls_to_zero(clock):
    schedule = scratch.BudgetedOneCycle(peak=0.1, steps_per_epoch=10, max_epochs=5,
                                        warmup_epochs=2)
    rates, ran = _drive(schedule, clock, [1.0] * 8)
    assert ran == 5 and len(rates) == 50
    assert np.all(np.diff(rates[:20]) > 0) and rates[19] == pytest.approx(0.1)
    assert np.all(np.diff(rates[20:]) < 0) and rates[20] == pytest.approx(0.1)
    assert 0 < rates[-1] <= 0.1 / 30 + 1e-9  # one step before the end of the cycle
    assert schedule.rate_at(50) == 0.0


@pytest.mark.parametrize("budget, pace, planned", [(100.0, 30.0, 3), (1000.0, 30.0, 32),
                                                   (100.0, 10.0, 9), (65.0, 30.0, 2)])
def test_the_plan_fits_the_budget_and_the_rate_ends_at_zero(clock, budget, pace, planned):
    schedule = scratch.BudgetedOneCycle(peak=0.08, steps_per_epoch=4, max_epochs=40,
                                        warmup_epochs=2, max_seconds=budget)
    rates, ran = _drive(schedule, clock, [pace] * 50)
    assert schedule.planned_epochs == planned == ran
    assert ran * pace <= budget  # the whole cycle fits
    assert rates[-1] < 0.08 / 4 and schedule.rate_at(ran * 4) == 0.0
    assert schedule.shortened == 0


def test_a_budget_below_one_epoch_still_runs_one(clock):
    schedule = scratch.BudgetedOneCycle(peak=0.08, steps_per_epoch=4, max_epochs=40,
                                        max_seconds=5.0)
    _, ran = _drive(schedule, clock, [30.0] * 5)
    assert ran == 1 and schedule.planned_epochs == 1


def test_a_machine_that_slows_down_after_the_warm_up_shortens_the_plan_not_the_budget(clock):
    schedule = scratch.BudgetedOneCycle(peak=0.08, steps_per_epoch=4, max_epochs=40,
                                        warmup_epochs=2, max_seconds=100.0)
    rates, ran = _drive(schedule, clock, [10.0, 10.0] + [20.0] * 10)
    # planned at 10 s an epoch (2 + 7), then cut to the epochs that fit at 20 s: 3 + 2
    assert schedule.shortened == 1 and schedule.planned_epochs == 5 == ran
    assert sum(schedule.epoch_seconds) <= 100.0
    decay = rates[8:]  # from the warm-up's peak, linearly down, re-anchored at step 12
    assert np.all(np.diff(decay) < 0) and rates[8] == pytest.approx(0.08)
    assert rates[12] < rates[11] and schedule.rate_at(20) == 0.0 and rates[-1] < 0.08 / 8
    steps_12_to_20 = np.diff(rates[12:])  # the new decay is a straight line to 0
    assert np.allclose(steps_12_to_20, steps_12_to_20[0])


def test_a_faster_machine_never_lengthens_a_decay_that_began(clock):
    schedule = scratch.BudgetedOneCycle(peak=0.08, steps_per_epoch=4, max_epochs=40,
                                        warmup_epochs=2, max_seconds=100.0)
    _, ran = _drive(schedule, clock, [20.0, 20.0] + [5.0] * 20)
    assert ran == schedule.planned_epochs == 4 and schedule.shortened == 0  # planned at 20 s


@pytest.mark.parametrize("options, message", [
    ({"max_epochs": 0}, "max_epochs"), ({"peak": 0}, "peak"),
    ({"max_seconds": -1.0}, "max_seconds"), ({"steps_per_epoch": 0}, "steps_per_epoch")])
def test_bad_schedule_options_are_named(options, message):
    args = {"peak": 0.1, "steps_per_epoch": 3, "max_epochs": 4, **options}
    with pytest.raises(ValueError, match=message):
        scratch.BudgetedOneCycle(**args)


def test_the_saved_model_takes_any_size_and_ignores_mirroring():
    _, model = scratch.build_scratch_models(2, class_names=NAMES, image_size=16)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, size=(3, 40, 30, 3)).astype("float32")
    probs = np.asarray(model(images, training=False))
    assert probs.shape == (3, 2) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    mirrored = np.asarray(model(images[:, :, ::-1, :].copy(), training=False))
    assert np.allclose(probs, mirrored, atol=1e-5)  # flip test-time augmentation
    assert models.class_names_of(model) == NAMES and models.model_image_size(model) == 16
    _, plain = scratch.build_scratch_models(2, class_names=NAMES, image_size=16, tta=False)
    assert not np.allclose(np.asarray(plain(images)), np.asarray(plain(images[:, :, ::-1])))


def test_training_and_saved_models_share_their_weights():
    training, model = scratch.build_scratch_models(3, class_names=["a", "b", "c"], image_size=12,
                                                   widths=(8, 8), translate_px=1)
    assert {w.path for w in training.weights} >= {w.path for w in model.weights}
    kinds = {type(layer).__name__ for layer in training.layers}
    assert {"RandomFlip", "RandomTranslation", "Dropout"} <= kinds


@pytest.mark.parametrize("options, message", [
    ({"num_classes": 3}, "3 classes but 2 class names"),
    ({"image_size": 4}, "image_size must be an integer >= 8"),
    ({"image_size": 8, "widths": (4, 4, 4, 4)}, "image_size 8 is too small for 4 pooling"),
    ({"widths": ()}, "widths"), ({"dropout": 1.5}, "dropout")])
def test_bad_model_options_are_named(options, message):
    args = {"num_classes": 2, "class_names": NAMES, "image_size": 16, **options}
    with pytest.raises(ValueError, match=message):
        scratch.build_scratch_models(args.pop("num_classes"), **args)


def _dark_and_light(tmp_path, make_image, n):
    colors = [(20, 20, 20), (235, 235, 235)]
    paths = [str(make_image(tmp_path / "img" / f"{i}.png", color=colors[i % 2], seed=i,
                            size=(20, 20))) for i in range(n)]
    return paths, np.arange(n) % 2


def test_native_image_size_is_the_longer_side_at_most_the_cap(tmp_path, make_image):
    small = make_image(tmp_path / "small.png", size=(28, 20))
    large = make_image(tmp_path / "large.png", size=(225, 300))
    assert scratch.native_image_size(small) == 28
    assert scratch.native_image_size(large) == 64
    assert scratch.native_image_size(large, at_most=96) == 96


@pytest.mark.slow  # trains a tiny CNN for a few seconds
def test_train_scratch_cnn_learns_saves_and_predicts_like_a_user(tmp_path, make_image):
    paths, labels = _dark_and_light(tmp_path, make_image, 48)
    result = scratch.train_scratch_cnn(
        train_paths=paths[:32], train_labels=labels[:32], val_paths=paths[32:],
        val_labels=labels[32:], class_names=NAMES, image_size=16, widths=(8, 16),
        model_path=tmp_path / "scratch.keras", epochs=6, batch_size=8, learning_rate=0.01,
        warmup_epochs=1, verbose=0)
    assert result.model_path.is_file() and len(result.epoch_seconds) == 6
    # dark against light, and still at the last epoch (at learning rate 0.05 an AVX2 CPU's
    # BatchNorm statistics had not settled in 24 steps: validation stayed at 0.5)
    assert result.best_val_accuracy == 1.0 and result.history["val_accuracy"][-1] == 1.0
    curve = result.curve()
    assert len(curve["minutes"]) == len(curve["val_accuracy"]) == 6
    # cumulative wall minutes of the epochs (ties possible: tiny epochs, 3 decimals)
    np.testing.assert_allclose(curve["minutes"], np.cumsum(result.epoch_seconds) / 60, atol=6e-4)
    assert np.all(np.diff(curve["minutes"]) >= 0) and curve["minutes"][-1] > 0
    table = models.predict_images(result.model_path, paths[32:])
    assert list(table["label"]) == [NAMES[i] for i in labels[32:]]
    summary = json.loads(json.dumps(result.row()))
    assert summary["recipe"] == "scratch CNN" and summary["planned_epochs"] == 6
    choice = finetune.choose_on_validation({"scratch": result}, val_paths=paths[32:],
                                           val_labels=labels[32:])
    assert choice == {"scores": {"scratch": 1.0}, "chosen": "scratch", "val_images": 16}


def test_train_scratch_cnn_rejects_bad_input_before_training(tmp_path):
    with pytest.raises(ValueError, match="equal length"):
        scratch.train_scratch_cnn(train_paths=["a.png"], train_labels=[0, 1], val_paths=[],
                                  val_labels=[], class_names=NAMES, image_size=16,
                                  model_path=tmp_path / "m.keras")
    with pytest.raises(ValueError, match="must end with .keras"):
        scratch.train_scratch_cnn(train_paths=["a.png"], train_labels=[0], val_paths=["b.png"],
                                  val_labels=[1], class_names=NAMES, image_size=16,
                                  model_path=tmp_path / "m.h5")


def test_choose_on_validation_takes_the_most_accurate_saved_model(tmp_path, make_image):
    paths, labels = _dark_and_light(tmp_path, make_image, 6)

    def constant(index: int) -> finetune.FineTuneResult:
        inputs = keras.Input((None, None, 3))
        x = keras.layers.Resizing(8, 8)(inputs)
        x = keras.layers.GlobalAveragePooling2D()(x)
        out = keras.layers.Dense(2, activation="softmax", kernel_initializer="zeros",
                                 bias_initializer=keras.initializers.Constant(
                                     [1.0 - index, float(index)]))(x)
        return finetune.FineTuneResult(model=keras.Model(inputs, out), model_path=tmp_path,
                                       history={}, epoch_seconds=[], seconds=0.0,
                                       best_val_accuracy=0.0)

    labels = np.array([1, 1, 1, 1, 0, 0])
    choice = finetune.choose_on_validation({"always dark": constant(0), "always light": constant(1)},
                                           val_paths=paths, val_labels=labels)
    assert choice["scores"] == {"always dark": pytest.approx(2 / 6), "always light": pytest.approx(4 / 6)}
    assert choice["chosen"] == "always light"
    with pytest.raises(ValueError, match="at least one trained model"):
        finetune.choose_on_validation({}, val_paths=paths, val_labels=labels)
    with pytest.raises(ValueError, match="equal length"):
        finetune.choose_on_validation({"x": constant(0)}, val_paths=paths, val_labels=labels[:2])


def test_the_embedding_of_a_saved_scratch_model_is_its_pooled_features(tmp_path):
    from fashion_utils.recommend import embeddings

    _, model = scratch.build_scratch_models(2, class_names=NAMES, image_size=16, widths=(8, 12))
    path = models.save_end_to_end_model(model, tmp_path / "finetuned_label.keras")
    embedder = embeddings.load_embedding_model(path)
    images = np.random.default_rng(1).uniform(0, 255, size=(2, 16, 16, 3)).astype("float32")
    vectors = np.asarray(embedder(images))
    assert vectors.shape == (2, 12)
    assert np.allclose(vectors, np.asarray(embedder(images[:, :, ::-1].copy())), atol=1e-5)
