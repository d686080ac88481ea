"""Tuning: the search space, tuners that resume, retraining, seeds, fine-tuning.

Everything runs on tiny synthetic features (a few hundred points, 8 dimensions), so a trial
takes about a second. Distributed search: tests/test_distributed.py.
"""

from __future__ import annotations

import itertools
import json
import math

import keras
import numpy as np
from scipy import stats
import pytest

from fashion_utils.training import tuning
from fashion_utils.tools import search_data

DIM, CLASSES = 8, 3


@pytest.fixture(scope="module")
def data():
    """Separable Gaussian blobs standing in for cached features."""
    return search_data.synthetic_search_data(n=160, dim=DIM, num_classes=CLASSES, seed=0)


@pytest.fixture
def hypermodel():
    return tuning.make_hypermodel(DIM, CLASSES, seed=1)


def _search(tmp_path, hypermodel, data, *, kind="random", project="search", overwrite=False,
            max_trials=1, max_epochs=2, epochs=2, callbacks=()):
    tuner = tuning.make_tuner(kind, hypermodel, directory=tmp_path, project_name=project,
                              max_trials=max_trials, max_epochs=max_epochs, factor=3, seed=3,
                              overwrite=overwrite)
    return tuning.run_search(tuner, data["x_train"], data["y_train"], data["x_val"], data["y_val"],
                             epochs=epochs, patience=1, callbacks=list(callbacks))


# ---------------------------------------------------------------------------------- the space


def test_wide_space_contains_the_original_space(hypermodel):
    space = tuning.search_space(hypermodel)
    original = tuning.original_search_space()["space"]
    assert set(original["units_0"]) <= set(space["units_0"]["values"])
    assert set(original["learning_rate"]) <= set(space["learning_rate"]["values"])
    # ... and widens it as the original study suggested.
    assert (space["dense_layers"]["min"], space["dense_layers"]["max"]) == (1, 3)
    for i in range(3):
        units = space[f"units_{i}"]["values"]
        assert (min(units), max(units)) == (16, 512)
    assert (space["dropout"]["min"], space["dropout"]["max"]) == (0.0, 0.5)
    assert set(space["optimizer"]["values"]) == {"adam", "sgd", "rmsprop"}
    assert 10 in space["batch_size"]["values"] and len(space["batch_size"]["values"]) > 1
    assert 0.0 in space["l2"]["values"] and max(space["l2"]["values"]) > 0


def test_original_space_is_the_original_search():
    search = tuning.original_search_space()
    assert (search["kind"], search["max_trials"], search["epochs"]) == ("random", 6, 5)
    space = tuning.search_space(tuning.make_hypermodel(DIM, CLASSES, space="original"))
    assert space["units_0"]["values"] == [20, 40, 50]
    assert space["learning_rate"]["values"] == [1e-2, 1e-3, 1e-4]
    assert space["batch_size"]["values"] == [10]  # the original study's batch size


def test_every_original_configuration_is_in_the_wide_space(hypermodel):
    grid = itertools.product((20, 40, 50), (1e-2, 1e-3, 1e-4))
    configs = [tuning.hyperparameters_from_values(
        hypermodel, {**tuning.BASELINE_VALUES, "units_0": u, "learning_rate": lr}) for u, lr in grid]
    assert len(configs) == 9
    model = hypermodel(configs[-1])  # the last one, built: Dense(50)-Dense(20)-softmax, Adam 1e-4
    dense = [layer.units for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert dense == [50, 20, CLASSES]
    assert math.isclose(float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)), 1e-4,
                        rel_tol=1e-6)
    assert isinstance(model.optimizer, keras.optimizers.Adam)


def test_baseline_is_the_50_20_head_with_adam(hypermodel):
    model = hypermodel(tuning.baseline_hyperparameters(hypermodel))
    dense = [layer.units for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert dense == [50, 20, CLASSES]
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in model.layers)


