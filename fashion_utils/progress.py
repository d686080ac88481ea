"""Progress of long steps, for the terminal that runs the study, never for a notebook's outputs.

The runner (``make``, ``make notebooks``) names a file in env :data:`PROGRESS_ENV` before it
starts each notebook's kernel; a long step (feature extraction, hashing, a search, training)
reports into it with :class:`Progress` or :func:`track`, and the runner shows the newest report
on its status line. Without that variable (JupyterLab, a plain script) the same calls show a
tqdm bar where the user is looking, as any notebook would.

A report is one JSON line: ``{"desc": ..., "n": ..., "total": ..., "unit": ...}``; lines are
appended at most every :data:`MIN_INTERVAL` seconds per step, plus the last one.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

PROGRESS_ENV = "FASHION_PROGRESS_FILE"
MIN_INTERVAL = 0.5

T = TypeVar("T")


def progress_file() -> Path | None:
    """The file named by env :data:`PROGRESS_ENV`, or ``None`` when no runner listens."""
    value = os.environ.get(PROGRESS_ENV)
    return Path(value) if value else None


def report(desc: str, n: int | float, *, total: int | float | None = None,
           unit: str = "") -> None:
    """Append one report line for the runner (nothing when no runner listens)."""
    path = progress_file()
    if path is None:
        return
    line = json.dumps({"desc": str(desc), "n": n, "total": total, "unit": str(unit)})
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
    except OSError:  # a runner that went away must not stop the study
        pass


class Progress:
    """A counter for one long step: ``update(k)`` after each ``k`` items; ``close()`` at the end.

    Under the runner it reports to :func:`progress_file`; otherwise, when ``bar`` is true, it
    shows a tqdm bar (in JupyterLab, the notebook's own widget). Use it as a context manager.
    """

    def __init__(self, *, total: int | None, desc: str, unit: str = "it", bar: bool = True):
        if total is not None and total < 0:
            raise ValueError(f"total must be >= 0 or None. Received: total={total!r}")
        self.total, self.desc, self.unit, self.n = total, desc, unit, 0
        self._listening = progress_file() is not None
        self._last = 0.0
        self._bar = None
        if not self._listening and bar:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=unit)
        self._report(force=True)

    def _report(self, *, force: bool = False) -> None:
        if not self._listening:
            return
        now = time.monotonic()
        if force or now - self._last >= MIN_INTERVAL:
            self._last = now
            report(self.desc, self.n, total=self.total, unit=self.unit)

    def update(self, k: int = 1) -> None:
        """Count ``k`` more items done."""
        self.n += k
        if self._bar is not None:
            self._bar.update(k)
        self._report()

    def close(self) -> None:
        """Report the final count (and close the bar)."""
        self._report(force=True)
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def track(items: Iterable[T], *, desc: str, total: int | None = None, unit: str = "it",
          bar: bool = True) -> Iterator[T]:
    """Iterate ``items`` while reporting how many were done (``total`` defaults to ``len``)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(total=total, desc=desc, unit=unit, bar=bar) as counter:
        for item in items:
            yield item
            counter.update(1)


#: Trials started per search (:func:`keras_callback` with ``count_trials``), shared by the
#: copies KerasTuner makes of a callback for each trial.
_TRIALS: dict[str, int] = {}


def keras_callback(desc: str, *, count_trials: bool = False, trials: int | None = None):
    """A Keras callback that reports ``desc, epoch e/E`` for the runner's status line (batches
    within a long epoch too); it reports nothing when no runner listens.

    Args:
        desc: what is being trained.
        count_trials: the callback goes to a KerasTuner search, which copies it for every
            trial: each ``fit`` counts as the next trial (``desc, trial k/trials``).
        trials: the search's most trials, when known.
    """
    import keras

    key = f"{desc}|{time.monotonic_ns()}"
    if count_trials:
        _TRIALS[key] = 0

    class _EpochProgress(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self._epochs = self.params.get("epochs")
            self._steps = self.params.get("steps")
            self._epoch = 0
            self._last = time.monotonic()
            self._desc = desc
            if count_trials:
                _TRIALS[key] = _TRIALS.get(key, 0) + 1
                of = f"/{trials}" if trials else ""
                self._desc = f"{desc}, trial {_TRIALS[key]}{of}"

        def on_epoch_begin(self, epoch, logs=None):
            self._epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            now = time.monotonic()
            if self._steps and now - self._last >= 2 * MIN_INTERVAL:
                self._last = now
                report(f"{self._desc}, epoch {self._epoch + 1}/{self._epochs}", batch + 1,
                       total=self._steps, unit="batches")

        def on_epoch_end(self, epoch, logs=None):
            accuracy = (logs or {}).get("val_accuracy")
            tail = f" (val_accuracy {accuracy:.3f})" if accuracy is not None else ""
            report(f"{self._desc}{tail}", epoch + 1, total=self._epochs, unit="epochs")

    return _EpochProgress()
