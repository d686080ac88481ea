"""The benchmarks' one measuring helper: fresh processes, memory, CPU time, results files.

Every benchmark section measures with these, so that a figure means the same everywhere:

- :func:`run_isolated`: a function in a fresh (spawned) process, with that process's own
  peak RSS;
- :func:`peak_rss_mib` / :func:`rss_mib`: this process's peak and current resident memory;
- :func:`cpu_seconds`, :func:`load_average`, :func:`load_averages`, :func:`machine_info`;
- :func:`write_results`: merge a section into ``reports/benchmarks.json`` (atomic write);
- :func:`update_page`: replace a section's table between its markers on its docs page
  (:data:`BENCH_PAGES`).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import platform
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from fashion_utils import config
from fashion_utils.atomic import write_json_atomic, write_text_atomic
from fashion_utils.tools.markdown import replace_block

__all__ = [
    "BENCH_MARKER",
    "BENCH_PAGES",
    "bench_page",
    "benchmarks_path",
    "cpu_seconds",
    "load_average",
    "load_averages",
    "machine_info",
    "peak_rss_mib",
    "page_markers",
    "rss_mib",
    "run_isolated",
    "update_page",
    "write_results",
]

#: The markers around a section's table; ``{section}`` and ``{end}`` (start / end).
BENCH_MARKER = "<!-- bench:{section}:{end} -->"
#: Section -> the page (relative to the repository root) whose markers hold its table: the one
#: place that says where each ``make bench`` table lives.
BENCH_PAGES: dict[str, str] = {"extraction": "docs/BENCHMARKS.md",
                               "scale": "docs/BENCHMARKS.md",
                               "training": "docs/BENCHMARKS.md",
                               "explorer": "docs/EXPLORER.md"}
_STATUS = Path("/proc/self/status")


# --------------------------------------------------------------------------- memory


def _status_mib(field: str) -> float | None:
    """A ``/proc/self/status`` memory field (``VmHWM``, ``VmRSS``) in MiB; ``None`` off Linux."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
        pass
    return None


def peak_rss_mib() -> float | None:
    """This process's own peak RSS (``VmHWM``) in MiB, to 0.1; ``None`` where /proc is missing.

    ``getrusage``'s ``ru_maxrss`` would be wrong here: Linux carries it over from the parent
    through fork and ``exec``, so a light spawned child would report its parent's peak;
    ``VmHWM`` belongs to the new address space only.
    """
    peak = _status_mib("VmHWM")
    return None if peak is None else round(peak, 1)


def rss_mib() -> float | None:
    """This process's current RSS (``VmRSS``) in MiB, unrounded; ``None`` where /proc is missing.

    For memory growth across a step (``rss_mib()`` after minus before); a step's peak is
    :func:`peak_rss_mib` of a fresh process (:func:`run_isolated`).
    """
    return _status_mib("VmRSS")


# --------------------------------------------------------------------------- time and load


def cpu_seconds() -> float:
    """User + system CPU time of this process so far (all its threads), in seconds."""
    return time.process_time()


def load_averages() -> list[float] | None:
    """The machine's 1-, 5- and 15-minute load averages (to 0.01); ``None`` if unavailable."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover - not available
        return None


def load_average() -> float | None:
    """The machine's 1-minute load average: how contended the measurement was."""
    loads = load_averages()
    return None if loads is None else loads[0]


def machine_info() -> dict[str, Any]:
    """CPUs, platform, Python version and today's date."""
    return {"cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "date": time.strftime("%Y-%m-%d")}


# --------------------------------------------------------------------------- fresh processes


def _child(conn: Connection, fn: Callable[..., dict], kwargs: dict) -> None:
    try:
        result = fn(**kwargs)
        result["peak_rss_mib"] = peak_rss_mib()
        conn.send(("ok", result))
    except BaseException as err:  # report any failure to the parent
        conn.send(("error", f"{type(err).__name__}: {err}"))
    finally:
        conn.close()


def run_isolated(fn: Callable[..., dict], **kwargs: Any) -> dict:
    """Run ``fn(**kwargs)`` in a fresh (spawned) process; returns its dict plus ``peak_rss_mib``.

    ``fn`` must be importable by name (a module-level function) and return a dict.

    Raises:
        RuntimeError: ``fn`` failed in the child (the message carries its error).
    """
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, fn, kwargs))
    proc.start()
    child.close()
    try:
        status, payload = parent.recv()
    except EOFError:
        proc.join()
        raise RuntimeError(f"{fn.__name__}({kwargs}) died with exit code {proc.exitcode}") from None
    proc.join()
    if status != "ok":
        raise RuntimeError(f"{fn.__name__}({kwargs}) failed: {payload}")
    return payload


# --------------------------------------------------------------------------- results


def benchmarks_path() -> Path:
    """``reports/benchmarks.json`` of the repository: where ``make bench`` writes."""
    return config.PROJ_ROOT / "reports" / "benchmarks.json"


def write_results(section: str, result: Mapping[str, Any], *, path: str | os.PathLike | None = None,
                  machine: bool = True) -> Path:
    """Merge one section into a results file (default :func:`benchmarks_path`), atomically.

    Args:
        section: the top-level key the result is stored under.
        result: a JSON-ready dict.
        path: the JSON file; other sections in it are kept.
        machine: also refresh its ``machine`` key (:func:`machine_info`).

    Returns:
        The path written.
    """
    if not isinstance(section, str) or not section:
        raise ValueError(f"section must be a non-empty string. Received: section={section!r}")
    path = Path(path) if path is not None else benchmarks_path()
    data = json.loads(path.read_text()) if path.exists() else {}
    if machine:
        data["machine"] = machine_info()
    data[section] = dict(result)
    return write_json_atomic(path, data)


def page_markers(section: str) -> tuple[str, str]:
    """The ``<!-- bench:<section>:start -->`` / ``...:end -->`` markers of a section."""
    return (BENCH_MARKER.format(section=section, end="start"),
            BENCH_MARKER.format(section=section, end="end"))


def bench_page(section: str) -> Path:
    """The docs page that holds ``section``'s table (:data:`BENCH_PAGES`), as an absolute path.

    Raises:
        ValueError: ``section`` has no table.
    """
    if section not in BENCH_PAGES:
        raise ValueError(f"section must be one with a table, one of {sorted(BENCH_PAGES)}. "
                         f"Received: section={section!r}")
    return config.PROJ_ROOT / BENCH_PAGES[section]


def update_page(markdown: str, *, section: str, page: str | os.PathLike | None = None) -> Path:
    """Replace the text between a section's markers (:func:`page_markers`) on its page.

    Args:
        markdown: the new text between the markers.
        section: the benchmark section.
        page: the file to rewrite (default: :func:`bench_page` of ``section``).

    Returns:
        The page written.

    Raises:
        ValueError: ``section`` has no page, or the page lacks the section's markers.
    """
    page = Path(page) if page is not None else bench_page(section)
    start, end = page_markers(section)
    try:
        text = replace_block(page.read_text(encoding="utf-8"), start, end, markdown)
    except ValueError as err:
        raise ValueError(f"{page.name} lacks the markers {start} / {end}. "
                         f"Received: page={str(page)!r}") from err
    return write_text_atomic(page, text)