def test_the_baseline_trial_is_notebook_03s_head_built_by_the_same_code(hypermodel):
    """04's "baseline" row and 03's head come from one builder: same layers, same optimizer."""
    from fashion_utils import config
    from fashion_utils.vision import models

    tuned = hypermodel(tuning.baseline_hyperparameters(hypermodel))
    keras.utils.set_random_seed(hypermodel.seed)
    ours = models.compile_classifier(models.build_classifier_head(DIM, CLASSES))

    def layers(model):
        return [(type(layer).__name__, layer.name, getattr(layer, "units", None),
                 getattr(layer, "activation", None) and layer.activation.__name__)
                for layer in model.layers]

    assert layers(tuned) == layers(ours)
    assert [w.shape for w in tuned.weights] == [w.shape for w in ours.weights]
    for model in (tuned, ours):
        assert type(model.optimizer).__name__ == "Adam"
        assert float(model.optimizer.learning_rate) == pytest.approx(config.ORIGINAL_LEARNING_RATE)
    for w_tuned, w_ours in zip(tuned.weights, ours.weights):  # same seed, same initial weights
        np.testing.assert_array_equal(np.asarray(w_tuned), np.asarray(w_ours))


@pytest.mark.parametrize("values, match", [
    ({"units_0": 17}, "units_0 must be one of"),
    ({"dropout": 0.9}, r"dropout must be in \[0.0, 0.5\]"),
    ({"momentum": 0.9}, "'momentum' is not a hyperparameter"),
])
def test_values_outside_the_space_are_refused(hypermodel, values, match):
    with pytest.raises(ValueError, match=match):
        tuning.hyperparameters_from_values(hypermodel, values)


@pytest.mark.parametrize("kwargs, match", [
    ({"input_dim": 0}, "input_dim must be an integer >= 1"),
    ({"num_classes": 1}, "num_classes must be an integer >= 2"),
    ({"space": "huge"}, "space must be one of"),
])
def test_make_hypermodel_validates(kwargs, match):
    args = {"input_dim": DIM, "num_classes": CLASSES, **kwargs}
    with pytest.raises(ValueError, match=match):
        tuning.make_hypermodel(args.pop("input_dim"), args.pop("num_classes"), **args)


def test_every_build_clears_the_session_and_is_seeded(hypermodel, monkeypatch):
    calls = []
    original = keras.backend.clear_session
    monkeypatch.setattr(keras.backend, "clear_session", lambda *a, **k: (calls.append(1), original())[1])
    hp = tuning.baseline_hyperparameters(hypermodel)
    calls.clear()
    first, second = hypermodel(hp).get_weights(), hypermodel(hp).get_weights()
    assert len(calls) == 2
    assert all(np.array_equal(a, b) for a, b in zip(first, second))


def test_fit_uses_the_tuned_batch_size(hypermodel, data):
    hp = tuning.hyperparameters_from_values(hypermodel, {**tuning.BASELINE_VALUES, "batch_size": 64})
    history = hypermodel.fit(hp, hypermodel(hp), data["x_train"], data["y_train"], epochs=1,
                             batch_size=7, verbose=0)
    assert history.params["steps"] == math.ceil(len(data["x_train"]) / 64)
    assert hypermodel.epochs_trained == 1


def test_active_values_drop_unused_layers_and_bookkeeping():
    values = {"dense_layers": 1, "units_0": 64, "units_1": 20, "units_2": 16, "tuner/epochs": 3,
              "optimizer": "sgd"}
    assert tuning.active_values(values) == {"dense_layers": 1, "units_0": 64, "optimizer": "sgd"}


# ---------------------------------------------------------------------------------- tuners


@pytest.mark.parametrize("kind, kwargs, match", [
    ("grid", {"max_trials": 2}, "kind must be one of"),
    ("random", {}, "needs max_trials"),
    ("bayesian", {"max_trials": 0}, "max_trials must be an integer >= 1"),
    ("hyperband", {}, "needs max_epochs"),
    ("random", {"max_trials": 2, "project_name": "a/b"}, "project_name must be a plain folder name"),
])
def test_make_tuner_validates(tmp_path, hypermodel, kind, kwargs, match):
    kwargs = {"project_name": "p", **kwargs}
    with pytest.raises(ValueError, match=match):
        tuning.make_tuner(kind, hypermodel, directory=tmp_path, **kwargs)


