"""Where a result came from: the commit, the machine and the library versions of a run.

:func:`collect` is what every notebook's metrics file records under ``"provenance"``
(``notebook.Run.write_metrics``), so a number can be traced to the code and machine that made it.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
from importlib import metadata
from typing import Any, Mapping

from fashion_utils import config

__all__ = ["PACKAGES", "collect", "cpu", "git_state"]

#: The libraries whose versions a result depends on (those installed are recorded).
PACKAGES: tuple[str, ...] = ("tensorflow", "tensorflow-cpu", "keras", "keras-tuner", "numpy",
                             "pandas", "scikit-learn", "pillow", "faiss-cpu", "papermill")


#: What a run of the study writes into the checkout: not a change to the code that made it
#: (README.md's generated findings; the pages whose tables ``make bench`` rewrites,
#: ``tools.bench.measure.BENCH_PAGES``: a test holds the two together).
RUN_OUTPUTS: tuple[str, ...] = ("reports", "README.md", "docs/BENCHMARKS.md", "docs/EXPLORER.md")


def git_state(root: os.PathLike | str = config.PROJ_ROOT) -> dict[str, Any]:
    """``{"commit": <HEAD or None>, "dirty": <tracked files changed, or None>, "dirty_excludes":
    [...]}``; ``None`` where ``root`` is not a git checkout or git is missing.

    ``dirty`` judges the source: changes under :data:`RUN_OUTPUTS` (the reports a run itself
    rewrites, README.md's generated block and the benchmark tables included) do not count.
    """
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                                  text=True, timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    excludes = [f":(exclude){path}" for path in RUN_OUTPUTS]
    status = (git("status", "--porcelain", "--untracked-files=no", "--", ".", *excludes)
              if commit else None)
    return {"commit": commit, "dirty": None if status is None else bool(status),
            "dirty_excludes": list(RUN_OUTPUTS)}


#: Vector instruction sets that decide how fast TensorFlow runs on a CPU, widest first.
VECTOR_ISAS: tuple[str, ...] = ("avx512_bf16", "avx512f", "avx2", "avx")


def cpu(cpuinfo: os.PathLike | str = "/proc/cpuinfo") -> dict[str, Any]:
    """The CPU's model name and widest vector instruction set (``None`` where unknown):
    TensorFlow's speed, and so every timing and time-capped result, depends on both."""
    model, flags = None, set()
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model is None:
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    widest = next((isa for isa in VECTOR_ISAS if isa in flags), None)
    return {"model": model, "vector_isa": widest}


def _gpus() -> list[str] | None:
    """The GPUs TensorFlow sees, if this process already imported it (never imports it)."""
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return None
    return [d.name for d in tf.config.list_physical_devices("GPU")]


def collect(*, parameters: Mapping[str, Any] | None = None,
            seconds: float | None = None) -> dict[str, Any]:
    """The run's provenance: git commit, parameters, wall time, machine and library versions."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "git": git_state(),
        "parameters": dict(parameters or {}),
        "seconds": seconds,
        "written_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu_count": os.cpu_count(), "cpu": cpu(), "gpus": _gpus(),
                    "platform": platform.platform(), "python": platform.python_version()},
        "versions": versions,
    }
