"""The training-budget benchmark (section ``training``): what the scratch CNN reaches in N minutes.

``make`` gives notebook 04's scratch CNN about 12 minutes; this section gives the same recipe
longer budgets (default 30 and 60 minutes) on the same data — notebook 02's study split of
one target, every original training image, validation on the validation side — and reads
the test side once per budget, each budget's model being a final model:

- the test accuracy with its 95% Wilson interval (``evaluation.headline_metrics``), the
  model in memory predicting the test files at its own size, as in notebook 04;
- the independent count: the saved ``.keras`` file read back by ``models.predict_images``,
  the way a user predicts, must get the same number right;
- the coarser attribute the classes imply, where each class belongs to exactly one coarser
  class in the catalog (Fashion-MNIST's articleType → masterCategory): its accuracy from the
  same predictions;
- notebook 05's retrieval evaluation with this model's embeddings (:func:`retrieval_scores`):
  precision@5 at the target and the other metrics, test-side queries against the whole
  catalog and against the held-out test side;
- the accuracy-vs-minutes curve of every budget (one figure).

Each budget's result is written as soon as it is measured, so a long run that is stopped
keeps what it finished. Nothing else should run on the machine meanwhile: the schedule plans
its epochs from the measured pace, so a busy machine buys fewer epochs.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from fashion_utils import checks, config, evaluation
from fashion_utils.catalog import data, sampling, splits
from fashion_utils.vision import features, models
from fashion_utils.training import scratch
from fashion_utils.recommend import embeddings, retrieval
from fashion_utils.views import plots
from fashion_utils.tools.markdown import markdown_lines
from fashion_utils.tools.bench.measure import (benchmarks_path, load_averages,
                                               write_results)
from fashion_utils.notebook import HIERARCHY

__all__ = ["DEFAULT_MINUTES", "add_retrieval", "bench_training", "coarser_classes",
           "measure_budget", "retrieval_scores", "training_markdown"]

#: The budgets measured by default (issue 14's targets: 0.94 within 30, 0.95 within 60).
DEFAULT_MINUTES: tuple[float, ...] = (30.0, 60.0)
#: The figure's name under the catalog's ``figures/``.
FIGURE_NAME = "bench_training_minutes"


def coarser_classes(sample: pd.DataFrame, *, target: str,
                    candidates: Sequence[str] | None = None) -> dict[str, dict[str, str]]:
    """The catalog's columns that ``target`` determines: ``{column: {target class: its class}}``.

    A column qualifies when every ``target`` class has exactly one value in it and the column
    has fewer classes than ``target``, at least two (Fashion-MNIST: articleType → masterCategory). Missing
    values disqualify a column. ``candidates`` default to the product hierarchy
    (``notebook.HIERARCHY``).
    """
    checks.columns_present(sample, [target], "sample")
    candidates = HIERARCHY if candidates is None else candidates
    out: dict[str, dict[str, str]] = {}
    for column in candidates:
        if column == target or column not in sample.columns or sample[column].isna().any():
            continue
        values = sample.groupby(target)[column].nunique()
        if (values == 1).all() and 2 <= sample[column].nunique() < sample[target].nunique():
            firsts = sample.groupby(target)[column].first()
            out[column] = {str(k): str(v) for k, v in firsts.items()}
    return out


def measure_budget(sample: pd.DataFrame, *, target: str, minutes: float, model_dir: Path,
                   seed: int = config.SEED, verbose: int | str = 2,
                   **recipe: Any) -> dict[str, Any]:
    """Train the scratch CNN for ``minutes`` on a study sample, then read its test side once.

    Args:
        sample: notebook 02's study sample (``split``, ``augmented``, ``image_path``, target).
        target: the label column.
        minutes: the training budget (``scratch.train_scratch_cnn``'s ``max_seconds``).
        model_dir: where the model is saved (``scratch_<target>_<minutes>min.keras``).
        seed: training's seed (and the bootstrap's).
        verbose: Keras verbosity (2: a line per epoch).
        recipe: other ``train_scratch_cnn`` options (default: the notebook's recipe).

    Returns:
        ``{"minutes", "load_before", "load_after", "settings", "curve", "val_accuracy",
        "test", "user_check", "coarser"}``.
    """
    minutes = checks.positive_float("minutes", minutes)
    checks.columns_present(sample, ["split", "augmented", "image_path", target], "sample")
    class_names = sorted(sample[target].astype(str).unique())
    train = sample[(sample["split"] == "train") & ~sample["augmented"]]
    val, test = sample[sample["split"] == "val"], sample[sample["split"] == "test"]
    for name, part in (("train", train), ("val", val), ("test", test)):
        if part.empty:
            raise ValueError(f"The sample has no {name} rows (split column: "
                             f"{sorted(sample['split'].unique())!r}).")

    def labels(part: pd.DataFrame) -> np.ndarray:
        return models.encode_labels(part[target].astype(str), class_names=class_names)

    image_size = recipe.pop("image_size", None) or scratch.native_image_size(
        train["image_path"].iloc[0])
    recipe.setdefault("epochs", 200)  # the budget, not the epoch count, ends training
    load_before = load_averages()
    result = scratch.train_scratch_cnn(
        train_paths=train["image_path"].tolist(), train_labels=labels(train),
        val_paths=val["image_path"].tolist(), val_labels=labels(val), class_names=class_names,
        image_size=image_size, model_path=Path(model_dir) / f"scratch_{target}_{minutes:g}min.keras",
        max_seconds=60 * minutes, seed=seed, verbose=verbose, **recipe)
    load_after = load_averages()

    y_test, test_paths = labels(test), test["image_path"].tolist()
    y_pred = features.predict_image_files(result.model, test_paths,
                                          image_size=image_size).argmax(1)
    scores = evaluation.headline_metrics(y_test, y_pred)
    as_user = models.predict_images(result.model_path, test_paths)
    user_check = {"images": len(as_user),
                  "correct_from_file": int((as_user["label"].to_numpy()
                                            == test[target].astype(str).to_numpy()).sum()),
                  "correct_in_memory": int((y_pred == y_test).sum())}
    coarser = {}
    for column, mapping in coarser_classes(sample, target=target).items():
        true = test[column].astype(str).to_numpy()
        implied = np.array([mapping[class_names[i]] for i in y_pred])
        coarser[column] = evaluation.headline_metrics(true, implied)
    return {"minutes": minutes, "target": target, "load_before": load_before,
            "load_after": load_after, "settings": result.row(), "curve": result.curve(),
            "val_accuracy": result.best_val_accuracy, "test": scores, "user_check": user_check,
            "coarser": coarser}


def retrieval_scores(model_path: str | os.PathLike, *, paths: config.Paths, target: str,
                     k: int = 5, seed: int = config.SEED) -> dict[str, Any]:
    """Notebook 05's evaluation of a saved model's embeddings: the test side's queries against
    the whole catalog and against the held-out test side, at ``target`` and the coarser
    hierarchy levels the catalog has (``{"whole_catalog": ..., "held_out": ...}``, each
    ``{level: {metric: value}}`` as in 05's metrics file)."""
    catalog, _ = data.load_catalog(paths.data_dir, cache_dir=paths.interim)
    query_ids, _ = retrieval.query_ids_for_evaluation(
        catalog, splits_path=splits.splits_path(paths), seed=seed)
    ids, vectors = embeddings.model_embeddings(catalog, model_path, cache_dir=paths.features,
                                                   progress=False)
    levels = {c: [c] for c in [target, *HIERARCHY] if c in catalog.columns}
    metrics = retrieval.metric_names(k=k)
    common = dict(ids=ids, metadata=catalog, query_ids=query_ids, levels=levels, k=k, seed=seed,
                  random_name=None)
    out = {}
    for name, gallery in (("whole_catalog", None), ("held_out", query_ids)):
        table = retrieval.evaluate_sources({"model": vectors}, gallery_ids=gallery, **common)
        out[name] = retrieval.scores_by_source(table, metrics=metrics)["model"]
    return out


def add_retrieval(result: dict[str, Any], *, data_dir: str | os.PathLike | None = None,
                  out: str | os.PathLike | None = None) -> dict[str, Any]:
    """Fill in :func:`retrieval_scores` for each budget of a :func:`bench_training` result
    whose saved model has none yet (results measured before the retrieval step existed);
    writes the result after each."""
    paths = config.get_paths(data_dir)
    for b in result["budgets"]:
        if "retrieval" not in b:
            b["retrieval"] = retrieval_scores(b["settings"]["model_path"], paths=paths,
                                              target=result["target"])
            write_results("training", result, path=out)
    return result


def bench_training(*, minutes: Sequence[float] = DEFAULT_MINUTES, target: str = "articleType",
                   data_dir: str | os.PathLike | None = None, seed: int = config.SEED,
                   out: str | os.PathLike | None = None, figure: bool = True,
                   retrieval_only: bool = False, **recipe: Any) -> dict[str, Any]:
    """Measure each budget in ``minutes`` in turn (see the module docstring).

    Args:
        minutes: the training budgets, in minutes.
        target: the label column; notebook 02 must have run for it on ``data_dir``.
        data_dir: the catalog (default: the prepared Fashion-MNIST).
        seed: training's seed.
        out: the results file the partial results are merged into after each budget
            (``measure.write_results``'s ``path``).
        figure: draw the accuracy-vs-minutes figure into the catalog's ``figures/``.
        retrieval_only: train nothing: :func:`add_retrieval` on the training section already
            in the results file ``out``.
        recipe: ``train_scratch_cnn`` options for every budget.

    Returns:
        ``{"catalog", "target", "budgets": [measure_budget(...), ...], "figure"}``.
    """
    if retrieval_only:
        path = Path(out) if out is not None else benchmarks_path()
        existing = json.loads(path.read_text()).get("training") if path.is_file() else None
        if not existing:
            raise ValueError(f"No training section in {path}: measure the budgets first. "
                             f"Received: out={out!r}")
        return add_retrieval(existing, data_dir=data_dir, out=out)
    budgets = [checks.positive_float("minutes", m) for m in minutes]
    if not budgets:
        raise ValueError(f"minutes needs at least one budget. Received: minutes={minutes!r}")
    paths = config.get_paths(data_dir).ensure()
    sample = sampling.load_study_sample(paths, target=target)
    result: dict[str, Any] = {"catalog": paths.catalog, "target": target, "budgets": [],
                              "started": time.strftime("%Y-%m-%d %H:%M")}
    for m in budgets:
        print(f"  {m:g} minutes of training ({target}, {paths.catalog})", flush=True)
        row = measure_budget(sample, target=target, minutes=m, seed=seed,
                             model_dir=paths.models / "bench", **dict(recipe))
        row["retrieval"] = retrieval_scores(row["settings"]["model_path"], paths=paths,
                                            target=target, seed=seed)
        result["budgets"].append(row)
        print(f"    test {row['test']['accuracy']:.4f} ({row['test']['ci_low']:.4f}–"
              f"{row['test']['ci_high']:.4f}) after {row['settings']['seconds'] / 60:.1f} "
              f"training minutes; {row['user_check']}", flush=True)
        if figure:
            result["figure"] = str(_draw(result, paths=paths))
        write_results("training", result, path=out)
    return result


def _draw(result: Mapping[str, Any], *, paths: config.Paths) -> Path:
    curves = {f"{b['minutes']:g}-minute budget": b["curve"] for b in result["budgets"]}
    finals = {f"{b['minutes']:g}-minute budget": b["val_accuracy"] for b in result["budgets"]}
    fig = plots.accuracy_vs_minutes(curves, finals=finals, title=(
        f"Scratch CNN: what each training budget buys ({result['target']}, {result['catalog']})"))
    return plots.save_fig(fig, FIGURE_NAME, paths=paths)


def training_markdown(result: Mapping[str, Any]) -> str:
    """The table of :func:`bench_training`'s result (on its page, ``measure.BENCH_PAGES``): one
    row per budget."""
    coarse = sorted({c for b in result["budgets"] for c in b["coarser"]})
    target = result["target"]
    header = ["budget (min)", "training min", "epochs", "validation acc (flip TTA)",
              f"test acc {target} (95% CI)", "correct: in memory / saved file",
              *[f"{c} implied (95% CI)" for c in coarse],
              f"precision@5 ({target}): whole catalog / held out", "load avg before / after"]

    def p5(b: Mapping[str, Any]) -> str:
        r = b.get("retrieval")
        if not r:
            return "–"
        return " / ".join(f"{r[side][target]['precision@5']:.3f}"
                          for side in ("whole_catalog", "held_out"))

    def ci(m: Mapping[str, Any]) -> str:
        return f"{m['accuracy']:.4f} ({m['ci_low']:.4f}–{m['ci_high']:.4f})"

    def load(values: Sequence[float] | None) -> str:
        return "–" if not values else f"{values[0]:.2f}"

    rows = []
    for b in result["budgets"]:
        s, u = b["settings"], b["user_check"]
        rows.append([f"{b['minutes']:g}", f"{s['seconds'] / 60:.1f}",
                     f"{s['epochs_run']} of {s['planned_epochs']} planned",
                     f"{b['val_accuracy']:.4f}", ci(b["test"]),
                     f"{u['correct_in_memory']:,} / {u['correct_from_file']:,} of {u['images']:,}",
                     *[ci(b["coarser"][c]) if c in b["coarser"] else "–" for c in coarse],
                     p5(b), f"{load(b['load_before'])} / {load(b['load_after'])}"])
    lines = markdown_lines(header, rows)
    lines.append("")
    lines.append(f"_{result['catalog']}, notebook 02's split, started {result['started']}; "
                 f"each budget's model read the test side once. Figure: "
                 f"`{Path(result['figure']).name if result.get('figure') else '(none)'}`._")
    return "\n".join(lines)
