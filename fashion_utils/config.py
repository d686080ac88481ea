"""Every path, seed and default of the study, in one place.

Notebooks and library code never hard-code a path: they ask this module.

Environment variables (all optional):
    DATA_DIR             the catalog to study (Kaggle layout: ``styles.csv`` + ``images/``).
                         Default: the prepared Fashion-MNIST under ``data/raw/fashion-mnist``
                         (raw data is immutable and always lives in the project).
    FASHION_OUTPUT_ROOT  where derived data, models and reports go (default: the project root).
                         Tests point it at a temporary folder.
    FASHION_MNIST_DIR    where to read the Fashion-MNIST idx files from (see ``data.py``).
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import logging
import numbers
import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

# Quiet TensorFlow's start-up log lines in notebooks and tests (set before TF is imported).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@contextlib.contextmanager
def _stderr_file_silenced() -> Iterator[None]:
    """Send file descriptor 2 (what C++ code writes to) to the null device for a while."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all: nothing to silence
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Imports TensorFlow with its C++ start-up lines silenced, wherever it is first imported.

    TensorFlow 2.21 logs through abseil before abseil's log is set up, so
    ``TF_CPP_MIN_LOG_LEVEL`` no longer stops "All log messages before absl::InitializeLog()"
    and the oneDNN line: a kernel would show them on stderr in the cell that first imports
    Keras. Python errors and warnings raised by the import still surface.
    """

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != "tensorflow":
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run = spec.loader.exec_module

        def exec_module(module: Any) -> None:
            with _stderr_file_silenced():
                run(module)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


class _NoRetracingNotice(logging.Filter):
    """Drops TensorFlow's "N out of the last M calls ... triggered tf.function retracing".

    A KerasTuner search, and a seed study, build a new model per trial or seed and each traces
    its own predict step once: the notice counts those first traces across models as retracing
    and asks for a fix that does not apply. Every other TensorFlow log record passes.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


if not any(isinstance(f, _NoRetracingNotice) for f in logging.getLogger("tensorflow").filters):
    logging.getLogger("tensorflow").addFilter(_NoRetracingNotice())
