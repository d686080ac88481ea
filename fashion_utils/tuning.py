"""Hyperparameter search over a classifier head on cached features (notebook 04).

The original study tuned with six 5-epoch RandomSearch trials over a tiny space, judged on the
test set, one run each. Here:

- :func:`make_hypermodel` builds ``build_model(hp)`` over cached backbone features. Its
  ``"wide"`` space *contains* the original one (first dense layer units ∈ {20, 40, 50},
  learning rate ∈ {1e-2, 1e-3, 1e-4}) and widens it: 1–3 dense layers of 16–512 units,
  dropout 0–0.5, optimizer ∈ {adam, sgd, rmsprop}, batch size and L2. ``space="original"``
  is the original space exactly (see :data:`ORIGINAL_SEARCH`).
- :func:`make_tuner` makes a RandomSearch, Hyperband or BayesianOptimization tuner whose
  folder persists: building it again with ``overwrite=False`` reloads a finished or
  interrupted search, and :func:`run_search` then only runs what is left.
- :func:`run_search` searches on the **validation split only** (objective ``val_accuracy``)
  with early stopping instead of a tuned epoch count, and returns a summary and the
  per-trial table.
- :func:`retrain_best` retrains a configuration on train + validation; :func:`multi_seed`
  trains one configuration with several seeds, so a difference can be told from noise.
- Distributed search on KerasTuner's own chief/worker mode (gRPC): :func:`launch_distributed`
  and ``python -m fashion_utils.tuning distributed --workers N`` (``make tune-distributed``).

Command line::

    python -m fashion_utils.tuning distributed --workers 2      # chief + 2 workers on 127.0.0.1
    python -m fashion_utils.tuning export-data --out search.npz   # the arrays a search uses
    python -m fashion_utils.tuning chief  --data-file search.npz  # one machine: the oracle
    python -m fashion_utils.tuning worker --data-file search.npz  # every other machine

``chief`` and ``worker`` read ``KERASTUNER_TUNER_ID``, ``KERASTUNER_ORACLE_IP`` and
``KERASTUNER_ORACLE_PORT`` from the environment, as KerasTuner does.

``distributed`` (``make tune-distributed WORKERS=N``) searches the train and validation rows
of the default data set's cached features (notebook 03's feature cache, rows and labels from
notebook 02's study sample; see :func:`load_search_data`) when they exist, and otherwise
synthetic features (:func:`synthetic_search_data`); the first line it prints says which. The
search lives in ``<models>/tuning_distributed/``: the chief's oracle and every trial in
``distributed/``, each worker's own trials in ``workers/<tuner id>/``, logs in ``logs/``.
Running it again resumes that search; ``--overwrite`` starts afresh.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

import keras
import keras_tuner as kt

from fashion_utils.atomic import write_json_atomic
from fashion_utils import config

__all__ = [
    "BASELINE_VALUES", "DistributedSearch", "HeadHyperModel", "ORIGINAL_SEARCH", "SearchResult",
    "TUNER_KINDS", "active_values", "baseline_hyperparameters", "distributed_summary",
    "hyperband_budget", "hyperparameters_from_values", "launch_distributed", "load_search_data",
    "main", "make_hypermodel", "make_tuner", "multi_seed", "original_search_space", "plot_trials",
    "read_search_data", "read_trials", "retrain_best", "run_search", "run_search_worker",
    "save_search_data", "search_space", "synthetic_search_data",
]

# ---------------------------------------------------------------------------------- the space

UNITS_CHOICES: tuple[int, ...] = (16, 20, 32, 40, 50, 64, 128, 256, 512)
LEARNING_RATES: tuple[float, ...] = (1e-2, 3e-3, 1e-3, 3e-4, 1e-4)
OPTIMIZERS: tuple[str, ...] = ("adam", "sgd", "rmsprop")
BATCH_SIZES: tuple[int, ...] = (10, 32, 64, 128, 256)  # 10: the original study's
L2_CHOICES: tuple[float, ...] = (0.0, 1e-5, 1e-4, 1e-3)
MAX_DENSE_LAYERS = 3
MAX_DROPOUT = 0.5
TUNER_KINDS: tuple[str, ...] = ("random", "hyperband", "bayesian")
SPACES: tuple[str, ...] = ("wide", "original")
OBJECTIVE = "val_accuracy"

#: The original study's search: RandomSearch, 6 trials of 5 epochs, first dense layer units
#: × learning rate, on a Dense(units)-Dense(20)-softmax head with Adam (batch size 10).
ORIGINAL_SEARCH: dict[str, Any] = {
    "kind": "random",
    "max_trials": 6,
    "epochs": 5,
    "space": {"units_0": (20, 40, 50), "learning_rate": (1e-2, 1e-3, 1e-4)},
}

#: The baseline head of notebook 03 (Dense 50-20-N, Adam 1e-3, batch 10 as in the original
#: study) as values of the wide space: the configuration every tuned one is compared with.
BASELINE_VALUES: dict[str, Any] = {
    "dense_layers": 2, "units_0": 50, "units_1": 20, "dropout": 0.0, "l2": 0.0,
    "optimizer": "adam", "learning_rate": 1e-3, "batch_size": 10,
}
ORIGINAL_BATCH_SIZE = 10


def original_search_space() -> dict[str, Any]:
    """The original study's search (a copy of :data:`ORIGINAL_SEARCH`).

    Returns:
        ``{"kind": "random", "max_trials": 6, "epochs": 5, "space": {name: values}}``.
    """
    return {**ORIGINAL_SEARCH, "space": dict(ORIGINAL_SEARCH["space"])}


def _check_positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}. Received: {name}={value!r}")
    return int(value)


class HeadHyperModel(kt.HyperModel):
    """A tunable classifier head over cached features; ``fit`` uses the tuned batch size.

    Calling the object (``hypermodel(hp)``) is the same as ``hypermodel.build(hp)``, so it can
    be passed wherever a ``build_model(hp)`` function is expected.

    Attributes:
        input_dim, num_classes, space, seed: as given to :func:`make_hypermodel`.
        epochs_trained: epochs trained by :meth:`fit` in this process (a budget counter).
    """

    def __init__(self, input_dim: int, num_classes: int, *, space: str = "wide",
                 seed: int = config.SEED) -> None:
        super().__init__(name=f"head_{space}", tunable=True)
        self.input_dim = _check_positive_int("input_dim", input_dim)
        self.num_classes = _check_positive_int("num_classes", num_classes, minimum=2)
        if space not in SPACES:
            raise ValueError(f"space must be one of {list(SPACES)}. Received: space={space!r}")
        self.space = space
        self.seed = _check_positive_int("seed", seed, minimum=0)
        self.epochs_trained = 0

    def __call__(self, hp: kt.HyperParameters) -> keras.Model:
        return self.build(hp)

    def build(self, hp: kt.HyperParameters, *, seed: int | None = None) -> keras.Model:
        """Clear the Keras session, seed, and build + compile the head for ``hp``."""
        keras.backend.clear_session()
        keras.utils.set_random_seed(self.seed if seed is None else seed)
        if self.space == "original":
            return self._build_original(hp)
        return self._build_wide(hp)

    def _build_original(self, hp: kt.HyperParameters) -> keras.Model:
        units = hp.Choice("units_0", list(ORIGINAL_SEARCH["space"]["units_0"]))
        learning_rate = hp.Choice("learning_rate", list(ORIGINAL_SEARCH["space"]["learning_rate"]))
        hp.Fixed("batch_size", ORIGINAL_BATCH_SIZE)
        inputs = keras.Input(shape=(self.input_dim,), name="features")
        x = keras.layers.Dense(units, activation="relu", name="dense_0")(inputs)
        x = keras.layers.Dense(20, activation="relu", name="dense_1")(x)
        outputs = keras.layers.Dense(self.num_classes, activation="softmax", name="predictions")(x)
        model = keras.Model(inputs, outputs, name="original_tuned_head")
        model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    def _build_wide(self, hp: kt.HyperParameters) -> keras.Model:
        n_layers = hp.Int("dense_layers", 1, MAX_DENSE_LAYERS)
        dropout = round(hp.Float("dropout", 0.0, MAX_DROPOUT, step=0.1), 4)
        l2 = hp.Choice("l2", list(L2_CHOICES))
        regularizer = keras.regularizers.L2(l2) if l2 > 0 else None
        inputs = keras.Input(shape=(self.input_dim,), name="features")
        x = inputs
        for i in range(n_layers):
            units = hp.Choice(f"units_{i}", list(UNITS_CHOICES))
            x = keras.layers.Dense(units, activation="relu", kernel_regularizer=regularizer,
                                   name=f"dense_{i}")(x)
            if dropout > 0:
                x = keras.layers.Dropout(dropout, name=f"dropout_{i}")(x)
        outputs = keras.layers.Dense(self.num_classes, activation="softmax", name="predictions")(x)
        model = keras.Model(inputs, outputs, name="tuned_head")
        name = hp.Choice("optimizer", list(OPTIMIZERS))
        learning_rate = hp.Choice("learning_rate", list(LEARNING_RATES))
        hp.Choice("batch_size", list(BATCH_SIZES))
        optimizer = {"adam": lambda: keras.optimizers.Adam(learning_rate),
                     "sgd": lambda: keras.optimizers.SGD(learning_rate, momentum=0.9),
                     "rmsprop": lambda: keras.optimizers.RMSprop(learning_rate)}[name]()
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return model

    def fit(self, hp: kt.HyperParameters, model: keras.Model, *args: Any, **kwargs: Any):
        """``model.fit`` with the batch size taken from ``hp``; returns the History."""
        kwargs.pop("batch_size", None)
        history = model.fit(*args, batch_size=int(hp.get("batch_size")), **kwargs)
        self.epochs_trained += len(history.epoch)
        return history


def make_hypermodel(input_dim: int, num_classes: int, *, space: str = "wide",
                    seed: int = config.SEED) -> HeadHyperModel:
    """``build_model(hp)`` over cached features, as a KerasTuner HyperModel.

    Args:
        input_dim: feature length (e.g. 1280 for EfficientNet-Lite0).
        num_classes: number of classes (sparse integer labels ``0..num_classes-1``).
        space: ``"wide"`` (contains the original space, see module docstring) or
            ``"original"`` (units_0 ∈ {20, 40, 50} × learning rate ∈ {1e-2, 1e-3, 1e-4}).
        seed: weights are initialised with this seed in every trial.

    Returns:
        A :class:`HeadHyperModel`; ``hypermodel(hp)`` builds and compiles a model.
    """
    return HeadHyperModel(input_dim, num_classes, space=space, seed=seed)


def _full_space(hypermodel: kt.HyperModel) -> kt.HyperParameters:
    """Every hyperparameter of a hypermodel (built once per number of layers; memoised)."""
    cached = getattr(hypermodel, "_full_space_hp", None)
    if cached is not None:
        return cached.copy()
    hp = kt.HyperParameters()
    hypermodel.build(hp)
    if "dense_layers" in hp.values:
        for n in range(2, MAX_DENSE_LAYERS + 1):
            hp.values["dense_layers"] = n
            hypermodel.build(hp)
        hp.values["dense_layers"] = 1
    keras.backend.clear_session()
    hypermodel._full_space_hp = hp
    return hp.copy()


def search_space(hypermodel: kt.HyperModel) -> dict[str, dict[str, Any]]:
    """Every hyperparameter of a hypermodel with its possible values or range.

    Returns:
        ``{name: {"type": ..., "values": [...]} or {"type": ..., "min": ..., "max": ..., "step": ...}}``,
        including conditional entries (e.g. ``units_2``), found by building with each
        number of layers.
    """
    hp = _full_space(hypermodel)
    out: dict[str, dict[str, Any]] = {}
    for entry in hp.space:
        config_ = entry.get_config()
        kind = type(entry).__name__
        if "values" in config_:
            out[entry.name] = {"type": kind, "values": list(config_["values"])}
        elif kind == "Fixed":
            out[entry.name] = {"type": kind, "values": [config_["value"]]}
        else:
            out[entry.name] = {"type": kind, "min": config_["min_value"],
                               "max": config_["max_value"], "step": config_.get("step")}
    return out


def hyperparameters_from_values(hypermodel: kt.HyperModel,
                                values: Mapping[str, Any]) -> kt.HyperParameters:
    """A ``HyperParameters`` object holding ``values`` (others at their defaults).

    Raises:
        ValueError: a name that is not in the hypermodel's space, or a value outside it.
    """
    space = search_space(hypermodel)
    for name, value in values.items():
        if name not in space:
            raise ValueError(f"{name!r} is not a hyperparameter of this space ({sorted(space)}). "
                             f"Received: {name}={value!r}")
        spec = space[name]
        if "values" in spec:
            if not any(_same(value, v) for v in spec["values"]):
                raise ValueError(f"{name} must be one of {spec['values']}. Received: {name}={value!r}")
        elif not spec["min"] - 1e-9 <= value <= spec["max"] + 1e-9:
            raise ValueError(f"{name} must be in [{spec['min']}, {spec['max']}]. "
                             f"Received: {name}={value!r}")
    hp = _full_space(hypermodel)  # the whole space at its defaults ...
    hp.values.update(dict(values))  # ... holding the given values
    return hp


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def baseline_hyperparameters(hypermodel: HeadHyperModel) -> kt.HyperParameters:
    """The baseline head (Dense 50-20-N, Adam 1e-3, batch 10) in the hypermodel's space."""
    if hypermodel.space == "original":
        return hyperparameters_from_values(hypermodel, {"units_0": 50, "learning_rate": 1e-3})
    return hyperparameters_from_values(hypermodel, BASELINE_VALUES)