@pytest.mark.parametrize("max_trials, given, expected", [(9, None, 3), (4, None, 2), (6, 5, 5)])
def test_bayesian_tuner_models_after_a_few_random_trials(tmp_path, hypermodel, max_trials, given, expected):
    # KerasTuner's default (3 x the number of hyperparameters) would make a short Bayesian
    # search the same trials as a RandomSearch with the same seed.
    tuner = tuning.make_tuner("bayesian", hypermodel, directory=tmp_path, project_name="b",
                              max_trials=max_trials, num_initial_points=given)
    assert tuner.oracle.num_initial_points == expected


def test_bayesian_tuner_rejects_bad_initial_points(tmp_path, hypermodel):
    with pytest.raises(ValueError, match="num_initial_points=0"):
        tuning.make_tuner("bayesian", hypermodel, directory=tmp_path, project_name="b",
                          max_trials=4, num_initial_points=0)


@pytest.mark.parametrize("kind", [
    "random",
    pytest.param("bayesian", marks=pytest.mark.slow),  # same code path, another oracle
    pytest.param("hyperband", marks=pytest.mark.slow),  # 2 trials of 1-2 epochs: ~10 s
])
def test_each_tuner_searches_on_validation_accuracy(tmp_path, hypermodel, data, kind):
    result = _search(tmp_path, hypermodel, data, kind=kind, project=kind)
    summary = result.summary
    assert result.tuner.oracle.objective.name == "val_accuracy"
    assert result.tuner.oracle.objective.direction == "max"
    expected = tuning.hyperband_budget(2, factor=3)["trials"] if kind == "hyperband" else 1
    assert summary["trials"] == summary["completed_trials"] == expected
    assert summary["best_val_accuracy"] == pytest.approx(result.trials["val_accuracy"].max())
    assert 0.0 <= summary["best_val_accuracy"] <= 1.0
    assert 1 <= summary["best_epochs"] <= 2
    assert len(result.trials) == summary["trials"] and result.trials["val_accuracy"].notna().all()
    assert set(summary["best_hyperparameters"]) >= {"dense_layers", "units_0", "learning_rate"}
    assert list(result.trials["order"]) == sorted(result.trials["order"])
    json.dumps(summary)  # JSON-able, for the metrics file


def test_the_search_scores_the_validation_side_it_is_given(tmp_path, hypermodel, data):
    """Not just an objective named val_accuracy: the same search with the validation labels
    shuffled must score near chance while the training side is learnt as before."""
    x_train, y_train, x_val, y_val = (data[k] for k in ("x_train", "y_train", "x_val", "y_val"))
    # seed 3 draws a configuration that learns these blobs in 4 epochs (adam 3e-3, 256 units)
    honest = tuning.make_tuner("random", hypermodel, directory=tmp_path, project_name="honest",
                               max_trials=1, seed=3)
    liar = tuning.make_tuner("random", hypermodel, directory=tmp_path, project_name="shuffled",
                             max_trials=1, seed=3)
    shuffled = np.random.default_rng(0).permutation(y_val)
    good = tuning.run_search(honest, x_train, y_train, x_val, y_val, epochs=4, patience=4)
    bad = tuning.run_search(liar, x_train, y_train, x_val, shuffled, epochs=4, patience=4)
    chance = np.mean(shuffled == y_val)  # what shuffled labels agree with the true ones
    assert good.summary["best_hyperparameters"] == bad.summary["best_hyperparameters"]
    assert good.summary["best_val_accuracy"] > 0.8
    assert bad.summary["best_val_accuracy"] < chance + 0.25


def test_a_finished_search_is_reloaded_not_rerun(tmp_path, hypermodel, data):
    first = _search(tmp_path, hypermodel, data)
    assert (first.summary["new_trials"], first.summary["trials"], first.summary["runs"]) == (1, 1, 1)
    again = _search(tmp_path, hypermodel, data)
    assert (again.summary["new_trials"], again.summary["trials"], again.summary["runs"]) == (0, 1, 2)
    assert again.summary["best_hyperparameters"] == first.summary["best_hyperparameters"]
    assert again.summary["wall_time_s"] >= first.summary["wall_time_s"]
    fresh = _search(tmp_path, hypermodel, data, overwrite=True)
    assert (fresh.summary["new_trials"], fresh.summary["runs"]) == (1, 1)


