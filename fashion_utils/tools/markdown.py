"""Markdown for the README's generated parts: tables and the blocks between marker lines.

Used by :mod:`fashion_utils.tools.report` (results) and ``fashion_utils.tools.bench`` (benchmarks); it
imports nothing heavy, so a benchmark's child processes stay light.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Sequence

__all__ = ["markdown_lines", "markdown_table", "replace_block"]


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]], *,
                   digits: int = 4) -> str:
    """A GitHub-flavoured Markdown table; floats get ``digits`` decimals, ``None`` a dash."""
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [_num(v, digits).replace("|", "\\|") for v in row]
        if len(cells) != len(header):
            raise ValueError(f"a row has {len(cells)} cells for {len(header)} columns: {row!r}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def markdown_lines(header: Sequence[str], rows: Iterable[Sequence[Any]], *,
                   digits: int = 4) -> list[str]:
    """:func:`markdown_table`'s lines, for pages built line by line."""
    return markdown_table(header, rows, digits=digits).splitlines()


def replace_block(text: str, start: str, end: str, body: str) -> str:
    """``text`` with what lies between the ``start`` and ``end`` marker lines replaced by
    ``body`` (the README's generated blocks, and ``make bench``'s sections)."""
    pattern = re.compile(rf"({re.escape(start)}\n)(.*?)({re.escape(end)})", re.S)
    if not pattern.search(text):
        raise ValueError(f"no '{start}' ... '{end}' markers in the text")
    return pattern.sub(lambda m: m.group(1) + body.rstrip("\n") + "\n" + m.group(3), text)
