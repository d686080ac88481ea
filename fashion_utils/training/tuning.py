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
- Distributed search across processes or machines: :mod:`fashion_utils.tools.distributed`.
"""

from __future__ import annotations
import contextlib
import io
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence
import numpy as np
import pandas as pd
import keras
import keras_tuner as kt
from fashion_utils.vision import models
from fashion_utils.atomic import write_json_atomic
from fashion_utils import config, evaluation
from fashion_utils.checks import one_of, positive_int
from fashion_utils.progress import keras_callback

UNITS_CHOICES: tuple[int, ...] = (16, 20, 32, 40, 50, 64, 128, 256, 512)
LEARNING_RATES: tuple[float, ...] = (1e-2, 3e-3, 1e-3, 3e-4, 1e-4)
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
    "dense_layers": len(config.ORIGINAL_UNITS),
    **{f"units_{i}": u for i, u in enumerate(config.ORIGINAL_UNITS)},
    "dropout": 0.0, "l2": 0.0, "optimizer": "adam",
    "learning_rate": config.ORIGINAL_LEARNING_RATE, "batch_size": config.ORIGINAL_BATCH_SIZE,
}


#: Epochs without a better ``val_accuracy`` before a trial stops (restoring its best weights).
PATIENCE = 3


def original_search_space() -> dict[str, Any]:
    """The original study's search (a copy of :data:`ORIGINAL_SEARCH`).

    Returns:
        ``{"kind": "random", "max_trials": 6, "epochs": 5, "space": {name: values}}``.
    """
    return {**ORIGINAL_SEARCH, "space": dict(ORIGINAL_SEARCH["space"])}


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
        self.input_dim = positive_int("input_dim", input_dim)
        self.num_classes = positive_int("num_classes", num_classes, minimum=2)
        one_of("space", space, SPACES)
        self.space = space
        self.seed = positive_int("seed", seed, minimum=0)
        self.epochs_trained = 0

    def __call__(self, hp: kt.HyperParameters) -> keras.Model:
        return self.build(hp)

    def build(self, hp: kt.HyperParameters, *, seed: int | None = None) -> keras.Model:
        """Clear the Keras session, seed, and build + compile the head for ``hp``."""
        keras.backend.clear_session()
        keras.utils.set_random_seed(self.seed if seed is None else seed)
        model = self._build_original(hp) if self.space == "original" else self._build_wide(hp)
        # built now: Hyperband's reload of a trial's checkpoint then restores it (no warning)
        model.optimizer.build(model.trainable_variables)
        return model

    def _build_original(self, hp: kt.HyperParameters) -> keras.Model:
        units = hp.Choice("units_0", list(ORIGINAL_SEARCH["space"]["units_0"]))
        learning_rate = hp.Choice("learning_rate", list(ORIGINAL_SEARCH["space"]["learning_rate"]))
        hp.Fixed("batch_size", config.ORIGINAL_BATCH_SIZE)
        head = models.build_classifier_head(self.input_dim, self.num_classes,
                                            units=(units, *config.ORIGINAL_UNITS[1:]),
                                            name="original_tuned_head")
        return models.compile_classifier(head, learning_rate=learning_rate)

    def _build_wide(self, hp: kt.HyperParameters) -> keras.Model:
        n_layers = hp.Int("dense_layers", 1, MAX_DENSE_LAYERS)
        dropout = round(hp.Float("dropout", 0.0, MAX_DROPOUT, step=0.1), 4)
        l2 = hp.Choice("l2", list(L2_CHOICES))
        units = tuple(hp.Choice(f"units_{i}", list(UNITS_CHOICES)) for i in range(n_layers))
        optimizer = hp.Choice("optimizer", list(models.OPTIMIZERS))
        learning_rate = hp.Choice("learning_rate", list(LEARNING_RATES))
        hp.Choice("batch_size", list(BATCH_SIZES))
        head = models.build_classifier_head(self.input_dim, self.num_classes, units=units,
                                            dropout=dropout, l2=l2, name="tuned_head")
        return models.compile_classifier(head, learning_rate=learning_rate, optimizer=optimizer)

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
        return hyperparameters_from_values(hypermodel, {
            "units_0": config.ORIGINAL_UNITS[0], "learning_rate": config.ORIGINAL_LEARNING_RATE})
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
    one_of("kind", kind, TUNER_KINDS)
    if not project_name or "/" in str(project_name):
        raise ValueError(f"project_name must be a plain folder name. Received: "
                         f"project_name={project_name!r}")
    seed = positive_int("seed", seed, minimum=0)
    common = dict(objective=kt.Objective(OBJECTIVE, direction="max"), seed=seed,
                  directory=os.fspath(directory), project_name=project_name,
                  overwrite=bool(overwrite),
                  executions_per_trial=positive_int("executions_per_trial",
                                                           executions_per_trial))
    Path(directory).mkdir(parents=True, exist_ok=True)
    with contextlib.redirect_stdout(io.StringIO()):  # "Reloading Tuner from <machine path>"
        return _new_tuner(kind, hypermodel, common, max_trials=max_trials,
                          max_epochs=max_epochs, factor=factor,
                          num_initial_points=num_initial_points)


def _new_tuner(kind: str, hypermodel: kt.HyperModel, common: dict[str, Any], *,
               max_trials: int | None, max_epochs: int | None, factor: int,
               num_initial_points: int | None) -> kt.Tuner:
    if kind == "hyperband":
        if max_epochs is None:
            raise ValueError("A Hyperband search needs max_epochs. Received: max_epochs=None")
        return kt.Hyperband(hypermodel, max_epochs=positive_int("max_epochs", max_epochs, minimum=2),
                            factor=positive_int("factor", factor, minimum=2),
                            hyperband_iterations=1, **common)
    if max_trials is None:
        raise ValueError(f"A {kind} search needs max_trials. Received: max_trials=None")
    max_trials = positive_int("max_trials", max_trials)
    if kind == "random":
        return kt.RandomSearch(hypermodel, max_trials=max_trials, **common)
    if num_initial_points is None:
        num_initial_points = max(2, max_trials // 3)
    num_initial_points = positive_int("num_initial_points", num_initial_points)
    return kt.BayesianOptimization(hypermodel, max_trials=max_trials,
                                   num_initial_points=num_initial_points, **common)


def hyperband_budget(max_epochs: int, *, factor: int = 3) -> dict[str, int]:
    """Trials and epochs one Hyperband iteration runs at most (before early stopping).

    Use it to give RandomSearch and BayesianOptimization the same budget: e.g.
    ``max_trials = budget["epochs"] // epochs_per_trial``.

    Returns:
        ``{"trials": ..., "epochs": ...}`` as KerasTuner's Hyperband schedules them.
    """
    max_epochs = positive_int("max_epochs", max_epochs, minimum=2)
    factor = positive_int("factor", factor, minimum=2)
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


def trial_table(trials: Iterable[Any], order: Sequence[str] = ()) -> pd.DataFrame:
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


def update_search_log(project_dir: Path, entry: dict[str, Any]) -> list[dict[str, Any]]:
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


def summarise_search(kind: str, trials: pd.DataFrame, *, wall_time_s: float, new_trials: int,
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
               y_val: np.ndarray, *, epochs: int, patience: int = PATIENCE,
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
    epochs = positive_int("epochs", epochs)
    patience = positive_int("patience", patience)
    for name, x, y in (("train", x_train, y_train), ("val", x_val, y_val)):
        if len(x) != len(y) or len(x) == 0:
            raise ValueError(f"x_{name} and y_{name} must be non-empty and of equal length. "
                             f"Received: {len(x)} and {len(y)}")
    before = len(tuner.oracle.trials)
    ended_before = len(tuner.oracle.end_order)
    stop = keras.callbacks.EarlyStopping(monitor=OBJECTIVE, mode="max", patience=patience,
                                         restore_best_weights=True)
    shown = keras_callback(f"{_tuner_kind(tuner)} search", count_trials=True,
                           trials=getattr(tuner.oracle, "max_trials", None))
    start = time.perf_counter()
    finished = False
    try:
        tuner.search(x_train, y_train, validation_data=(x_val, y_val), epochs=epochs,
                     callbacks=[stop, shown, *callbacks], verbose=verbose)
        finished = True
    finally:  # an interrupted run's time counts too
        new_trials = len(tuner.oracle.end_order) - ended_before
        runs = update_search_log(Path(tuner.project_dir), {
            "seconds": round(time.perf_counter() - start, 3), "new_trials": int(new_trials),
            "trials_before": int(before), "interrupted": not finished,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")})
    trials = trial_table(tuner.oracle.trials.values(), tuner.oracle.start_order)
    completed = trials["status"].eq("COMPLETED").any()
    best_hp = tuner.get_best_hyperparameters(1)[0] if completed else None
    summary = summarise_search(_tuner_kind(tuner), trials, wall_time_s=sum(r["seconds"] for r in runs),
                         new_trials=new_trials, best_hps=best_hp.values if best_hp else None,
                         runs=len(runs))
    return SearchResult(summary=summary, trials=trials, best_hyperparameters=best_hp, tuner=tuner)


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
    epochs = positive_int("epochs", epochs)
    x = np.concatenate([np.asarray(x_train), np.asarray(x_val)])
    y = np.concatenate([np.asarray(y_train), np.asarray(y_val)])
    model = hypermodel.build(hp, seed=positive_int("seed", seed, minimum=0))
    hypermodel.fit(hp, model, x, y, epochs=epochs, shuffle=True, verbose=verbose,
                   callbacks=[keras_callback("retraining on train + validation")])
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

    seeds = [positive_int("seed", s, minimum=0) for s in seeds]
    if len(seeds) < 3 or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must hold at least 3 distinct seeds. Received: seeds={seeds!r}")
    _check_xy("fit", x_fit, y_fit)
    _check_xy("eval", x_eval, y_eval)
    epochs = positive_int("epochs", epochs)
    accuracy, macro_f1, epochs_run = [], [], []
    for seed in seeds:
        model = hypermodel.build(hp, seed=seed)
        callbacks = [keras_callback(f"seed {seed}")]
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


def compare_to_baseline(seed_study: Mapping[str, Mapping[str, Any]], *, baseline: str,
                        candidate: str) -> dict:
    """Does ``candidate`` (chosen beforehand, on validation) beat the baseline beyond seed noise?

    Welch's t-test over seeds (``evaluation.welch_test``), judged by ``evaluation.verdict``.

    Args:
        seed_study: ``{name: multi_seed(...) result}``, the baseline and the candidate among them.
        baseline: the baseline's name.
        candidate: the configuration to compare, chosen without looking at ``seed_study`` (the
            study only measures the noise; it must not pick the winner).

    Returns:
        ``{"best": candidate, "baseline": baseline, "difference": its mean accuracy - the
        baseline's, "test": "Welch's t-test", "t", "p_value" (None when no seed varied),
        "n_seeds", "outcome": "helped" | "hurt" | evaluation.NO_DIFFERENCE}``.
    """
    missing = [name for name in (baseline, candidate) if name not in seed_study]
    if missing or baseline == candidate:
        raise ValueError(f"seed_study needs the baseline and another candidate. Received: "
                         f"{sorted(seed_study)}, baseline={baseline!r}, candidate={candidate!r}")
    test = evaluation.welch_test(seed_study[baseline]["accuracy"],
                                 seed_study[candidate]["accuracy"])
    return {"best": candidate, "baseline": baseline, "difference": test["difference"],
            "test": "Welch's t-test", "t": test["t"], "p_value": test["p_value"],
            "n_seeds": test["n_b"],
            "outcome": evaluation.verdict(test["difference"], test["p_value"])}


def coinciding_searches(best_values: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
    """For each search, the other searches that found the same best hyperparameters (compared
    on the values that are active, :func:`active_values`): rows a table must not present as
    independent results.
    """
    active = {name: active_values(values) for name, values in best_values.items()}
    return {name: [other for other, v in active.items()
                   if other != name and v.keys() == mine.keys()
                   and all(_same(v[k], mine[k]) for k in mine)]
            for name, mine in active.items()}