class _InterruptOnSecondTrial(keras.callbacks.Callback):
    """Raises KeyboardInterrupt in the first epoch of the second trial (as Ctrl-C would)."""

    trials_begun = 0  # class attribute: KerasTuner deep-copies callbacks per trial

    def on_train_begin(self, logs=None):
        type(self).trials_begun += 1

    def on_epoch_end(self, epoch, logs=None):
        if type(self).trials_begun == 2:
            raise KeyboardInterrupt


def test_an_interrupted_search_resumes_where_it_stopped(tmp_path, hypermodel, data):
    _InterruptOnSecondTrial.trials_begun = 0
    with pytest.raises(KeyboardInterrupt):
        _search(tmp_path, hypermodel, data, max_trials=2, callbacks=[_InterruptOnSecondTrial()])
    resumed = _search(tmp_path, hypermodel, data, max_trials=2)
    # Trial 0 was done and is kept; only trial 1 (interrupted) runs again.
    assert resumed.summary["new_trials"] == 1
    assert resumed.summary["runs"] == 2  # the interrupted run's time is counted
    assert resumed.summary["completed_trials"] == 2
    assert sorted(resumed.trials["trial_id"]) == ["0", "1"]


def test_hyperband_budget_grows_with_max_epochs():
    small, large = tuning.hyperband_budget(3), tuning.hyperband_budget(27)
    assert 0 < small["trials"] < large["trials"] and 0 < small["epochs"] < large["epochs"]
    with pytest.raises(ValueError, match="max_epochs must be an integer >= 2"):
        tuning.hyperband_budget(1)


# ---------------------------------------------------------------------------------- retraining


def test_retrain_best_trains_on_train_and_validation(hypermodel, data):
    hp = tuning.hyperparameters_from_values(hypermodel, {**tuning.BASELINE_VALUES, "batch_size": 32})
    model = tuning.retrain_best(hypermodel, hp, data["x_train"], data["y_train"], data["x_val"],
                                data["y_val"], epochs=1, seed=0)
    n = len(data["x_train"]) + len(data["x_val"])
    assert model.history.params["steps"] == math.ceil(n / 32)
    assert len(model.history.epoch) == 1
    assert "val_accuracy" not in model.history.history  # nothing held out any more
    with pytest.raises(ValueError, match="x_val and y_val must be non-empty and of equal length"):
        tuning.retrain_best(hypermodel, hp, data["x_train"], data["y_train"], data["x_val"],
                            data["y_val"][:-1], epochs=1)


@pytest.mark.slow  # three trainings: ~6-15 s
def test_multi_seed_reports_mean_and_spread(hypermodel, data):
    hp = tuning.baseline_hyperparameters(hypermodel)
    result = tuning.multi_seed(hypermodel, hp, data["x_train"], data["y_train"], data["x_val"],
                               data["y_val"], seeds=(0, 1, 2), epochs=1)
    assert len(result["accuracy"]) == len(result["macro_f1"]) == 3
    assert result["accuracy_mean"] == pytest.approx(np.mean(result["accuracy"]))
    assert result["accuracy_std"] == pytest.approx(np.std(result["accuracy"], ddof=1))
    assert all(0.0 <= a <= 1.0 for a in result["accuracy"])
    with pytest.raises(ValueError, match="at least 3 distinct seeds"):
        tuning.multi_seed(hypermodel, hp, data["x_train"], data["y_train"], data["x_val"],
                          data["y_val"], seeds=(0, 1), epochs=1)


# ---------------------------------------------------------------------------------- search data


# ---------------------------------------------------------------------------------- fine-tuning


