"""How the whole study (``make``) spends its time budget: which notebooks run, for which
targets, and how big the heavy steps of notebook 04 are.

The study runs 01-04 for the default target, 02-04 again for :data:`config.SECOND_TARGET`
(whose fine-tuned model notebook 05 may embed with), then 05 and 06. Only notebook 04's heavy
steps scale with the budget: its search subsample, epochs per trial and the fine-tune's
epochs, image size and wall-clock cap. Everything else (feature extraction, 03's original
recipe, 05, 06) costs what the catalog costs. The scratch CNN's time goes mostly to the second,
finest target. At the default 60 minutes the whole study on
Fashion-MNIST fits a quiet 2-core machine; a user with more time or a GPU raises the budget::

    make BUDGET_MINUTES=240
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from fashion_utils import config
from fashion_utils.checks import positive_float
from fashion_utils.tools.markdown import markdown_table

__all__ = ["Step", "study_plan", "timing_table", "tuning_parameters"]

#: Notebook 04's heavy steps at the default budget (60 minutes); with them, 04 took 11-12
#: minutes a target on Fashion-MNIST on 2 cores (reports/fashion-mnist/metrics/study.json).
BASE_SEARCH_ROWS = 3000
BASE_FINE_TUNE_SECONDS = 600.0
#: The scratch CNN's training time at the default budget: the finest target (the second one,
#: whose model notebook 05 embeds with) gets 720 s; the first, coarse target (3 master
#: categories on Fashion-MNIST) trains it only from twice the default budget on, with 320 s per
#: hour (an epoch of 54,000 images at 28 px takes 1-2 minutes on 2 cores). In the reference run
#: of d06fd50 the first target's two scratch epochs lost to Lite0 on validation (0.9937 against
#: 0.9967) and their 4.5 minutes put ``make`` at 62.6 minutes.
BASE_SCRATCH_SECONDS = 320.0
BASE_SCRATCH_SECONDS_FINEST = 720.0
#: From this scale on (budget / 60 minutes) the first target trains the scratch CNN too.
SCRATCH_FIRST_TARGET_FROM_SCALE = 2.0


@dataclass(frozen=True)
class Step:
    """One notebook of the study with the parameters this step passes to it."""

    notebook: str
    parameters: Mapping[str, Any] = field(default_factory=dict)

    @property
    def target(self) -> str:
        return self.parameters.get("TARGET") or config.DEFAULT_TARGET


def tuning_parameters(minutes: float = config.STUDY_BUDGET_MINUTES, *,
                      finest: bool = False) -> dict[str, Any]:
    """Notebook 04's heavy-step parameters for a study budget of ``minutes``.

    The scale is ``minutes / 60``: the search subsample grows with it (at least 500 rows of
    train and of validation), trials get 10 epochs from twice the default budget on, the
    fine-tune gets one planned epoch per hour, 96 px from three hours on, and a wall-clock cap
    of 600 s per hour (its first epoch always runs); the scratch CNN's schedule is fitted to
    720 s per hour for the ``finest`` target; the other target trains it (320 s per hour) only
    from twice the default budget on (``SCRATCH``).

    >>> tuning_parameters(60)["SEARCH_ROWS"], tuning_parameters(240)["FINE_TUNE_EPOCHS"]
    (3000, 4)
    >>> tuning_parameters(120, finest=True)["SCRATCH_MAX_SECONDS"]
    1440
    >>> tuning_parameters(60)["SCRATCH"], tuning_parameters(120)["SCRATCH"]
    (False, True)
    """
    scale = positive_float("minutes", minutes) / config.STUDY_BUDGET_MINUTES
    scratch = BASE_SCRATCH_SECONDS_FINEST if finest else BASE_SCRATCH_SECONDS
    return {"SEARCH_ROWS": max(500, round(BASE_SEARCH_ROWS * scale)),
            "EPOCHS": 6 if scale < 2 else 10,
            "FINE_TUNE_IMAGE_SIZE": 64 if scale < 3 else 96,
            "FINE_TUNE_EPOCHS": max(1, int(scale)),
            "FINE_TUNE_MAX_SECONDS": round(BASE_FINE_TUNE_SECONDS * scale),
            "SCRATCH": finest or scale >= SCRATCH_FIRST_TARGET_FROM_SCALE,
            "SCRATCH_MAX_SECONDS": round(scratch * scale)}


def study_plan(minutes: float = config.STUDY_BUDGET_MINUTES, *, quick: bool = False,
               second_target: str | None = config.SECOND_TARGET) -> list[Step]:
    """The whole study's steps, in order.

    Args:
        minutes: the time budget; ignored in quick mode (the notebooks' quick defaults apply).
        quick: the quick study (smoke tests, ``make QUICK=1``).
        second_target: the target 02-04 run again for; ``None`` or the default target: one pass.

    Returns:
        01-04 for the default target, 02-04 for the second one, then 05 and 06.
    """
    tuning = {} if quick else tuning_parameters(minutes)
    steps = [Step("01"), Step("02"), Step("03"), Step("04", tuning)]
    if second_target and second_target != config.DEFAULT_TARGET:
        again = {"TARGET": second_target}
        # the fine-tuning probes measure the backbone's speed: once per study is enough
        steps += [Step("02", again), Step("03", again),
                  Step("04", {**({} if quick else tuning_parameters(minutes, finest=True)),
                              **again, "PROBE_IMAGES": 0})]
    return steps + [Step("05"), Step("06")]


def timing_table(record: Mapping[str, Any]) -> str:
    """The study's per-notebook timing table (Markdown), from a ``study.json`` record."""
    rows = [[s["notebook"], s["target"], s["seconds"], s["seconds"] / 60] for s in record["steps"]]
    rows.append(["**all notebooks**", "", record["notebook_seconds"],
                 record["notebook_seconds"] / 60])
    load = record["load_average"]["start"]
    mode = ("quick mode" if record.get("quick")
            else f"budget {record['budget_minutes']:g} minutes")
    machine = record.get("provenance", {}).get("machine", {})
    cpu = machine.get("cpu") or {}
    where = (f" Machine: {machine.get('cpu_count')} × {cpu.get('model') or 'unknown CPU'}, "
             f"widest vector instructions {cpu.get('vector_isa') or 'unknown'}."
             if cpu else "")
    return (markdown_table(["notebook", "target", "seconds", "minutes"], rows, digits=1)
            + f"\n{mode.capitalize()}; wall {record['wall_seconds'] / 60:.1f} minutes; load "
            f"average before the run {load[0]:.2f} (1 min) / {load[1]:.2f} (5 min).{where}\n")
