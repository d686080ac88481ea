"""What the runner shows in its terminal while a notebook runs.

One status line per notebook: its name, target, code cell n of N with the cell's section (the
last markdown heading above it) or first line, the elapsed time, and the newest report of a
long step inside the kernel (:mod:`fashion_utils.progress`: images extracted, trials, epochs,
hashes). On a terminal the line updates in place; elsewhere (CI, a log file) a short line is
printed when the section changes, and at most every :data:`LOG_INTERVAL` seconds otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

#: Seconds between two status lines when the output is not a terminal.
LOG_INTERVAL = 30.0
#: Seconds between two redraws of the status line on a terminal.
REDRAW_INTERVAL = 1.0


def clock(seconds: float) -> str:
    """``m:ss`` (or ``h:mm:ss``) for a duration.

    >>> clock(75.4), clock(3725)
    ('1:15', '1:02:05')
    """
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _source(cell: Any) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def cell_label(cells: list[Any], index: int) -> tuple[str, str]:
    """``(section, first line)`` of ``cells[index]``: the last markdown heading above it (without
    its ``#``) and its first non-blank line."""
    section = ""
    for cell in cells[:index]:
        if cell.get("cell_type") == "markdown":
            for line in _source(cell).splitlines():
                if line.startswith("#"):
                    section = line.lstrip("#").strip()
    first = next((line.strip() for line in _source(cells[index]).splitlines() if line.strip()), "")
    return section, first


def progress_text(report: dict[str, Any]) -> str:
    """One progress report as text: ``desc n/total unit``.

    >>> progress_text({"desc": "lite0 @ 96px", "n": 512, "total": 70000, "unit": "img"})
    'lite0 @ 96px 512/70,000 img'
    """
    n, total = report.get("n"), report.get("total")
    count = f"{n:,}" if total is None else f"{n:,}/{total:,}"
    return " ".join(part for part in (report.get("desc", ""), count, report.get("unit", "")) if part)


class NotebookStatus:
    """The status line of one notebook run; a thread redraws it and reads the progress file."""

    def __init__(self, *, notebook: str, target: str | None, progress_file: Path,
                 stream: TextIO | None = None, tty: bool | None = None) -> None:
        self.label = f"{notebook}" + (f" [{target}]" if target else "")
        self.progress_file = Path(progress_file)
        self.stream = stream if stream is not None else sys.stdout
        self.tty = self.stream.isatty() if tty is None else tty
        self.start = time.monotonic()
        self.cell_text = "starting the kernel"
        self.section = ""
        self.report: dict[str, Any] | None = None
        self._offset = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.first_line = ""
        self._last_state: tuple = ()
        self._last_print = 0.0

    # ------------------------------------------------------------------ what changes
    def cell(self, cells: list[Any], index: int) -> None:
        """A cell starts (papermill calls this for every cell; markdown cells only move the
        section)."""
        if cells[index].get("cell_type") != "code":
            return
        code = [i for i, c in enumerate(cells) if c.get("cell_type") == "code"]
        section, first = cell_label(cells, index)
        with self._lock:
            new_section = section != self.section
            self.section = section
            self.cell_text = f"cell {code.index(index) + 1}/{len(code)}"
            self.first_line = first
            self.report = None  # a new cell: its own steps report from now on
        self._show(force=new_section)

    def read_progress(self) -> bool:
        """Read what the kernel appended to the progress file; True when something new came."""
        try:
            with open(self.progress_file, encoding="utf-8") as fh:
                fh.seek(self._offset)
                chunk = fh.read()
        except OSError:
            return False
        complete = chunk[: chunk.rfind("\n") + 1]  # a line still being written waits
        self._offset += len(complete.encode("utf-8"))
        latest = None
        for line in complete.splitlines():
            try:
                latest = json.loads(line)
            except ValueError:
                continue
        if latest is None:
            return False
        with self._lock:
            self.report = latest
        return True

    # ------------------------------------------------------------------ drawing
    def _state(self) -> tuple[str, str]:
        """What the line says besides the clock: the cell, and its progress or section."""
        with self._lock:
            if self.report:
                return self.cell_text, progress_text(self.report)
            return self.cell_text, self.section or self.first_line

    def line(self) -> str:
        """The status line as it stands: ``notebook [target] | cell n/N | m:ss | what``."""
        cell, what = self._state()
        parts = [self.label, cell, clock(time.monotonic() - self.start), what]
        return " | ".join(part for part in parts if part)

    def _show(self, *, force: bool = False) -> None:
        if self.tty:
            width = max(shutil.get_terminal_size((100, 20)).columns - 1, 20)
            self.stream.write("\r\x1b[K" + self.line()[:width])
            self.stream.flush()
            return
        now, state = time.monotonic(), self._state()
        if force or (state != self._last_state and now - self._last_print >= LOG_INTERVAL):
            self.stream.write(self.line() + "\n")
            self.stream.flush()
            self._last_state, self._last_print = state, now

    def _loop(self) -> None:
        while not self._stop.wait(REDRAW_INTERVAL):
            self.read_progress()
            self._show()

    def __enter__(self) -> "NotebookStatus":
        self.progress_file.parent.mkdir(parents=True, exist_ok=True)
        self.progress_file.write_text("")
        self._thread = threading.Thread(target=self._loop, name="notebook-status", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.tty:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
        try:
            os.remove(self.progress_file)
        except OSError:
            pass