def _block_backbone():
    """A tiny backbone named like Lite0: stem, two blocks and top, each conv + BatchNorm."""
    inputs = keras.Input((16, 16, 3), name="image")
    x = inputs
    for block in ("stem", "block1a", "block2a", "top"):
        x = keras.layers.Conv2D(4, 3, padding="same", name=f"{block}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"{block}_bn")(x)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D(name="avg_pool")(x), name="tiny")


def test_top_blocks_unfreeze_and_batchnorm_stays_frozen():
    from fashion_utils.training import finetune

    backbone = _block_backbone()
    assert [name for name, _ in finetune.backbone_blocks(backbone)] == ["stem", "block1a", "block2a", "top"]
    info = finetune.set_backbone_trainable(backbone, unfreeze=2)
    assert info["unfrozen_blocks"] == ["block2a", "top"] and info["frozen_batchnorm"] == 4
    trainable = {layer.name for layer in backbone.layers if layer.trainable and layer.weights}
    assert trainable == {"block2a_conv", "top_conv"}
    info = finetune.set_backbone_trainable(backbone, unfreeze="all")
    assert {l.name for l in backbone.layers if l.trainable and l.weights} == {
        f"{b}_conv" for b in ("stem", "block1a", "block2a", "top")}
    assert not any(l.trainable for l in backbone.layers if isinstance(l, keras.layers.BatchNormalization))
    assert finetune.set_backbone_trainable(backbone, unfreeze=0)["trainable_params"] == 0
    with pytest.raises(ValueError, match=r"unfreeze must be 'all' or an integer in \[0, 4\]"):
        finetune.set_backbone_trainable(backbone, unfreeze=5)


@pytest.mark.slow  # builds Lite0 (random weights) and trains it on images: ~20 s
def test_fine_tune_saves_an_end_to_end_model(tmp_path, make_image):
    from fashion_utils.vision import models
    from fashion_utils.training import finetune

    colors = [(220, 30, 30), (30, 30, 220)]
    paths = [str(make_image(tmp_path / "img" / f"{i}.png", color=colors[i % 2], seed=i, size=(28, 28)))
             for i in range(24)]
    labels = np.arange(24) % 2
    head = models.build_classifier_head(1280, 2)
    result = finetune.fine_tune(head, backbone_name="efficientnet_lite0", train_paths=paths[:16],
                                train_labels=labels[:16], val_paths=paths[16:],
                                val_labels=labels[16:], class_names=["red", "blue"], image_size=32,
                                model_path=tmp_path / "ft.keras", unfreeze=2, epochs=1,
                                batch_size=8, weights=None, erasing=0.3, verbose=0)
    assert result.model_path.is_file() and len(result.epoch_seconds) == 1
    assert result.trainable["unfrozen_blocks"] == ["block7a", "top"]
    table = models.predict_images(result.model_path, paths[:3])
    assert list(table.columns[-2:]) == ["red", "blue"]
    json.dumps(result.row())


@pytest.mark.parametrize("tuned_runs, outcome", [
    ([0.90, 0.91, 0.92], "helped"), ([0.80, 0.81, 0.79], "hurt"),
    ([0.851, 0.849, 0.85], "no difference we can detect"),
    # two standard errors (0.0033) are below the difference (0.0042), yet Welch's p is 0.065 on 3 + 3
    # seeds: the lenient rule this replaced would have called it a gain
    ([0.853, 0.853, 0.8566], "no difference we can detect"),
])
def test_compare_to_baseline_tells_a_difference_from_seed_noise(tuned_runs, outcome):
    def study(runs):
        return {"accuracy": runs, "accuracy_mean": float(np.mean(runs)),
                "accuracy_std": float(np.std(runs, ddof=1))}

    seed_study = {"baseline": study([0.85, 0.852, 0.848]), "lucky": study([0.99, 0.99, 0.99]),
                  "tuned": study(tuned_runs)}
    verdict = tuning.compare_to_baseline(seed_study, baseline="baseline", candidate="tuned")
    assert verdict["best"] == "tuned" and verdict["outcome"] == outcome  # never the "lucky" one
    assert verdict["difference"] == pytest.approx(np.mean(tuned_runs) - 0.85)
    welch = stats.ttest_ind(tuned_runs, [0.85, 0.852, 0.848], equal_var=False)
    assert (verdict["t"], verdict["p_value"]) == pytest.approx((welch.statistic, welch.pvalue))
    assert verdict["test"] == "Welch's t-test" and verdict["n_seeds"] == 3
    with pytest.raises(ValueError, match="baseline='nope'"):
        tuning.compare_to_baseline(seed_study, baseline="nope", candidate="tuned")
    with pytest.raises(ValueError, match="candidate='baseline'"):
        tuning.compare_to_baseline(seed_study, baseline="baseline", candidate="baseline")


def test_coinciding_searches_are_named():
    found = {"random": {"dense_layers": 1, "units_0": 64, "units_1": 20, "learning_rate": 1e-3},
             "hyperband": {"dense_layers": 1, "units_0": 64, "learning_rate": 0.001,
                           "tuner/epochs": 4},
             "bayesian": {"dense_layers": 2, "units_0": 64, "units_1": 20, "learning_rate": 1e-3}}
    same = tuning.coinciding_searches(found)
    assert same == {"random": ["hyperband"], "hyperband": ["random"], "bayesian": []}


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_fine_tune_time_budget_stops_before_an_epoch_would_pass_it(monkeypatch):
    """``max_seconds``: no epoch starts that would end past the budget (at the slowest pace)."""
    import types

    from fashion_utils.training import finetune

    clock = _Clock()
    monkeypatch.setattr(finetune.time, "perf_counter", clock)
    timer = finetune._EpochTimer(25.0)
    timer.set_model(types.SimpleNamespace(stop_training=False))
    timer.on_train_begin()
    for epoch, seconds in enumerate([8.0, 9.0, 8.0, 8.0]):
        timer.on_epoch_begin(epoch)
        clock.now += seconds
        timer.on_epoch_end(epoch)
        if timer.model.stop_training:
            break
    assert timer.seconds == [8.0, 9.0] and timer.stopped_for_time  # 17 s + 9 s > 25 s
    free = finetune._EpochTimer(None)
    free.set_model(types.SimpleNamespace(stop_training=False))
    free.on_train_begin()
    free.on_epoch_begin(0)
    clock.now += 1e6
    free.on_epoch_end(0)
    assert not free.model.stop_training and not free.stopped_for_time


@pytest.mark.slow  # a tiny backbone trained on 24 images for 3 epochs: a few seconds
def test_fine_tune_augments_only_the_training_side_and_saves_the_best_epoch(tmp_path, make_image,
                                                                            monkeypatch):
    from fashion_utils.vision import features, models
    from fashion_utils.training import finetune

    def tiny_backbone(name, *, image_size, weights=None, **_):
        inputs = keras.Input((image_size, image_size, 3))
        x = keras.layers.Conv2D(4, 3, name="block1a_conv")(inputs)
        return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x), name=name)

    calls = []
    real_dataset = finetune.labelled_image_dataset

    def recording(paths, labels, **kwargs):
        calls.append((len(paths), kwargs.get("augmenter"), kwargs.get("shuffle", False)))
        return real_dataset(paths, labels, **kwargs)

    monkeypatch.setattr(finetune, "load_backbone", tiny_backbone)
    monkeypatch.setattr(finetune, "labelled_image_dataset", recording)
    colors = [(220, 30, 30), (30, 30, 220)]
    paths = [str(make_image(tmp_path / "img" / f"{i}.png", color=colors[i % 2], seed=i,
                            size=(16, 16))) for i in range(32)]
    labels = np.arange(32) % 2
    head = models.build_classifier_head(4, 2)
    result = finetune.fine_tune(head, backbone_name="tiny", train_paths=paths[:24],
                                train_labels=labels[:24], val_paths=paths[24:],
                                val_labels=labels[24:], class_names=["red", "blue"],
                                image_size=16, model_path=tmp_path / "ft.keras", epochs=4,
                                batch_size=8, learning_rate=0.3, patience=4, weights=None,
                                verbose=0)
    (n_train, train_aug, train_shuffle), (n_val, val_aug, val_shuffle) = calls
    assert (n_train, n_val) == (24, 8) and train_aug is not None and val_aug is None
    assert train_shuffle and not val_shuffle
    saved = models.load_end_to_end_model(result.model_path)
    probs = features.predict_image_files(saved, paths[24:], image_size=16)
    history = result.history["val_accuracy"]
    assert np.mean(probs.argmax(1) == labels[24:]) == pytest.approx(max(history))
    assert result.best_val_accuracy == max(history)
