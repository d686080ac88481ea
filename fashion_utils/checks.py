"""Argument checks shared by the package: each raises ``ValueError`` echoing the bad value.

Every public function validates its options with these, so the messages read the same
everywhere: ``"<name> must be an integer >= 1. Received: <name>=0"``.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd


def positive_int(name: str, value: Any, *, minimum: int = 1, allow_none: bool = False) -> int | None:
    """``value`` as an ``int`` if it is an integer (not a bool) >= ``minimum``.

    Args:
        name: the argument's name, for the message.
        value: what was passed.
        minimum: the smallest value allowed.
        allow_none: also accept ``None`` (returned as is).
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}{' or None' if allow_none else ''}. "
                         f"Received: {name}={value!r}")
    return int(value)


def positive_int_values(*, minimum: int = 1, **values: Any) -> tuple[int, ...]:
    """:func:`positive_int` of each keyword argument, returned in the order given."""
    return tuple(positive_int(name, value, minimum=minimum) for name, value in values.items())


def one_of(name: str, value: Any, allowed: Sequence[Any]) -> Any:
    """``value`` if it is one of ``allowed``; else ``ValueError`` listing them."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}. Received: {name}={value!r}")
    return value


def positive_float(name: str, value: Any, *, allow_zero: bool = False) -> float:
    """``value`` as a ``float`` if it is a finite number > 0 (>= 0 with ``allow_zero``)."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ValueError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} number. "
                         f"Received: {name}={value!r}")
    return float(value)


def rate(name: str, value: Any) -> float:
    """``value`` as a ``float`` if it is a rate with ``0 <= x < 1`` (a dropout rate, say)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) \
            or not 0 <= value < 1:
        raise ValueError(f"{name} must be a rate with 0 <= x < 1. Received: {name}={value!r}")
    return float(value)


def positive_ints(name: str, values: Sequence[Any]) -> tuple[int, ...]:
    """A sequence of layer widths (each an integer >= 1) as a tuple; ``()`` is allowed."""
    values = tuple(values)
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be positive integers. Received: {name}={values!r} "
                             f"(bad entry: {name}={v!r})")
    return tuple(int(v) for v in values)


def columns_present(table: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    """Raise ``ValueError`` naming the columns of ``columns`` that ``table`` lacks."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}. Received columns: {list(table.columns)}")
