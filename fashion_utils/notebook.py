"""The notebooks' common opening, one :func:`setup` call, and the few helpers only notebooks use.

Every notebook's ``parameters`` cell (papermill) lists its parameters. A parameter whose default
depends on the mode (``QUICK``) or comes from :mod:`fashion_utils.config` is ``None`` there, with a
comment that names its default::

    IMAGE_SIZE = None  # px; None: notebook 01's choice, 96-224 (quick: config.QUICK_IMAGE_SIZE)

The setup cell then calls :func:`setup`, which replaces each ``None`` with the notebook's full or
quick default from :data:`NOTEBOOKS`. In full mode ``IMAGE_SIZE`` is the catalog's: the side
notebook 01 chose from its images (:func:`profiled_image_size`). A value the user passed (``papermill -p``,
``make notebooks PARAMS="EPOCHS=5"``) is not ``None``, so it is never touched, in either mode::

    from fashion_utils import evaluation, notebook
    from fashion_utils.views import plots

    run = notebook.setup("04_tuning", globals())
    paths = run.paths
    print(run)
    ...
    evaluation.write_metrics(run.name, {..., "seconds": run.elapsed()}, paths=paths)

``setup`` also seeds everything (:func:`config.set_seed`), sets the plot style
(:func:`plots.set_style`), finds the run's :class:`config.Paths` and starts the run's timer.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping, MutableMapping, Sequence

import pandas as pd

from fashion_utils import checks, config, evaluation, provenance
from fashion_utils.catalog import eda
from fashion_utils.views import plots

#: The product hierarchy, finest level first (the Kaggle catalog and the prepared Fashion-MNIST).
HIERARCHY: tuple[str, ...] = ("articleType", "subCategory", "masterCategory")
#: The class column of a catalog without the hierarchy (``data.load_folder_catalog``'s default).
PLAIN_LABEL = "label"

_SAME = object()


@dataclass(frozen=True)
class Default:
    """A parameter's default in full mode and in quick mode (``quick`` omitted: the same).

    ``None`` is a valid default: it means what the notebook's code reads ``None`` as
    (``CAP_PER_CLASS=None`` keeps every item).
    """

    full: Any
    quick: Any = _SAME

    def __post_init__(self) -> None:
        if self.quick is _SAME:
            object.__setattr__(self, "quick", self.full)

    def value(self, *, quick: bool) -> Any:
        """The default of the given mode."""
        return self.quick if quick else self.full

    def __repr__(self) -> str:
        if self.quick == self.full:
            return f"Default({self.full!r})"
        return f"Default({self.full!r}, quick={self.quick!r})"


@dataclass(frozen=True)
class NotebookDefaults:
    """What :func:`setup` knows about one notebook.

    Attributes:
        defaults: parameter name -> its :class:`Default`; ``setup`` fills the ``None`` ones.
        choices: parameter name -> the values it may take; ``setup`` checks them.
        target_in_name: the run name ends in ``-<TARGET>`` when ``TARGET`` is not
            :data:`config.DEFAULT_TARGET` (its metrics and figures then do not overwrite the
            default target's).
    """

    defaults: Mapping[str, Default]
    choices: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    target_in_name: bool = False


#: Defaults every notebook that has the parameter shares, from :mod:`fashion_utils.config`.
SHARED_DEFAULTS: Mapping[str, Default] = MappingProxyType({
    "SEED": Default(config.SEED),
    "TARGET": Default(config.DEFAULT_TARGET),
    "BACKBONE": Default(config.DEFAULT_BACKBONE),
    "IMAGE_SIZE": Default(config.DEFAULT_IMAGE_SIZE, quick=config.QUICK_IMAGE_SIZE),
})


def _notebook(shared: Sequence[str], *, target_in_name: bool = False,
              choices: Mapping[str, tuple[Any, ...]] | None = None,
              **own: Default) -> NotebookDefaults:
    defaults = {name: SHARED_DEFAULTS[name] for name in shared}
    defaults.update(own)
    return NotebookDefaults(defaults=MappingProxyType(defaults),
                            choices=MappingProxyType(dict(choices or {})),
                            target_in_name=target_in_name)


#: Every notebook's defaults. A parameter listed here is ``None`` in the notebook's parameters
#: cell (``tests/test_notebook.py`` checks that the two agree).
NOTEBOOKS: Mapping[str, NotebookDefaults] = MappingProxyType({
    "01_eda": _notebook(
        ["TARGET", "SEED"],
        SAMPLE_IMAGES=Default(5000, quick=300)),
    "02_sampling_augmentation": _notebook(
        ["TARGET", "BACKBONE", "IMAGE_SIZE", "SEED"], target_in_name=True,
        CAP_PER_CLASS=Default(None, quick=config.QUICK_PER_CLASS),
        AUGMENT_TO=Default(None, quick=config.QUICK_PER_CLASS),
        MAX_COPIES=Default(config.MAX_AUGMENTED_COPIES)),
    "03_baseline_cnn": _notebook(
        ["TARGET", "BACKBONE", "IMAGE_SIZE", "SEED"], target_in_name=True,
        UNITS=Default(config.ORIGINAL_UNITS),
        LEARNING_RATE=Default(config.ORIGINAL_LEARNING_RATE),
        EPOCHS=Default(config.ORIGINAL_EPOCHS, quick=3),
        BATCH_SIZE=Default(config.ORIGINAL_BATCH_SIZE)),
    "04_tuning": _notebook(
        ["TARGET", "BACKBONE", "IMAGE_SIZE", "SEED"], target_in_name=True,
        EPOCHS=Default(10, quick=2),
        MAX_TRIALS=Default(None, quick=2),
        # every recipe with its own defaults (training.recipes); quick: tiny ones, 60 s each
        RECIPES=Default({"fine-tune": {}, "scratch CNN": {}}, quick={
            "fine-tune": {"image_size": config.QUICK_IMAGE_SIZE, "epochs": 1, "rows": 300,
                          "max_seconds": 60},
            "scratch CNN": {"epochs": 2, "rows": 300, "max_seconds": 60}})),
    "05_recommendation": _notebook(
        ["TARGET", "SEED", "BACKBONE", "IMAGE_SIZE"],
        choices={"EMBEDDING_SOURCE": ("auto", "pretrained", "kept model", "colour histogram")}),
    "06_multi_output": _notebook(
        ["TARGET", "SEED", "BACKBONE", "IMAGE_SIZE"],
        EPOCHS=Default(40, quick=5),
        BATCH_SIZE=Default(256, quick=32),
        MIN_COUNT=Default(10, quick=2)),
})


#: The name of a run's metrics file and figures (``04_tuning-articleType``): one rule for the
#: notebooks, the runner's executed copies and the report, :func:`config.named_for_target`.


def check_quick(quick: Any) -> bool:
    """``QUICK`` as a bool: ``True``/``False`` (or ``1``/``0``, as ``-p QUICK=1`` gives)."""
    if isinstance(quick, bool):
        return quick
    if isinstance(quick, int) and quick in (0, 1):
        return bool(quick)
    raise ValueError(f"QUICK must be True or False. Received: QUICK={quick!r}")


@dataclass(frozen=True)
class Run:
    """One run of a notebook, as :func:`setup` made it.

    Attributes:
        notebook: the notebook's name (``"04_tuning"``).
        name: the run's name for metrics and figures (``"04_tuning-articleType"``).
        paths: where the run reads and writes.
        quick: quick mode.
        seed: the seed everything was seeded with.
        parameters: the values of the parameters that have defaults, after filling.
        filled: the names :func:`setup` filled from the defaults (the others were passed).
        target: the target in the run's figure names (:meth:`figure_name`): ``TARGET`` for a
            notebook run per target (02-04), else ``None``.
    """

    notebook: str
    name: str
    paths: config.Paths
    quick: bool
    seed: int
    parameters: Mapping[str, Any]
    filled: tuple[str, ...]
    started: float
    clock: Callable[[], float] = field(default=time.perf_counter, repr=False, compare=False)
    target: str | None = None

    def elapsed(self) -> float:
        """Seconds since :func:`setup`, rounded to 0.1 s (what the metrics files record)."""
        return round(self.clock() - self.started, 1)

    def write_metrics(self, metrics: Mapping[str, Any]) -> Path:
        """Write the run's metrics file (``evaluation.write_metrics``) with its provenance: the
        commit, every parameter, the wall time, the machine and the library versions."""
        record = provenance.collect(parameters={"QUICK": self.quick, "SEED": self.seed,
                                                "DATA_DIR": str(self.paths.data_dir),
                                                **self.parameters}, seconds=self.elapsed())
        return evaluation.write_metrics(self.name, {**metrics, "provenance": record},
                                        paths=self.paths)

    def figure_name(self, what: str, *, target: str | None = None) -> str:
        """A figure's file stem, the one rule: ``<notebook>-<target>_<what>`` for every target,
        the default one included (``03_baseline_cnn-masterCategory_confusion_matrix``);
        ``target`` defaults to the run's (05 passes its label level); a run without a target
        (06: every attribute at once) has ``<notebook>_<what>`` (``06_multi_output_predictions``).
        """
        if not isinstance(what, str) or not what:
            raise ValueError(f"what must be a non-empty string. Received: what={what!r}")
        target = target if target is not None else self.target
        return f"{self.notebook}-{target}_{what}" if target else f"{self.notebook}_{what}"

    def save_fig(self, fig: Any, what: str, *, target: str | None = None) -> Path:
        """Save ``fig`` as the run's figure ``what`` (:meth:`figure_name`, ``plots.save_fig``)."""
        return plots.save_fig(fig, self.figure_name(what, target=target), paths=self.paths)

    def __str__(self) -> str:
        mode = "quick mode" if self.quick else "full mode"
        shown = [_shown(k, v, passed=k not in self.filled) for k, v in self.parameters.items()]
        lines = [f"{self.name}: {mode}, seed {self.seed}",
                 f"catalog: {config.display_path(self.paths.data_dir)}",
                 f"reports: {config.display_path(self.paths.reports)} (figures, metrics)",
                 f"models:  {config.display_path(self.paths.models)}"]
        rows: list[list[str]] = [[]]
        for item in shown:  # wrapped at 100 characters, never inside one parameter
            if rows[-1] and ("\n" in item or "\n" in rows[-1][-1] or len(
                    "parameters: " + ", ".join([*rows[-1], item]) + ",") > 100):
                rows.append([])
            rows[-1].append(item)
        if shown:
            lines.append("parameters: " + ",\n    ".join(", ".join(row) for row in rows))
        return "\n".join(lines)


def _shown(key: str, value: Any, *, passed: bool) -> str:
    """``KEY=value`` for :class:`Run`'s summary; a mapping too long for one line gets a line
    per entry."""
    mark = " (passed)" if passed else ""
    text = f"{key}={value!r}{mark}"
    if len(text) <= 90 or not isinstance(value, Mapping) or not value:
        return text
    pad = "\n" + " " * (len(key) + 6)
    return f"{key}={{" + ("," + pad).join(f"{k!r}: {v!r}" for k, v in value.items()) + f"}}{mark}"


def setup(notebook: str, namespace: MutableMapping[str, Any], *,
          clock: Callable[[], float] = time.perf_counter) -> Run:
    """Open a notebook: fill its unset parameters, seed, set the plot style, find its paths.

    Reads ``DATA_DIR``, ``QUICK`` and ``SEED`` from ``namespace`` (the notebook's ``globals()``).
    Each parameter of the notebook's table (:data:`NOTEBOOKS`) that is ``None`` or missing in
    ``namespace`` is set there to its default for the mode (``IMAGE_SIZE`` in full mode: the
    catalog's, :func:`profiled_image_size`); every other value, passed or written in the
    parameters cell, is left as it is.

    Args:
        notebook: the notebook's name, a key of :data:`NOTEBOOKS` (``"04_tuning"``).
        namespace: the notebook's globals; unset parameters are written into it.
        clock: the timer's clock (tests pass a fake one).

    Returns:
        The :class:`Run`: ``run.paths``, ``run.name``, ``run.elapsed()``, ...

    Raises:
        ValueError: an unknown notebook, a ``QUICK`` that is not a bool, a parameter outside its
            choices, or an invalid seed; each message echoes the value received.
    """
    started = clock()
    spec = NOTEBOOKS[checks.one_of("notebook", notebook, sorted(NOTEBOOKS))]
    quick = check_quick(namespace.get("QUICK", False))
    filled = []
    for key, default in spec.defaults.items():
        if namespace.get(key) is None:
            namespace[key] = default.value(quick=quick)
            filled.append(key)
    for key, allowed in spec.choices.items():
        checks.one_of(key, namespace.get(key), allowed)
    seed = config.set_seed(namespace.get("SEED", config.SEED))
    paths = config.get_paths(namespace.get("DATA_DIR"), quick=quick)
    if "IMAGE_SIZE" in filled and not quick:
        namespace["IMAGE_SIZE"] = profiled_image_size(paths)
    plots.set_style()
    target = namespace.get("TARGET") if spec.target_in_name else None
    return Run(notebook=notebook, name=config.named_for_target(notebook, target=target), paths=paths,
               quick=quick, seed=seed, parameters={k: namespace[k] for k in spec.defaults},
               filled=tuple(filled), started=started, clock=clock, target=target)


def profiled_image_size(paths: config.Paths) -> int:
    """``IMAGE_SIZE``'s full-mode default for a catalog: the side notebook 01 chose from its
    images (its catalog profile, :func:`eda.read_catalog_profile`), or
    :data:`config.DEFAULT_IMAGE_SIZE` where 01 has not run."""
    try:
        return int(eda.read_catalog_profile(paths)["image_size"])
    except FileNotFoundError:
        return config.DEFAULT_IMAGE_SIZE


# ------------------------------------------------------------------ helpers the notebooks share


def label_columns(catalog: pd.DataFrame, *, target: str | None = None,
                  attributes: Sequence[str] = HIERARCHY) -> list[str]:
    """The label columns a catalog has: what the notebooks count, stratify on and predict.

    A fashion catalog (one with a column of ``attributes``; by default the product hierarchy,
    finest level first) has those of ``attributes`` it has, in that order, then ``target``
    when it is not one of them. Any other catalog (folder per class, a CSV of other labels)
    has ``[target]``; with ``target=None`` its :data:`PLAIN_LABEL` column.

    >>> folder = pd.DataFrame({"id": ["label/eight/482"], "label": ["eight"]})
    >>> label_columns(folder, target="label")
    ['label']
    >>> kaggle = pd.DataFrame(columns=["id", "gender", "masterCategory", "articleType"])
    >>> label_columns(kaggle, target="gender")
    ['articleType', 'masterCategory', 'gender']

    Raises:
        ValueError: ``target`` is not a column of the catalog, or (``target=None``) the catalog
            has none of ``attributes`` and no :data:`PLAIN_LABEL` column.
    """
    if target is not None and target not in catalog.columns:
        raise ValueError(f"The target is not a column of the catalog (its columns: "
                         f"{list(catalog.columns)}; pass TARGET=<one of them>). "
                         f"Received: target={target!r}")
    found = [c for c in dict.fromkeys(attributes) if c in catalog.columns]
    if found:
        return found + ([target] if target is not None and target not in found else [])
    if target is not None:
        return [target]
    if PLAIN_LABEL in catalog.columns:
        return [PLAIN_LABEL]
    raise ValueError(f"The catalog has none of the label columns "
                     f"{[*attributes, PLAIN_LABEL]}. Received: columns={list(catalog.columns)}")


def quick_subset(catalog: pd.DataFrame, *, seed: int = config.SEED,
                 per_class: int = config.QUICK_PER_CLASS) -> pd.DataFrame:
    """The small, balanced catalog of quick runs: ``per_class`` random products of each class of
    the finest label (the first of :func:`label_columns`), in catalog order.

    Notebooks 05 and 06 both call it, so their quick runs embed the same products and share
    their feature caches (keyed by the exact id list).
    """
    if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
        raise ValueError(f"per_class must be an integer >= 1. Received: per_class={per_class!r}")
    column = label_columns(catalog)[0]
    shuffled = catalog.sample(frac=1, random_state=seed)
    return shuffled.groupby(column).head(per_class).sort_index()


def in_voila() -> bool:
    """True when the kernel runs under Voilà (``make explore``), where widgets are always live."""
    return os.environ.get("SERVER_SOFTWARE", "").startswith("voila")


def show_table(frame: pd.DataFrame, *, empty: str = "none") -> pd.DataFrame | None:
    """A table as a notebook shows it: its path columns (``image_path``, ``*_path``, ``path``) as
    :func:`config.display_path` writes them, or, when it has no row, the sentence ``empty``
    printed instead of pandas' "Empty DataFrame". End a cell with it::

        notebook.show_table(report.excluded.head(20), empty="No row was excluded.")

    Returns:
        The table to display, or ``None`` (nothing more to display) when it is empty.

    Raises:
        ValueError: ``frame`` is not a DataFrame, or ``empty`` is not a non-empty string.
    """
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"frame must be a pandas DataFrame. Received: frame={type(frame)!r}")
    if not isinstance(empty, str) or not empty.strip():
        raise ValueError(f"empty must be a non-empty sentence. Received: empty={empty!r}")
    if frame.empty:
        print(empty)
        return None
    paths = [c for c in frame.columns
             if isinstance(c, str) and (c == "path" or c.endswith("_path"))]
    shown = frame.copy() if paths else frame
    for column in paths:
        shown[column] = [config.display_path(v) if isinstance(v, (str, os.PathLike)) and str(v)
                         else v for v in shown[column]]
    return shown
