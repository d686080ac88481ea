"""The whole study (``make``) planned once, from this machine's speed, to fit its time budget.

The runner executes notebook 01, reads the catalog profile it wrote (products, image side),
measures this machine once (:func:`probe_machine`: the backbone's forward pass and training
step at :data:`PROBE_SIDE` px on random images, in a fresh process, cached per machine), and
plans every heavy step with :func:`plan_study`: the side the features are extracted at, notebook
04's search rows, epochs and trials, and its recipes' sides, epochs and time caps. The plan goes
to the notebooks as papermill parameters (they plan nothing themselves), and the timing table
sets each step's planned seconds beside the seconds it took.

The cost model (:func:`extraction_estimate`, :func:`fine_tune_epoch_seconds`,
:func:`search_seconds`) scales the probe's speeds by pixels and images; what the probe cannot
see (a notebook's start, decoding, Keras' per-step overhead) is in the constants below,
multiplied by how much slower this machine's Keras steps are than :data:`REFERENCE_HEAD_S`'s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from fashion_utils import config, provenance
from fashion_utils.atomic import write_json_atomic
from fashion_utils.checks import positive_float, positive_int
from fashion_utils.tools.markdown import markdown_table
from fashion_utils.vision.backbones import load_backbone

__all__ = ["MachineSpeed", "Step", "extraction_estimate", "fine_tune_epoch_seconds",
           "measure_backbone", "plan_fine_tune", "plan_study", "probe_machine", "quick_steps",
           "search_models", "search_seconds", "timing_table"]

#: The side the probe runs the backbone at.
PROBE_SIDE = 64
#: Images the probe runs forward, and trains on, after a warm-up batch.
PROBE_IMAGES = 256
#: The probe's seconds per row and epoch of the original head (Dense 50-20, batch 10) on the
#: machine the constants below were measured on (2-core AMD EPYC with AVX-512): a machine
#: whose Keras steps are twice as slow doubles every constant.
REFERENCE_HEAD_S = 1.5e-4
#: The streamed extractor's seconds per image against the probe's forward pass at the same
#: side (larger batches and a compiled function outweigh reading and decoding the files).
EXTRACT_OVERHEAD = 0.75
#: Seconds a notebook costs beyond its heavy steps (kernel start, imports, plots, tables).
#: (06 trains its small heads on stored features: all of it is here.)
NOTEBOOK_SECONDS = {"01": 15.0, "02": 20.0, "03": 20.0, "04": 90.0, "05": 150.0, "06": 100.0}
#: A searched head's cost beyond the original head's per row and epoch (larger and deeper
#: heads, Hyperband's rounds), and its cost per model built.
SEARCH_FACTOR = 2.0
HEAD_S_PER_MODEL = 2.0
#: The share of the training side and of the validation side in a study sample (notebook 02).
TRAIN_SHARE, VAL_SHARE = 0.78, 0.085
#: Epochs of 03's head (its notebook's default), for the plan's estimate.
BASELINE_EPOCHS = config.ORIGINAL_EPOCHS
#: Image sides the fine-tune plan chooses from, smallest first (Lite0's own side is 224).
PLAN_SIZES = (64, 96, 128, 160, 192)
#: The most epochs the plan gives a fine-tune (more rarely pays on a pretrained backbone).
PLAN_MAX_EPOCHS = 10
#: The sides the features may be extracted at when the catalog's own does not fit the budget.
EXTRACTION_SIDES = (224, 192, 160, 128, 96, 64)
#: The scratch CNN's least training time worth planning, and the recipes' time a coarse
#: target (not the finest) must have before it trains one too (its classes are few: the
#: backbone's features already separate them).
SCRATCH_MIN_SECONDS, SCRATCH_COARSE_MIN_SECONDS = 60.0, 600.0
#: The part of the budget kept free for what no model foresees.
MARGIN = 0.1
#: How 04's share of a target splits between the head searches and the recipes.
SEARCH_SHARE = 0.3


@dataclass(frozen=True)
class MachineSpeed:
    """What :func:`probe_machine` measured: seconds per image at :data:`PROBE_SIDE` px."""

    infer_s_per_image: float
    train_s_per_image: float
    head_s_per_row_epoch: float
    probe_side: int = PROBE_SIDE
    machine: Mapping[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def slowdown(self) -> float:
        """How many times slower Keras' steps are than on the machine the constants were
        measured on."""
        return self.head_s_per_row_epoch / REFERENCE_HEAD_S


@dataclass(frozen=True)
class Step:
    """One notebook of the study, the parameters the plan passes it, its planned seconds."""

    notebook: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    planned_seconds: float | None = None

    @property
    def target(self) -> str:
        return self.parameters.get("TARGET") or config.DEFAULT_TARGET


# ---------------------------------------------------------------------------------- the probe


def _fingerprint(backbone: str) -> dict[str, Any]:
    import importlib.metadata as md

    try:
        tf = md.version("tensorflow-cpu")
    except md.PackageNotFoundError:
        try:
            tf = md.version("tensorflow")
        except md.PackageNotFoundError:
            tf = None
    return {"cpu": provenance.cpu(), "cores": os.cpu_count(), "tensorflow": tf,
            "backbone": backbone, "probe_side": PROBE_SIDE, "probe_images": PROBE_IMAGES}


def measure_backbone(backbone: str = config.DEFAULT_BACKBONE) -> dict[str, float]:
    """Seconds per image of the backbone's forward pass and training step at
    :data:`PROBE_SIDE` px on random images (random weights: the speed is the same), and per
    row and epoch of the original head (Dense 50-20, batch 10) on random features."""
    import numpy as np
    import keras

    start = time.perf_counter()
    net = load_backbone(backbone, image_size=PROBE_SIDE, weights=None)
    x = np.random.default_rng(0).uniform(0, 255, (PROBE_IMAGES, PROBE_SIDE, PROBE_SIDE, 3))
    x = x.astype("float32")
    net.predict(x[:64], batch_size=64, verbose=0)
    t = time.perf_counter()
    net.predict(x, batch_size=64, verbose=0)
    infer = (time.perf_counter() - t) / len(x)
    model = keras.Sequential([net, keras.layers.Dense(10)])
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    y = np.zeros(len(x), dtype="int64")
    model.train_on_batch(x[:64], y[:64])
    t = time.perf_counter()
    for lo in range(0, len(x), 64):
        model.train_on_batch(x[lo:lo + 64], y[lo:lo + 64])
    train = (time.perf_counter() - t) / len(x)
    head = keras.Sequential([keras.Input((1280,)), keras.layers.Dense(50, activation="relu"),
                             keras.layers.Dense(20, activation="relu"), keras.layers.Dense(10)])
    head.compile(optimizer="adam",
                 loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    f = np.random.default_rng(1).standard_normal((2000, 1280)).astype("float32")
    yf = np.zeros(len(f), dtype="int64")
    head.fit(f[:100], yf[:100], batch_size=10, epochs=1, verbose=0)
    t = time.perf_counter()
    head.fit(f, yf, batch_size=10, epochs=1, verbose=0)
    return {"infer_s_per_image": infer, "train_s_per_image": train,
            "head_s_per_row_epoch": (time.perf_counter() - t) / len(f),
            "seconds": time.perf_counter() - start}


def probe_machine(cache_file: str | os.PathLike, *, backbone: str = config.DEFAULT_BACKBONE,
                  measure: Callable[[str], Mapping[str, float]] | None = None) -> MachineSpeed:
    """This machine's speed, measured once and cached in ``cache_file`` (remeasured when the
    CPU, the number of cores, TensorFlow or the backbone differ from the cached record).

    Args:
        measure: measures ``backbone`` (default: :func:`measure_backbone` in a fresh process,
            so that the caller never holds TensorFlow).
    """
    cache_file = Path(cache_file)
    fingerprint = _fingerprint(backbone)
    if cache_file.is_file():
        try:
            cached = json.loads(cache_file.read_text())
        except ValueError:
            cached = {}
        if cached.get("machine") == fingerprint:
            return MachineSpeed(**{**cached, "machine": fingerprint})
    measured = dict((measure or _measure_in_a_fresh_process)(backbone))
    speed = MachineSpeed(infer_s_per_image=float(measured["infer_s_per_image"]),
                         train_s_per_image=float(measured["train_s_per_image"]),
                         head_s_per_row_epoch=float(measured["head_s_per_row_epoch"]),
                         machine=fingerprint, seconds=round(float(measured.get("seconds", 0)), 1))
    write_json_atomic(cache_file, asdict(speed), indent=1)
    return speed


def _measure_in_a_fresh_process(backbone: str) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-m", "fashion_utils.tools.budget", "probe",
                           "--backbone", backbone], capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"The machine probe failed (exit {done.returncode}): "
                           f"{done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------- the cost model


def extraction_estimate(n_images: int, side: int, speed: MachineSpeed) -> float:
    """Seconds to run ``n_images`` image files through the backbone at ``side`` px."""
    return n_images * speed.infer_s_per_image * (side / speed.probe_side) ** 2 * EXTRACT_OVERHEAD


def fine_tune_epoch_seconds(n_train: int, n_val: int, side: int, speed: MachineSpeed) -> float:
    """One fine-tuning epoch: training ``n_train`` images, predicting ``n_val``."""
    scale = (side / speed.probe_side) ** 2
    return (n_train * speed.train_s_per_image
            + n_val * speed.infer_s_per_image * EXTRACT_OVERHEAD) * scale


def search_seconds(*, rows: int, epochs: int, trials: int, speed: MachineSpeed,
                   factor: float = SEARCH_FACTOR) -> float:
    """A head search (or retraining) of ``trials`` models on ``rows`` rows for ``epochs``
    (``factor``: their cost per row and epoch against the original head's)."""
    return trials * (speed.slowdown * HEAD_S_PER_MODEL
                     + rows * epochs * speed.head_s_per_row_epoch * factor)


def plan_fine_tune(*, n_train: int, n_val: int, speed: MachineSpeed, max_seconds: float,
                   sizes: Sequence[int] = PLAN_SIZES,
                   max_epochs: int = PLAN_MAX_EPOCHS) -> tuple[int, int]:
    """The image side and epochs that fill a fine-tune's time cap: the largest side whose
    ``max_epochs`` epochs fit ``max_seconds``; when none does, the smallest side with the
    epochs that fit (at least one)."""
    n_train, n_val = positive_int("n_train", n_train), positive_int("n_val", n_val, minimum=0)
    cap, max_epochs = positive_float("max_seconds", max_seconds), \
        positive_int("max_epochs", max_epochs)
    sizes = sorted(positive_int("size", v) for v in sizes)
    if not sizes:
        raise ValueError(f"sizes must hold at least one side. Received: sizes={sizes!r}")
    per_epoch = {side: fine_tune_epoch_seconds(n_train, n_val, side, speed) for side in sizes}
    fitting = [side for side in sizes if cap / per_epoch[side] >= max_epochs]
    if fitting:
        return fitting[-1], max_epochs
    return sizes[0], max(1, min(max_epochs, int(cap / per_epoch[sizes[0]])))


# ---------------------------------------------------------------------------------- the plan


def _search_plan(seconds: float, *, n_train: int, speed: MachineSpeed) -> dict[str, Any]:
    """04's search rows, epochs a trial and trials that fit ``seconds`` (the original search,
    three tuners, the seed study's 15 fits and the final retraining): the most rows first,
    then the most epochs and trials."""
    for rows in (n_train, 20_000, 10_000, 6_000, 3_000, 1_500, 500):
        rows = min(rows, n_train)
        for epochs, trials in ((10, 8), (6, 6), (6, 4), (4, 3), (3, 2)):
            if search_seconds(rows=rows, epochs=epochs, trials=search_models(trials),
                              speed=speed) <= seconds:
                return {"SEARCH_ROWS": None if rows >= n_train else rows, "EPOCHS": epochs,
                        "MAX_TRIALS": trials}
    return {"SEARCH_ROWS": min(n_train, 500), "EPOCHS": 2, "MAX_TRIALS": 2}


def search_models(trials: int) -> int:
    """The head models 04 trains with ``MAX_TRIALS = trials``: the original search (6), three
    tuners (Hyperband about as many as the others), the seed study (3 seeds × 5
    configurations) and the final retraining (5)."""
    return 6 + 3 * trials + 15 + 5


def _recipes_plan(seconds: float, *, n_train: int, n_val: int, side: int, native_side: int,
                  speed: MachineSpeed, finest: bool) -> tuple[dict[str, dict], float, list[str]]:
    """04's recipes with their sides, epochs and caps within ``seconds``, the seconds planned,
    and why a recipe was left out."""
    recipes: dict[str, dict] = {}
    notes: list[str] = []
    # the rules of recipes.FineTune.skip_reason and recipes.ScratchCNN.skip_reason
    scratch_ok = native_side <= config.RECIPE_SIDE_RATIO * config.SCRATCH_MAX_SIDE
    fine_share = seconds * (0.5 if scratch_ok else 1.0)
    ft_side, ft_epochs = plan_fine_tune(n_train=n_train, n_val=n_val, speed=speed,
                                        max_seconds=max(fine_share, 1.0))
    ft_seconds = ft_epochs * fine_tune_epoch_seconds(n_train, n_val, ft_side, speed)
    if ft_side * config.RECIPE_SIDE_RATIO <= side:
        notes.append(f"fine-tune: the budget affords {ft_side} px, half the {side}-px features "
                     f"or less")
    elif ft_seconds > fine_share * 1.5:
        notes.append(f"fine-tune: one epoch at {ft_side} px takes {ft_seconds:.0f} s, more than "
                     f"its {fine_share:.0f} s")
    else:
        recipes["fine-tune"] = {"image_size": ft_side, "epochs": ft_epochs,
                                "max_seconds": round(fine_share)}
    scratch_seconds = seconds - (ft_seconds if "fine-tune" in recipes else 0.0)
    if not scratch_ok:
        notes.append(f"scratch CNN: the images are {native_side}-px photos")
    elif (scratch_seconds < SCRATCH_MIN_SECONDS * speed.slowdown
          or not finest and seconds < SCRATCH_COARSE_MIN_SECONDS):
        notes.append(f"scratch CNN: {scratch_seconds:.0f} s left is too little to train it")
    else:
        recipes["scratch CNN"] = {"max_seconds": round(scratch_seconds)}
    planned = sum(r.get("max_seconds", 0) for r in recipes.values())
    return recipes, planned, notes


def plan_study(minutes: float = config.STUDY_BUDGET_MINUTES, *, profile: Mapping[str, Any],
               speed: MachineSpeed, first_seconds: float = 0.0,
               second_target: str | None = config.SECOND_TARGET) -> tuple[list[Step], list[str]]:
    """Every step after notebook 01, with its parameters and planned seconds, to fit
    ``minutes`` on a machine of ``speed``.

    Args:
        profile: notebook 01's catalog profile (``n_products``, ``image_size``, and
            ``native_side``: the images' longer side, when 01 recorded it).
        first_seconds: what notebook 01 took (already spent).
        second_target: the target 02-04 run again for (``None``: one pass).

    Returns:
        ``(steps, notes)``: 02-04 (and again for the second target), 05, 06; and what the plan
        chose and why (printed by the runner).
    """
    budget = positive_float("minutes", minutes) * 60 * (1 - MARGIN) - first_seconds
    n = int(profile["n_products"])
    native = int(profile.get("native_side") or profile["image_size"])
    targets = [None] + ([second_target] if second_target
                        and second_target != config.DEFAULT_TARGET else [])
    slow = speed.slowdown
    fixed = lambda nb: NOTEBOOK_SECONDS[nb] * slow  # noqa: E731
    notes = [f"machine: {speed.machine.get('cpu', {}).get('model', 'unknown CPU')}: "
             f"{1 / speed.infer_s_per_image:,.0f} images/s forward and "
             f"{1 / speed.train_s_per_image:,.0f} training at {speed.probe_side} px, Keras steps "
             f"{speed.slowdown:.1f}x the reference's time"]
    side = int(profile["image_size"])
    for side in [s for s in EXTRACTION_SIDES if s <= int(profile["image_size"])] or [side]:
        extract = extraction_estimate(n, side, speed)
        heads = len(targets) * search_seconds(rows=int(n * TRAIN_SHARE), epochs=BASELINE_EPOCHS,
                                              trials=1, speed=speed, factor=1.3)
        base = (len(targets) * (fixed("02") + fixed("03") + fixed("04")) + fixed("05")
                + fixed("06") + extract + heads + extraction_estimate(n, 64, speed))
        if base <= budget * 0.75:
            break
    if side != int(profile["image_size"]):
        notes.append(f"features at {side} px: the catalog's {profile['image_size']} px does not "
                     f"fit the budget")
    left = max(budget - base, 0.0)
    n_train, n_val = max(1, int(n * TRAIN_SHARE)), max(1, int(n * VAL_SHARE))
    steps: list[Step] = []
    for k, target in enumerate(targets):
        named = {"TARGET": target} if target else {}
        finest = target is not None or len(targets) == 1
        share = left * (0.35 if not finest else 0.65 if len(targets) > 1 else 1.0)
        search = _search_plan(share * SEARCH_SHARE, n_train=n_train, speed=speed)
        recipes, recipe_s, why = _recipes_plan(share * (1 - SEARCH_SHARE), n_train=n_train,
                                               n_val=n_val, side=side, native_side=native,
                                               speed=speed, finest=finest)
        notes += [f"04 ({target or config.DEFAULT_TARGET}): {w}" for w in why]
        search_s = search_seconds(rows=search["SEARCH_ROWS"] or n_train, epochs=search["EPOCHS"],
                                  trials=search_models(search["MAX_TRIALS"]), speed=speed)
        sized = {"IMAGE_SIZE": side} if side != int(profile["image_size"]) else {}
        steps += [Step("02", {**named, **sized}, round(fixed("02"))),
                  Step("03", {**named, **sized},
                       round(fixed("03") + (extract if k == 0 else 0.0) + heads / len(targets))),
                  Step("04", {**named, **sized, **search, "RECIPES": recipes},
                       round(fixed("04") + search_s + recipe_s))]
    steps += [Step("05", {"IMAGE_SIZE": side} if side != int(profile["image_size"]) else {},
                   round(fixed("05") + extraction_estimate(n, 64, speed))),
              Step("06", {"IMAGE_SIZE": side} if side != int(profile["image_size"]) else {},
                   round(fixed("06")))]
    return steps, notes


def quick_steps(second_target: str | None = config.SECOND_TARGET) -> list[Step]:
    """The quick study after notebook 01 (smoke tests, ``make QUICK=1``): the notebooks' quick
    defaults, no plan."""
    again = [Step(nb, {"TARGET": second_target}) for nb in ("02", "03", "04")
             if second_target and second_target != config.DEFAULT_TARGET]
    return [Step("02"), Step("03"), Step("04"), *again, Step("05"), Step("06")]


def timing_table(record: Mapping[str, Any]) -> str:
    """The study's per-notebook timing table (Markdown), planned beside actual seconds, from a
    ``study.json`` record."""
    rows = [[s["notebook"], s["target"], s.get("planned_seconds"), s["seconds"],
             s["seconds"] / 60] for s in record["steps"]]
    planned = [s["planned_seconds"] for s in record["steps"] if s.get("planned_seconds")]
    rows.append(["**all notebooks**", "", sum(planned) if planned else None,
                 record["notebook_seconds"], record["notebook_seconds"] / 60])
    load = record["load_average"]["start"]
    mode = ("quick mode" if record.get("quick")
            else f"budget {record['budget_minutes']:g} minutes")
    machine = record.get("provenance", {}).get("machine", {})
    cpu = machine.get("cpu") or {}
    where = (f" Machine: {machine.get('cpu_count')} × {cpu.get('model') or 'unknown CPU'}, "
             f"widest vector instructions {cpu.get('vector_isa') or 'unknown'}."
             if cpu else "")
    return (markdown_table(["notebook", "target", "planned seconds", "seconds", "minutes"],
                           rows, digits=1)
            + f"\n{mode.capitalize()}; wall {record['wall_seconds'] / 60:.1f} minutes; load "
            f"average before the run {load[0]:.2f} (1 min) / {load[1]:.2f} (5 min).{where}\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Measure this machine for the study's plan.")
    parser.add_argument("command", choices=["probe"])
    parser.add_argument("--backbone", default=config.DEFAULT_BACKBONE)
    args = parser.parse_args(argv)
    print(json.dumps(measure_backbone(args.backbone)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