if "tensorflow" not in sys.modules and not any(
        isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
    sys.meta_path.insert(0, _QuietTensorFlowImport())

PROJ_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = PROJ_ROOT / "notebooks"

SEED = 42
DEFAULT_TARGET = "masterCategory"
DEFAULT_BACKBONE = "efficientnet_lite0"
#: The side the backbone sees small images at (Fashion-MNIST's 28 px are upsampled to it); a
#: catalog of larger photos gets its own side, up to MAX_IMAGE_SIZE (:func:`catalog_image_size`).
DEFAULT_IMAGE_SIZE = 96
#: Lite0's own ImageNet input side: the largest side the frozen backbone sees a catalog at.
MAX_IMAGE_SIZE = 224
QUICK_IMAGE_SIZE = 32
QUICK_PER_CLASS = 60  # items per class in quick mode (smoke tests, `make QUICK=1`)

#: The original study's recipe: a frozen backbone, Dense 50 -> 20 -> softmax, Adam at 1e-3,
#: 10 epochs in batches of 10. Notebook 03's baseline and notebook 04's "baseline" row use it.
ORIGINAL_UNITS: tuple[int, ...] = (50, 20)
ORIGINAL_LEARNING_RATE = 1e-3
ORIGINAL_EPOCHS = 10
ORIGINAL_BATCH_SIZE = 10

#: Augmentation defaults (notebook 02): small training-side classes grow towards the largest
#: training class, but never past AUGMENT_CEILING images, and each training image gives at most
#: MAX_AUGMENTED_COPIES copies (a class grows at most 3x; the original study grew its two
#: smallest classes about 2.5x, Free Items 105 -> 267).
AUGMENT_CEILING = 6000
MAX_AUGMENTED_COPIES = 2
#: The largest side the scratch CNN works at (larger images are shrunk to it).
SCRATCH_MAX_SIDE = 64
#: An end-to-end recipe that would see the images at this fraction of their side or less (a
#: fine-tune against the features' side, the scratch CNN against the images' own) cannot win:
#: notebook 04 skips it and ``make``'s plan leaves it out (``training.recipes``).
RECIPE_SIDE_RATIO = 2

DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
#: The prepared default catalog's folder name (``data/raw/fashion-mnist``). Every catalog's
#: reports go to ``reports/<catalog folder name>/``, the default's to ``reports/fashion-mnist/``.
DEFAULT_CATALOG_NAME = "fashion-mnist"

#: The whole study's time budget on 2 CPU cores (``make BUDGET_MINUTES=...``): see ``budget.py``.
STUDY_BUDGET_MINUTES = 60
#: The second target of the whole study (``make``): notebooks 02-04 run again for it, and 05
#: embeds with its fine-tuned model when that retrieves better on validation.
SECOND_TARGET = "articleType"


def output_root() -> Path:
    """The folder that holds ``data/``, ``models/`` and ``reports/`` (env ``FASHION_OUTPUT_ROOT``)."""
    return Path(os.environ.get("FASHION_OUTPUT_ROOT", PROJ_ROOT)).resolve()


def display_path(path: str | os.PathLike) -> str:
    """A path as a reader of the notebooks and reports sees it, without this machine's folders:
    relative to :data:`PROJ_ROOT` inside the project, ``~/...`` under the home folder, else
    ``…/`` and its last two parts. The one rule for every path a notebook prints.

    >>> display_path(PROJ_ROOT / "models" / "fashion-mnist" / "kept_articleType.keras")
    'models/fashion-mnist/kept_articleType.keras'
    >>> display_path("/srv/scratch/run-7/reports/01_eda.json")
    '…/reports/01_eda.json'

    Raises:
        ValueError: ``path`` is not a path (a string or a path-like object).
    """
    if not isinstance(path, (str, os.PathLike)) or isinstance(path, bytes):
        raise ValueError(f"path must be a string or a path. Received: path={path!r}")
    given = Path(path)
    if not given.is_absolute():
        return given.as_posix()
    full = Path(os.path.abspath(given))
    for base, prefix in ((PROJ_ROOT, ""), (Path.home(), "~/")):
        if base == Path(base.anchor):  # a home folder of "/" would claim every path
            continue
        try:
            inside = full.relative_to(base)
        except ValueError:
            continue
        return prefix + inside.as_posix() if inside.parts else (prefix.rstrip("/") or ".")
    return "…/" + "/".join(full.parts[-2:]) if len(full.parts) > 2 else full.name or "…"


def default_data_dir() -> Path:
    """The catalog studied when no ``DATA_DIR`` is given: the prepared Fashion-MNIST."""
    env = os.environ.get("DATA_DIR")
    if env:
        return Path(env).expanduser().resolve()
    return PROJ_ROOT / "data" / "raw" / "fashion-mnist"


@dataclass(frozen=True)
class Paths:
    """Where one run of the study reads and writes.

    A quick run (``quick=True``) writes into its own sub-folders, so it never overwrites
    the full study's splits, features, models or metrics. Reports (figures, metrics, executed
    notebooks) are per catalog too: ``reports/<catalog folder name>/{figures,metrics,executed}``
    (the default's ``reports/fashion-mnist/``).
    """

    data_dir: Path
    root: Path
    quick: bool = False

    @property
    def run_name(self) -> str:
        return f"{self.data_dir.name}{'-quick' if self.quick else ''}"

    @property
    def interim(self) -> Path:
        """Derived, re-creatable data: image checks, augmented images."""
        return self.root / "data" / "interim" / self.run_name

    @property
    def processed(self) -> Path:
        """Splits, study samples and feature caches that later notebooks read."""
        return self.root / "data" / "processed" / self.run_name

    @property
    def features(self) -> Path:
        return self.processed / "features"

    @property
    def models(self) -> Path:
        return self.root / "models" / self.run_name

    @property
    def catalog(self) -> str:
        """The reports' sub-folder: the catalog's folder name."""
        return self.data_dir.name

    @property
    def reports(self) -> Path:
        return self.root / "reports" / ("quick" if self.quick else "") / self.catalog

    @property
    def figures(self) -> Path:
        return self.reports / "figures"

    @property
    def metrics(self) -> Path:
        return self.reports / "metrics"

    @property
    def executed(self) -> Path:
        """Executed notebooks (papermill output and HTML copies)."""
        return self.reports / "executed"

    def ensure(self) -> "Paths":
        """Create every output folder; returns self."""
        for path in (self.interim, self.processed, self.features, self.models,
                     self.figures, self.metrics, self.executed):
            path.mkdir(parents=True, exist_ok=True)
        return self


def named_for_target(name: str, *, target: str | None = None) -> str:
    """``name``, plus ``-<target>`` when ``target`` is given and is not :data:`DEFAULT_TARGET`:
    the names of a run's metrics file, figures and executed notebook.

    >>> named_for_target("04_tuning", target="articleType")
    '04_tuning-articleType'
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string. Received: name={name!r}")
    if target is None or target == DEFAULT_TARGET:
        return name
    return f"{name}-{target}"


def catalog_image_size(short_side: float) -> int:
    """The side notebooks 02-06 give the backbone for a catalog whose images' median shorter
    side is ``short_side`` px (notebook 01 measures it): that side rounded down to a multiple of
    32, at least :data:`DEFAULT_IMAGE_SIZE` and at most :data:`MAX_IMAGE_SIZE`.

    Real photos lose detail at Fashion-MNIST's 96 px: the README's real-sample results give
    the measured accuracy at each side.

    >>> catalog_image_size(28), catalog_image_size(60), catalog_image_size(170), catalog_image_size(225)
    (96, 96, 160, 224)

    Raises:
        ValueError: ``short_side`` is not a positive number.
    """
    if (isinstance(short_side, bool) or not isinstance(short_side, numbers.Real)
            or not short_side > 0):
        raise ValueError(f"short_side must be a positive number of pixels. "
                         f"Received: short_side={short_side!r}")
    return int(max(DEFAULT_IMAGE_SIZE, min(MAX_IMAGE_SIZE, int(short_side) // 32 * 32)))


def get_paths(data_dir: str | os.PathLike | None = None, *, quick: bool = False) -> Paths:
    """Paths for a run on ``data_dir`` (default: :func:`default_data_dir`).

    Args:
        data_dir: the catalog folder; ``None`` means the default data set.
        quick: quick-mode runs write into separate ``-quick`` folders.

    Returns:
        A :class:`Paths` whose folders exist.

    Raises:
        ValueError: a blank ``data_dir`` (it would otherwise mean the default data silently).
    """
    if isinstance(data_dir, str) and not data_dir.strip():
        raise ValueError(f"DATA_DIR is empty: pass a catalog folder, or None for the default "
                         f"data. Received: data_dir={data_dir!r}")
    data = Path(data_dir).expanduser().resolve() if data_dir else default_data_dir()
    return Paths(data_dir=data, root=output_root(), quick=bool(quick)).ensure()


def set_seed(seed: int = SEED) -> int:
    """Seed Python, NumPy and Keras/TensorFlow (``keras.utils.set_random_seed``).

    Args:
        seed: a non-negative integer.

    Returns:
        The seed, for logging.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer. Received: seed={seed!r}")
    random.seed(seed)
    import numpy as np

    np.random.seed(seed)
    try:
        import keras

        keras.utils.set_random_seed(seed)
    except ImportError:  # pragma: no cover - keras is a hard dependency
        pass
    return seed


def weights_cache_dir() -> Path:
    """Folder for converted weights: env ``FASHION_UTILS_CACHE`` or ``~/.cache/fashion_utils``."""
    env = os.environ.get("FASHION_UTILS_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "fashion_utils"