# ---------------------------------------------------------------------------------- tuners


def make_tuner(kind: str, hypermodel: kt.HyperModel, *, directory: str | os.PathLike,
               project_name: str, max_trials: int | None = None, max_epochs: int | None = None,
               factor: int = 3, seed: int = config.SEED, overwrite: bool = False,
               executions_per_trial: int = 1, num_initial_points: int | None = None) -> kt.Tuner:
    """A KerasTuner tuner on ``val_accuracy`` whose folder persists.

    Args:
        kind: ``"random"``, ``"hyperband"`` or ``"bayesian"``.
        hypermodel: e.g. from :func:`make_hypermodel`.
        directory: parent folder (notebooks pass ``paths.models / "tuning"``).
        project_name: sub-folder of this search.
        max_trials: trials of a random or Bayesian search (required for those).
        max_epochs: most epochs of one Hyperband model (required for Hyperband).
        factor: Hyperband's reduction factor.
        seed: the oracle's seed.
        overwrite: ``False`` reloads a search found in the folder (finished or interrupted)
            and continues it; ``True`` deletes it and starts over.
        executions_per_trial: models trained per trial (their scores are averaged).
        num_initial_points: random trials before BayesianOptimization starts modelling
            (``None``: a third of ``max_trials``, at least 2). KerasTuner's own default is
            3 × the number of hyperparameters (27 here), which turns any search of up to 27
            trials into a RandomSearch — the same trials as RandomSearch with the same seed.

    Returns:
        The tuner.
    """
    if kind not in TUNER_KINDS:
        raise ValueError(f"kind must be one of {list(TUNER_KINDS)}. Received: kind={kind!r}")
    if not project_name or "/" in str(project_name):
        raise ValueError(f"project_name must be a plain folder name. Received: "
                         f"project_name={project_name!r}")
    seed = _check_positive_int("seed", seed, minimum=0)
    common = dict(objective=kt.Objective(OBJECTIVE, direction="max"), seed=seed,
                  directory=os.fspath(directory), project_name=project_name,
                  overwrite=bool(overwrite),
                  executions_per_trial=_check_positive_int("executions_per_trial",
                                                           executions_per_trial))
    Path(directory).mkdir(parents=True, exist_ok=True)
    if kind == "hyperband":
        if max_epochs is None:
            raise ValueError("A Hyperband search needs max_epochs. Received: max_epochs=None")
        return kt.Hyperband(hypermodel, max_epochs=_check_positive_int("max_epochs", max_epochs, minimum=2),
                            factor=_check_positive_int("factor", factor, minimum=2),
                            hyperband_iterations=1, **common)
    if max_trials is None:
        raise ValueError(f"A {kind} search needs max_trials. Received: max_trials=None")
    max_trials = _check_positive_int("max_trials", max_trials)
    if kind == "random":
        return kt.RandomSearch(hypermodel, max_trials=max_trials, **common)
    if num_initial_points is None:
        num_initial_points = max(2, max_trials // 3)
    num_initial_points = _check_positive_int("num_initial_points", num_initial_points)
    return kt.BayesianOptimization(hypermodel, max_trials=max_trials,
                                   num_initial_points=num_initial_points, **common)


def hyperband_budget(max_epochs: int, *, factor: int = 3) -> dict[str, int]:
    """Trials and epochs one Hyperband iteration runs at most (before early stopping).

    Use it to give RandomSearch and BayesianOptimization the same budget: e.g.
    ``max_trials = budget["epochs"] // epochs_per_trial``.

    Returns:
        ``{"trials": ..., "epochs": ...}`` as KerasTuner's Hyperband schedules them.
    """
    max_epochs = _check_positive_int("max_epochs", max_epochs, minimum=2)
    factor = _check_positive_int("factor", factor, minimum=2)
    oracle = kt.oracles.HyperbandOracle(objective=kt.Objective(OBJECTIVE, "max"),
                                        max_epochs=max_epochs, factor=factor)
    trials = epochs = 0
    for bracket in reversed(range(oracle._get_num_brackets())):
        for round_ in range(oracle._get_num_rounds(bracket)):
            size = oracle._get_size(bracket, round_)
            run = oracle._get_epochs(bracket, round_)
            previous = oracle._get_epochs(bracket, round_ - 1) if round_ > 0 else 0
            trials += size
            epochs += size * (run - previous)
    return {"trials": int(trials), "epochs": int(epochs)}


@dataclass
class SearchResult:
    """What :func:`run_search` returns.

    Attributes:
        summary: JSON-able: kind, trials (completed/failed/incomplete/new), wall time (all
            runs of this search folder), best validation accuracy, best epochs, best
            hyperparameters.
        trials: one row per trial in start order: ``trial_id, order, status, val_accuracy,
            best_epoch`` and one column per hyperparameter (for a per-trial plot).
        best_hyperparameters: the best trial's ``HyperParameters``.
        tuner: the tuner itself.
    """

    summary: dict[str, Any]
    trials: pd.DataFrame
    best_hyperparameters: kt.HyperParameters | None
    tuner: kt.Tuner = field(repr=False)


def _trial_rows(trials: Iterable[Any], order: Sequence[str] = ()) -> pd.DataFrame:
    rank = {trial_id: i for i, trial_id in enumerate(order)}
    rows = []
    for trial in trials:
        score = trial.score if trial.score is not None else np.nan
        rows.append({"trial_id": trial.trial_id, "order": rank.get(trial.trial_id, len(rank) + len(rows)),
                     "status": str(trial.status), "val_accuracy": float(score),
                     # best_step counts from this trial's first epoch; a Hyperband trial
                     # may continue a previous one from "tuner/initial_epoch".
                     "best_epoch": (int(trial.best_step) + 1
                                    + int(trial.hyperparameters.values.get("tuner/initial_epoch", 0))
                                    if trial.best_step is not None and trial.status == "COMPLETED"
                                    else np.nan),
                     **{f"hp_{k}": v for k, v in trial.hyperparameters.values.items()
                        if not k.startswith("tuner/")}})
    columns = ["trial_id", "order", "status", "val_accuracy", "best_epoch"]
    table = pd.DataFrame(rows, columns=columns + sorted({k for r in rows for k in r} - set(columns)))
    return table.sort_values(["order", "trial_id"]).reset_index(drop=True)


def _update_search_log(project_dir: Path, entry: dict[str, Any]) -> list[dict[str, Any]]:
    log_file = project_dir / "search_log.json"
    runs = json.loads(log_file.read_text())["runs"] if log_file.exists() else []
    runs.append(entry)
    write_json_atomic(log_file, {"runs": runs}, indent=1)
    return runs


def active_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """Hyperparameter values without KerasTuner's bookkeeping (``tuner/...``) and without the
    units of layers a configuration does not have (``units_2`` when ``dense_layers`` is 2)."""
    layers = values.get("dense_layers")
    out = {}
    for key, value in values.items():
        if key.startswith("tuner/"):
            continue
        if layers is not None and key.startswith("units_") and int(key.split("_")[1]) >= int(layers):
            continue
        out[key] = value
    return out


def _summarise(kind: str, trials: pd.DataFrame, *, wall_time_s: float, new_trials: int,
               best_hps: Mapping[str, Any] | None, runs: int) -> dict[str, Any]:
    completed = trials[trials["status"] == "COMPLETED"]
    best = completed.loc[completed["val_accuracy"].idxmax()] if len(completed) else None
    return {
        "tuner": kind,
        "trials": int(len(trials)),
        "completed_trials": int(len(completed)),
        "failed_trials": int(trials["status"].isin(["FAILED", "INVALID"]).sum()),
        "incomplete_trials": int((~trials["status"].isin(["COMPLETED", "FAILED", "INVALID"])).sum()),
        "new_trials": int(new_trials),
        "runs": int(runs),
        "wall_time_s": round(float(wall_time_s), 2),
        "best_val_accuracy": None if best is None else float(best["val_accuracy"]),
        "best_epochs": None if best is None or pd.isna(best["best_epoch"]) else int(best["best_epoch"]),
        "best_hyperparameters": active_values(best_hps or {}),
    }


def _tuner_kind(tuner: kt.Tuner) -> str:
    return {"Hyperband": "hyperband", "BayesianOptimization": "bayesian",
            "RandomSearch": "random"}.get(type(tuner).__name__, type(tuner).__name__)


def run_search(tuner: kt.Tuner, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray,
               y_val: np.ndarray, *, epochs: int, patience: int = 3,
               callbacks: Sequence[keras.callbacks.Callback] = (), verbose: int = 0) -> SearchResult:
    """Search on the validation split with early stopping; resumes what the folder holds.

    The test set is never an argument: the objective is ``val_accuracy`` on ``(x_val, y_val)``.

    Args:
        tuner: from :func:`make_tuner`.
        x_train, y_train: training features and integer labels.
        x_val, y_val: validation features and integer labels.
        epochs: most epochs per trial (Hyperband sets its own per round).
        patience: epochs without a better ``val_accuracy`` before a trial stops (restoring
            its best weights).
        callbacks: more Keras callbacks for every trial.
        verbose: Keras verbosity.

    Returns:
        A :class:`SearchResult`. Its ``wall_time_s`` adds up every run on this folder
        (interrupted ones included, see ``search_log.json``), so a resumed search reports the
        time it really took; ``new_trials`` counts the trials this run finished.
    """
    epochs = _check_positive_int("epochs", epochs)
    patience = _check_positive_int("patience", patience)
    for name, x, y in (("train", x_train, y_train), ("val", x_val, y_val)):
        if len(x) != len(y) or len(x) == 0:
            raise ValueError(f"x_{name} and y_{name} must be non-empty and of equal length. "
                             f"Received: {len(x)} and {len(y)}")
    before = len(tuner.oracle.trials)
    ended_before = len(tuner.oracle.end_order)
    stop = keras.callbacks.EarlyStopping(monitor=OBJECTIVE, mode="max", patience=patience,
                                         restore_best_weights=True)
    start = time.perf_counter()
    finished = False
    try:
        tuner.search(x_train, y_train, validation_data=(x_val, y_val), epochs=epochs,
                     callbacks=[stop, *callbacks], verbose=verbose)
        finished = True
    finally:  # an interrupted run's time counts too
        new_trials = len(tuner.oracle.end_order) - ended_before
        runs = _update_search_log(Path(tuner.project_dir), {
            "seconds": round(time.perf_counter() - start, 3), "new_trials": int(new_trials),
            "trials_before": int(before), "interrupted": not finished,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")})
    trials = _trial_rows(tuner.oracle.trials.values(), tuner.oracle.start_order)
    completed = trials["status"].eq("COMPLETED").any()
    best_hp = tuner.get_best_hyperparameters(1)[0] if completed else None
    summary = _summarise(_tuner_kind(tuner), trials, wall_time_s=sum(r["seconds"] for r in runs),
                         new_trials=new_trials, best_hps=best_hp.values if best_hp else None,
                         runs=len(runs))
    return SearchResult(summary=summary, trials=trials, best_hyperparameters=best_hp, tuner=tuner)


def plot_trials(results: Mapping[str, pd.DataFrame | SearchResult], *, ax=None):
    """Validation accuracy of every trial, in trial order, one line per tuner.

    Args:
        results: ``{label: SearchResult or its trials table}``.
        ax: a Matplotlib axes (a new figure when ``None``).

    Returns:
        The axes.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    for label, result in results.items():
        table = result.trials if isinstance(result, SearchResult) else result
        table = table[table["status"] == "COMPLETED"].sort_values("order")
        ax.plot(np.arange(1, len(table) + 1), table["val_accuracy"], marker="o", ms=3, label=label)
        ax.plot(np.arange(1, len(table) + 1), table["val_accuracy"].cummax(), ls=":",
                color=ax.lines[-1].get_color())
    ax.set(xlabel="trial (dotted: best so far)", ylabel="validation accuracy",
           title="Validation accuracy per trial")
    ax.legend()
    return ax


# ---------------------------------------------------------------------------------- retraining


def _check_xy(name: str, x: np.ndarray, y: np.ndarray) -> None:
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x_{name} and y_{name} must be non-empty and of equal length. "
                         f"Received: {len(x)} and {len(y)}")


def retrain_best(hypermodel: HeadHyperModel, hp: kt.HyperParameters, x_train: np.ndarray,
                 y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, *, epochs: int,
                 seed: int = config.SEED, verbose: int = 0) -> keras.Model:
    """Retrain a configuration on train + validation together, for a fixed number of epochs.

    With no data left to stop on, pass the epochs the search found best
    (``summary["best_epochs"]``). The model's ``history`` attribute holds the History.

    Args:
        hypermodel: the hypermodel the configuration comes from.
        hp: the configuration (e.g. ``result.best_hyperparameters``).
        x_train, y_train, x_val, y_val: both sides; they are concatenated.
        epochs: epochs to train.
        seed: weight initialisation and shuffling seed.
        verbose: Keras verbosity.

    Returns:
        The trained model.
    """
    _check_xy("train", x_train, y_train)
    _check_xy("val", x_val, y_val)
    epochs = _check_positive_int("epochs", epochs)
    x = np.concatenate([np.asarray(x_train), np.asarray(x_val)])
    y = np.concatenate([np.asarray(y_train), np.asarray(y_val)])
    model = hypermodel.build(hp, seed=_check_positive_int("seed", seed, minimum=0))
    hypermodel.fit(hp, model, x, y, epochs=epochs, shuffle=True, verbose=verbose)
    return model


def multi_seed(hypermodel: HeadHyperModel, hp: kt.HyperParameters, x_fit: np.ndarray,
               y_fit: np.ndarray, x_eval: np.ndarray, y_eval: np.ndarray, *,
               seeds: Sequence[int] = (0, 1, 2), epochs: int,
               validation_data: tuple[np.ndarray, np.ndarray] | None = None, patience: int = 3,
               verbose: int = 0) -> dict[str, Any]:
    """Train one configuration once per seed and score each run on ``(x_eval, y_eval)``.

    Args:
        hypermodel, hp: the configuration.
        x_fit, y_fit: training data (e.g. train + validation, as :func:`retrain_best` uses).
        x_eval, y_eval: where each run is scored (the test set, once per run, or validation).
        seeds: at least three seeds.
        epochs: epochs per run (most epochs when ``validation_data`` is given).
        validation_data: optional ``(x, y)`` for early stopping (best weights restored).
        patience: early-stopping patience.
        verbose: Keras verbosity.

    Returns:
        ``{"seeds", "accuracy", "macro_f1", "epochs", "accuracy_mean", "accuracy_std",
        "macro_f1_mean", "macro_f1_std"}``; std is the sample standard deviation (ddof=1).
    """
    from sklearn.metrics import f1_score

    seeds = [_check_positive_int("seed", s, minimum=0) for s in seeds]
    if len(seeds) < 3 or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must hold at least 3 distinct seeds. Received: seeds={seeds!r}")
    _check_xy("fit", x_fit, y_fit)
    _check_xy("eval", x_eval, y_eval)
    epochs = _check_positive_int("epochs", epochs)
    accuracy, macro_f1, epochs_run = [], [], []
    for seed in seeds:
        model = hypermodel.build(hp, seed=seed)
        callbacks = []
        if validation_data is not None:
            callbacks.append(keras.callbacks.EarlyStopping(monitor=OBJECTIVE, mode="max",
                                                           patience=patience,
                                                           restore_best_weights=True))
        history = hypermodel.fit(hp, model, x_fit, y_fit, epochs=epochs, shuffle=True,
                                 validation_data=validation_data, callbacks=callbacks,
                                 verbose=verbose)
        predicted = np.argmax(model.predict(x_eval, batch_size=1024, verbose=0), axis=1)
        accuracy.append(float(np.mean(predicted == np.asarray(y_eval))))
        macro_f1.append(float(f1_score(y_eval, predicted, average="macro")))
        epochs_run.append(len(history.epoch))
    keras.backend.clear_session()
    return {"seeds": seeds, "accuracy": accuracy, "macro_f1": macro_f1, "epochs": epochs_run,
            "accuracy_mean": float(np.mean(accuracy)), "accuracy_std": float(np.std(accuracy, ddof=1)),
            "macro_f1_mean": float(np.mean(macro_f1)), "macro_f1_std": float(np.std(macro_f1, ddof=1))}


# ---------------------------------------------------------------------------------- search data


def synthetic_search_data(*, n: int = 600, dim: int = 16, num_classes: int = 4,
                          seed: int = config.SEED, val_fraction: float = 0.25) -> dict[str, Any]:
    """Gaussian blobs standing in for cached features (tests, demos, no data set).

    Returns:
        ``{"x_train", "y_train", "x_val", "y_val", "class_names", "source"}``.
    """
    n = _check_positive_int("n", n, minimum=2 * num_classes)
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, 1.0, size=(num_classes, dim)).astype(np.float32)
    y = np.arange(n) % num_classes
    rng.shuffle(y)
    x = (centers[y] + rng.normal(0.0, 1.0, size=(n, dim))).astype(np.float32)
    n_val = max(num_classes, int(round(n * val_fraction)))
    return {"x_train": x[n_val:], "y_train": y[n_val:].astype(np.int64), "x_val": x[:n_val],
            "y_val": y[:n_val].astype(np.int64),
            "class_names": [f"class_{i}" for i in range(num_classes)],
            "source": f"synthetic ({n} points, {dim} dims, {num_classes} classes, seed {seed})"}


def load_search_data(data_dir: str | os.PathLike | None = None, *,
                     backbone: str = config.DEFAULT_BACKBONE, target: str = config.DEFAULT_TARGET,
                     image_size: int | None = None) -> dict[str, Any]:
    """Train and validation features of a data set from the feature cache (never the test set).

    Looks in ``get_paths(data_dir).features`` for a finished cache of ``backbone`` (preferring
    ``image_size``, default ``config.DEFAULT_IMAGE_SIZE``; else the largest). Rows and labels
    come from notebook 02's study sample, as in notebook 03 (``sampling.load_study_sample``);
    without one, from the catalog and its ``splits.csv`` (made afresh with
    ``splits.make_splits`` when missing).

    Returns:
        Like :func:`synthetic_search_data`, plus ``"missing"``: train/val rows without features
        (counted, not silently dropped).

    Raises:
        FileNotFoundError: no feature cache for that backbone, or one without train/val rows.
    """
    paths = config.get_paths(data_dir)
    wanted = image_size or config.DEFAULT_IMAGE_SIZE
    candidates = []
    for meta_file in sorted(paths.features.glob("*/meta.json")):
        meta = json.loads(meta_file.read_text())
        if meta.get("model_key") == backbone and (meta_file.parent / "features.npy").exists():
            candidates.append((meta.get("image_size") == wanted, int(meta.get("n", 0)),
                               meta_file.parent, meta))
    if not candidates:
        raise FileNotFoundError(f"No finished {backbone!r} feature cache under {paths.features} "
                                f"(run notebook 03 first).")
    _, _, folder, meta = max(candidates, key=lambda c: (c[0], c[1]))
    ids = (folder / "ids.txt").read_text().split()
    features = np.load(folder / "features.npy", mmap_mode="r")
    rows, origin = _labelled_rows(paths, target)
    class_names = sorted(rows[target].astype(str).unique())
    index = {name: i for i, name in enumerate(class_names)}
    position = {item: i for i, item in enumerate(ids)}
    out: dict[str, Any] = {"class_names": class_names, "missing": {}}
    for side in ("train", "val"):
        part = rows[rows["split"] == side]
        have = part[part["id"].isin(position)]
        out["missing"][side] = int(len(part) - len(have))
        if have.empty:
            raise FileNotFoundError(f"The cache {folder.name} holds no {side} row of the {origin}.")
        out[f"x_{side}"] = np.asarray(features[[position[i] for i in have["id"]]], dtype=np.float32)
        out[f"y_{side}"] = have[target].astype(str).map(index).to_numpy(dtype=np.int64)
    out["source"] = (f"{paths.data_dir.name}: {backbone} features @ {meta.get('image_size')} px "
                     f"({folder.name}), {origin}, target {target}")
    return out


def _labelled_rows(paths: config.Paths, target: str) -> tuple[pd.DataFrame, str]:
    """``id, split, <target>`` rows: the study sample if notebook 02 made one, else the catalog."""
    from fashion_utils import sampling
    from fashion_utils import splits as splits_module
    from fashion_utils.data import load_catalog

    try:
        sample = sampling.load_study_sample(paths, target=target)
        return sample.assign(id=sample["id"].astype(str))[["id", "split", target]], "study sample"
    except FileNotFoundError:
        pass
    catalog, _ = load_catalog(paths.data_dir, check_images=False)
    catalog = catalog.assign(id=catalog["id"].astype(str))
    try:
        splits = splits_module.load_splits(paths, target=target)
    except FileNotFoundError:
        splits = splits_module.make_splits(catalog, target=target, seed=config.SEED)
    rows = catalog[["id", target]].merge(splits.assign(id=splits["id"].astype(str)), on="id")
    return rows.dropna(subset=[target]), "catalog"


def save_search_data(data: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write search arrays to an ``.npz`` (atomically): what chief and workers read."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.npz")
    np.savez(tmp, **{k: np.asarray(data[k]) for k in ("x_train", "y_train", "x_val", "y_val")},
             class_names=np.asarray(data["class_names"], dtype=str),
             source=np.asarray(str(data.get("source", ""))))
    os.replace(tmp, path)
    return path


def read_search_data(path: str | os.PathLike) -> dict[str, Any]:
    """Read what :func:`save_search_data` wrote."""
    with np.load(path, allow_pickle=False) as npz:
        data = {k: npz[k] for k in ("x_train", "y_train", "x_val", "y_val")}
        data["class_names"] = [str(c) for c in npz["class_names"]]
        data["source"] = str(npz["source"])
    return data


# ---------------------------------------------------------------------------------- distributed

CHIEF_ID = "chief"
ASSIGNMENTS_FILE = "assignments.json"


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _atomic_json(path: Path, payload: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=1) + "\n")
    os.replace(tmp, path)


def _serve_oracle(tuner: kt.Tuner, *, expected_workers: int | None = None,
                  poll_s: float = 0.2) -> dict[str, list[str]]:
    """The chief's loop: KerasTuner's oracle servicer, plus a record of who ran what.

    Unlike ``tuner.search()`` on the chief (which polls every 20 s), this returns within
    ``poll_s`` of the last worker leaving, stops cleanly on SIGTERM/SIGINT (the oracle state
    is saved after every trial anyway), and writes ``assignments.json`` into the project
    folder: ``{"workers": {tuner_id: [trial_id, ...]}, "log": [[trial_id, tuner_id], ...]}``.
    A trial appears twice when a worker was lost and the trial was handed out again (KerasTuner
    puts trials that were running when the chief stopped back in its retry queue).

    With ``expected_workers``, the chief also waits until that many distinct workers have been
    told to stop: KerasTuner alone would leave as soon as the workers it has seen are done, so
    a worker that connects late (e.g. to a finished search) would wait for it forever.
    """
    from concurrent import futures

    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.distribute import oracle_chief

    project_dir = Path(tuner.project_dir)
    assignments_file = project_dir / ASSIGNMENTS_FILE
    record = (json.loads(assignments_file.read_text()) if assignments_file.exists()
              else {"workers": {}, "log": []})
    assignments: dict[str, list[str]] = record["workers"]
    oracle = tuner.oracle
    stopped: set[str] = set()

    class RecordingServicer(oracle_chief.OracleServicer):
        def CreateTrial(self, request, context):  # noqa: N802 - gRPC method name
            response = super().CreateTrial(request, context)
            if response.trial.status == protos.get_proto().TrialStatus.RUNNING:
                trial_id = response.trial.trial_id
                ids = assignments.setdefault(request.tuner_id, [])
                if trial_id not in ids:
                    ids.append(trial_id)
                if record["log"][-1:] != [[trial_id, request.tuner_id]]:
                    record["log"].append([trial_id, request.tuner_id])
                _atomic_json(assignments_file, record)
            elif response.trial.status == protos.get_proto().TrialStatus.STOPPED:
                stopped.add(request.tuner_id)
            return response

    stop = {"signal": None}

    def on_signal(signum, _frame):
        stop["signal"] = signum

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    tuner.save()
    _atomic_json(assignments_file, record)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    servicer = RecordingServicer(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    address = f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"
    if server.add_insecure_port(address) == 0:
        raise RuntimeError(f"The chief could not listen on {address} (port in use?)")
    server.start()
    print(f"chief: oracle listening on {address}", flush=True)
    try:
        while stop["signal"] is None:
            time.sleep(poll_s)
            if (servicer.stop_triggered and oracle_chief.exit_chief(oracle)
                    and len(stopped) >= (expected_workers or 0)):
                break
    finally:
        server.stop(grace=1.0).wait()
        oracle.save()
        _atomic_json(assignments_file, record)
        for s, handler in previous.items():
            signal.signal(s, handler)
    why = "all trials handed out and every worker gone" if stop["signal"] is None else \
        f"stopped by signal {stop['signal']}"
    print(f"chief: done ({why})", flush=True)
    return assignments


def _count_ended_trials(project_dir: Path) -> int:
    """Trials of a search folder that finished (completed, failed or invalid)."""
    ended = 0
    for path in Path(project_dir).glob("trial_*/trial.json"):
        ended += json.loads(path.read_text()).get("status") in ("COMPLETED", "FAILED", "INVALID")
    return ended


def _load_trials(project_dir: Path) -> tuple[list[Any], list[str]]:
    from keras_tuner.src.engine.trial import Trial

    trials = [Trial.load(str(f)) for f in sorted(Path(project_dir).glob("trial_*/trial.json"))]
    oracle_file = Path(project_dir) / "oracle.json"
    order = json.loads(oracle_file.read_text()).get("start_order", []) if oracle_file.exists() else []
    return trials, order


def read_trials(project_dir: str | os.PathLike) -> pd.DataFrame:
    """The per-trial table of a search folder, read from its ``trial_*/trial.json`` files."""
    return _trial_rows(*_load_trials(Path(project_dir)))


def distributed_summary(directory: str | os.PathLike, project_name: str, *,
                        exit_codes: Mapping[str, int | None] | None = None) -> dict[str, Any]:
    """Summary of a distributed search from the chief's folder (its oracle holds every trial).

    Returns:
        :func:`run_search`'s summary keys plus ``"assignments"`` (tuner id → trial ids),
        ``"trials_per_worker"``, ``"lost_trials"`` (started by a worker that never reported
        back: still RUNNING in the oracle) and ``"exit_codes"``; and ``"table"`` (the per-trial
        rows as records, with the worker that ran each).
    """
    project_dir = Path(directory) / project_name
    trials, order = _load_trials(project_dir)
    table = _trial_rows(trials, order)
    assignments_file = project_dir / ASSIGNMENTS_FILE
    record = (json.loads(assignments_file.read_text()) if assignments_file.exists()
              else {"workers": {}, "log": []})
    assignments = record["workers"]
    worker_of = {t: w for t, w in record["log"]}  # the last worker given each trial
    table.insert(1, "worker", [worker_of.get(t) for t in table["trial_id"]])
    completed = [t for t in trials if t.status == "COMPLETED" and t.score is not None]
    best_hps = max(completed, key=lambda t: t.score).hyperparameters.values if completed else None
    log_file = project_dir / "search_log.json"
    runs = json.loads(log_file.read_text())["runs"] if log_file.exists() else []
    summary = _summarise("distributed", table, wall_time_s=sum(r["seconds"] for r in runs),
                         new_trials=runs[-1]["new_trials"] if runs else 0, best_hps=best_hps,
                         runs=len(runs))
    summary.update({
        "assignments": assignments,
        "trials_per_worker": {w: len(ids) for w, ids in assignments.items()},
        "reassigned_trials": sorted({t for t, _ in record["log"]
                                     if sum(t == u for u, _ in record["log"]) > 1}),
        "lost_trials": table.loc[table["status"] == "RUNNING", "trial_id"].tolist(),
        "exit_codes": dict(exit_codes or {}),
        "table": table.to_dict(orient="records"),
    })
    return summary


@dataclass
class DistributedSearch:
    """A chief and its workers running as local processes (see :func:`launch_distributed`).

    Always end with :meth:`wait` or :meth:`terminate` (or use it as a context manager, which
    terminates whatever still runs).
    """

    directory: Path
    project_name: str
    port: int
    chief: subprocess.Popen
    workers: dict[str, subprocess.Popen]
    logs: dict[str, Path]
    trials_before: int = 0
    started: float = field(default_factory=time.perf_counter)

    def __enter__(self) -> "DistributedSearch":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.terminate()

    @property
    def project_dir(self) -> Path:
        return self.directory / self.project_name

    def assignments(self) -> dict[str, list[str]]:
        """The chief's record so far: tuner id → trial ids handed out."""
        path = self.project_dir / ASSIGNMENTS_FILE
        try:
            return json.loads(path.read_text())["workers"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            return {}

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.logs[name]
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def _stop_chief(self, grace_s: float) -> None:
        try:
            self.chief.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            pass
        self.chief.send_signal(signal.SIGTERM)  # saves and exits (see _serve_oracle)
        try:
            self.chief.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.chief.kill()
            self.chief.wait()

    def wait(self, *, timeout: float | None = None, chief_grace_s: float = 5.0,
             worker_grace_s: float = 60.0) -> dict[str, Any]:
        """Wait for every worker, then for the chief (stopping it if a worker was lost).

        Args:
            timeout: seconds before everything is killed and ``TimeoutError`` raised.
            chief_grace_s: how long the chief may take to leave by itself once the workers
                are done (it cannot when a worker died holding a trial).
            worker_grace_s: how long workers may still run after the chief left normally
                (they are killed after that; their exit codes say so).

        Returns:
            :func:`distributed_summary`, with ``"wall_time_s"`` of this launch.

        Raises:
            RuntimeError: the chief died while workers were running (its log tail included).
            TimeoutError: the search did not finish within ``timeout``.
        """
        deadline = None if timeout is None else time.perf_counter() + timeout
        chief_left = None
        try:
            while any(p.poll() is None for p in self.workers.values()):
                if self.chief.poll() not in (None, 0):
                    raise RuntimeError(f"The chief exited with code {self.chief.returncode} while "
                                       f"workers ran. Its log:\n{self.log_tail(CHIEF_ID)}")
                if self.chief.poll() == 0:
                    # The chief leaves once the last worker has been told to stop; that worker
                    # may still be shutting down. One that is not gone soon is stuck.
                    chief_left = chief_left or time.perf_counter()
                    if time.perf_counter() - chief_left > worker_grace_s:
                        for proc in self.workers.values():
                            if proc.poll() is None:
                                proc.kill()
                                proc.wait()
                        break
                if deadline is not None and time.perf_counter() > deadline:
                    raise TimeoutError(f"The distributed search did not finish in {timeout} s. "
                                       f"Chief log:\n{self.log_tail(CHIEF_ID)}")
                time.sleep(0.2)
            self._stop_chief(chief_grace_s)
        except BaseException:
            self.terminate()
            raise
        seconds = time.perf_counter() - self.started
        exit_codes = {CHIEF_ID: self.chief.returncode,
                      **{name: p.returncode for name, p in self.workers.items()}}
        new_trials = _count_ended_trials(self.project_dir) - self.trials_before
        _update_search_log(self.project_dir, {
            "seconds": round(seconds, 3), "new_trials": new_trials, "workers": len(self.workers),
            "trials_before": self.trials_before, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")})
        return distributed_summary(self.directory, self.project_name, exit_codes=exit_codes)

    def terminate(self) -> None:
        """Kill every process of this search that still runs (workers first)."""
        for proc in [*self.workers.values(), self.chief]:
            if proc.poll() is None:
                proc.kill()
        for proc in [*self.workers.values(), self.chief]:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover - a kill is not refused
                pass


def _role_command(role: str, *, data_file: Path, directory: Path, project_name: str, kind: str,
                  max_trials: int, max_epochs: int, epochs: int, patience: int, seed: int,
                  overwrite: bool, extra: Sequence[str] = ()) -> list[str]:
    command = [sys.executable, "-m", "fashion_utils.tuning", role, "--data-file", str(data_file),
               "--directory", str(directory), "--project-name", project_name, "--tuner", kind,
               "--max-trials", str(max_trials), "--max-epochs", str(max_epochs),
               "--epochs", str(epochs), "--patience", str(patience), "--seed", str(seed)]
    return command + (["--overwrite"] if overwrite else []) + list(extra)


def launch_distributed(*, workers: int, data_file: str | os.PathLike,
                       directory: str | os.PathLike, project_name: str = "distributed",
                       kind: str = "random", max_trials: int = 10, max_epochs: int = 10,
                       epochs: int = 10, patience: int = 3, seed: int = config.SEED,
                       host: str = "127.0.0.1", port: int | None = None, overwrite: bool = False,
                       threads_per_worker: int | None = None) -> DistributedSearch:
    """Start one chief and ``workers`` workers on this machine, sharing one search.

    The chief runs the oracle (KerasTuner's gRPC service) and writes every trial into
    ``directory/project_name``; worker ``tunerK`` trains in its own folder
    ``directory/workers/tunerK/project_name``. Logs go to ``directory/logs/``.

    Args:
        workers: number of worker processes (>= 1).
        data_file: the ``.npz`` of :func:`save_search_data`.
        directory: the search's folder.
        project_name: the search's name.
        kind, max_trials, max_epochs, seed: see :func:`make_tuner`.
        epochs, patience: see :func:`run_search`.
        host, port: where the oracle listens (a free port when ``port`` is ``None``).
        overwrite: delete ``directory`` first (a fresh search) instead of resuming.
        threads_per_worker: TensorFlow threads per worker (``None``: TensorFlow's default).

    Returns:
        A :class:`DistributedSearch`; call its ``wait()``.
    """
    workers = _check_positive_int("workers", workers)
    if kind not in TUNER_KINDS:
        raise ValueError(f"kind must be one of {list(TUNER_KINDS)}. Received: kind={kind!r}")
    directory = Path(directory).resolve()
    data_file = Path(data_file).resolve()
    if not data_file.exists():
        raise FileNotFoundError(f"No search data at {data_file} (see save_search_data).")
    if overwrite and directory.exists():
        shutil.rmtree(directory)
    (directory / "logs").mkdir(parents=True, exist_ok=True)
    port = port or _free_port(host)
    base_env = {**os.environ, "KERASTUNER_ORACLE_IP": host, "KERASTUNER_ORACLE_PORT": str(port),
                "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    if threads_per_worker:
        base_env.update({"TF_NUM_INTRAOP_THREADS": str(threads_per_worker),
                         "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": str(threads_per_worker)})
    options = dict(data_file=data_file, project_name=project_name, kind=kind, max_trials=max_trials,
                   max_epochs=max_epochs, epochs=epochs, patience=patience, seed=seed,
                   overwrite=False)
    logs: dict[str, Path] = {}
    processes: dict[str, subprocess.Popen] = {}

    def start(name: str, role: str, folder: Path, extra: Sequence[str] = ()) -> subprocess.Popen:
        logs[name] = directory / "logs" / f"{name}.log"
        with open(logs[name], "ab") as log:
            return subprocess.Popen(_role_command(role, directory=folder, extra=extra, **options),
                                    env={**base_env, "KERASTUNER_TUNER_ID": name},
                                    stdout=log, stderr=subprocess.STDOUT, cwd=config.PROJ_ROOT,
                                    start_new_session=True)

    trials_before = _count_ended_trials(directory / project_name)
    chief = start(CHIEF_ID, "chief", directory, extra=["--workers", str(workers)])
    try:
        for k in range(workers):
            name = f"tuner{k}"
            processes[name] = start(name, "worker", directory / "workers" / name)
    except BaseException:
        for proc in [*processes.values(), chief]:
            proc.kill()
        raise
    return DistributedSearch(directory=directory, project_name=project_name, port=port,
                             chief=chief, workers=processes, logs=logs, trials_before=trials_before)


def _run_role(role: str, args: argparse.Namespace) -> int:
    """``chief`` or ``worker``: the KerasTuner process this machine plays in a search."""
    from keras_tuner.src.distribute import utils as dist_utils

    if not dist_utils.has_chief_oracle():
        raise SystemExit("Set KERASTUNER_TUNER_ID, KERASTUNER_ORACLE_IP and "
                         "KERASTUNER_ORACLE_PORT (see the README's distributed tuning section).")
    tuner_id = os.environ["KERASTUNER_TUNER_ID"]
    if (role == "chief") != dist_utils.is_chief_oracle():
        raise SystemExit(f"KERASTUNER_TUNER_ID={tuner_id!r} does not fit the role {role!r} "
                         f"(the chief's id contains 'chief').")
    data = read_search_data(args.data_file)
    hypermodel = make_hypermodel(int(data["x_train"].shape[1]), len(data["class_names"]),
                                 seed=args.seed)
    tuner = make_tuner(args.tuner, hypermodel, directory=args.directory,
                       project_name=args.project_name, max_trials=args.max_trials,
                       max_epochs=args.max_epochs, seed=args.seed, overwrite=args.overwrite)
    start = time.perf_counter()
    if role == "chief":
        _serve_oracle(tuner, expected_workers=args.workers)
        return 0
    result = run_search_worker(tuner, data, epochs=args.epochs, patience=args.patience)
    result["seconds"] = round(time.perf_counter() - start, 2)
    _atomic_json(Path(tuner.project_dir) / f"worker_{tuner_id}.json", result)
    print(f"{tuner_id}: ran {len(result['trial_dirs'])} trial(s) in {result['seconds']} s", flush=True)
    return 0


def run_search_worker(tuner: kt.Tuner, data: Mapping[str, Any], *, epochs: int,
                      patience: int) -> dict[str, Any]:
    """A worker's part of a distributed search: trials until the chief says stop."""
    stop = keras.callbacks.EarlyStopping(monitor=OBJECTIVE, mode="max", patience=patience,
                                         restore_best_weights=True)
    tuner.search(data["x_train"], data["y_train"], validation_data=(data["x_val"], data["y_val"]),
                 epochs=epochs, callbacks=[stop], verbose=0)
    trial_dirs = sorted(p.name for p in Path(tuner.project_dir).glob("trial_*") if p.is_dir())
    return {"tuner_id": os.environ.get("KERASTUNER_TUNER_ID"), "trial_dirs": trial_dirs}


def _distributed_data(args: argparse.Namespace, directory: Path) -> Path:
    if args.data_file:
        return Path(args.data_file)
    if args.synthetic:
        data = synthetic_search_data(seed=args.seed)
    else:
        try:
            data = load_search_data(args.data, target=args.target)
        except (FileNotFoundError, ValueError) as error:
            print(f"No cached features to search on ({error}); using synthetic features instead.")
            data = synthetic_search_data(seed=args.seed)
    missing = data.get("missing", {})
    print(f"search data: {data['source']}; {len(data['x_train'])} train, {len(data['x_val'])} "
          f"validation rows, {len(data['class_names'])} classes"
          + (f" ({missing} rows without features left out)" if any(missing.values()) else ""),
          flush=True)
    return save_search_data(data, directory / "search_data.npz")


def _print_summary(summary: Mapping[str, Any]) -> None:
    printable = {k: v for k, v in summary.items() if k != "table"}
    print(json.dumps(printable, indent=1, default=str))
    table = pd.DataFrame(summary.get("table", []))
    if len(table):
        print(table[["trial_id", "worker", "status", "val_accuracy"]].to_string(index=False))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fashion_utils.tuning",
                                     description="KerasTuner searches over a head on cached features.")
    sub = parser.add_subparsers(dest="command", required=True)

    def search_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--tuner", choices=TUNER_KINDS, default="random")
        p.add_argument("--max-trials", type=int, default=8)
        p.add_argument("--max-epochs", type=int, default=9, help="Hyperband only")
        p.add_argument("--epochs", type=int, default=5, help="most epochs per trial")
        p.add_argument("--patience", type=int, default=3)
        p.add_argument("--seed", type=int, default=config.SEED)
        p.add_argument("--project-name", default="distributed")
        p.add_argument("--overwrite", action="store_true", help="start a fresh search")

    def data_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data", default=None, help="catalog folder (default: DATA_DIR or Fashion-MNIST)")
        p.add_argument("--target", default=config.DEFAULT_TARGET)
        p.add_argument("--synthetic", action="store_true", help="search on synthetic features")

    dist = sub.add_parser("distributed", help="chief + N workers on this machine")
    dist.add_argument("--workers", type=int, default=2)
    dist.add_argument("--directory", default=None,
                      help="the search's folder (default: <models>/tuning_distributed)")
    dist.add_argument("--data-file", default=None, help="an .npz from export-data")
    dist.add_argument("--port", type=int, default=None)
    dist.add_argument("--timeout", type=float, default=None)
    dist.add_argument("--threads-per-worker", type=int, default=None,
                      help="TensorFlow threads per worker (default: CPU cores / workers)")
    search_options(dist)
    data_options(dist)

    export = sub.add_parser("export-data", help="write the search arrays to an .npz")
    export.add_argument("--out", required=True)
    export.add_argument("--seed", type=int, default=config.SEED)
    data_options(export)

    for role in ("chief", "worker"):
        p = sub.add_parser(role, help=f"run this machine's {role} (env KERASTUNER_*)")
        p.add_argument("--data-file", required=True)
        p.add_argument("--directory", required=True)
        if role == "chief":
            p.add_argument("--workers", type=int, default=None,
                           help="wait until this many workers have been told to stop")
        search_options(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``distributed``, ``export-data``, ``chief``, ``worker``."""
    args = _parser().parse_args(argv)
    if args.command in ("chief", "worker"):
        return _run_role(args.command, args)
    if args.command == "export-data":
        data = synthetic_search_data(seed=args.seed) if args.synthetic else \
            load_search_data(args.data, target=args.target)
        print(f"wrote {save_search_data(data, args.out)} ({data['source']})")
        return 0
    directory = (Path(args.directory) if args.directory
                 else config.get_paths(args.data).models / "tuning_distributed")
    if args.overwrite and directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    data_file = _distributed_data(args, directory)
    search = launch_distributed(workers=args.workers, data_file=data_file, directory=directory,
                                project_name=args.project_name, kind=args.tuner,
                                max_trials=args.max_trials, max_epochs=args.max_epochs,
                                epochs=args.epochs, patience=args.patience, seed=args.seed,
                                port=args.port,
                                threads_per_worker=(args.threads_per_worker
                                                    or max(1, (os.cpu_count() or 1) // args.workers)))
    print(f"chief + {args.workers} worker(s) on 127.0.0.1:{search.port}; logs in {directory / 'logs'}",
          flush=True)
    with search:
        summary = search.wait(timeout=args.timeout)
    _print_summary(summary)
    return 0 if all(code == 0 for code in summary["exit_codes"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
