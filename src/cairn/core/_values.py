"""JSON values a store keeps (metadata, run config): what every store can write and read back.

A value is refused, naming where it is, when it is not plain JSON (``dict`` with ``str`` keys,
``list``, ``str``, ``bool``, ``None``, ``int``, ``float``), holds a number that is not finite or an
integer outside 64 bits (PostgreSQL, SQLite and JavaScript readers disagree beyond that), or is
nested deeper than ``MAX_DEPTH``. Checked once, before a commit, by the embedded store and the
server alike, so nothing unreadable is ever committed.
"""

from __future__ import annotations

import math
from typing import Any

from cairn.errors import ValidationError

MAX_DEPTH = 64
INT_RANGE = (-(1 << 63), (1 << 63) - 1)


def check_json_value(value: Any, field: str) -> Any:
    """Return ``value`` if it is storable JSON, else raise ``ValidationError`` naming the field."""
    stack: list[tuple[Any, str, int]] = [(value, field, 0)]
    while stack:
        item, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValidationError(f"{where}: nested more than {MAX_DEPTH} levels deep")
        if item is None or isinstance(item, (str, bool)):
            continue
        if isinstance(item, int):
            if not INT_RANGE[0] <= item <= INT_RANGE[1]:
                raise ValidationError(f"{where}: the integer {item:.3g} is outside 64 bits")
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                raise ValidationError(f"{where}: {item} is not a finite number (JSON has none)")
            continue
        if isinstance(item, dict):
            for k, v in item.items():
                if not isinstance(k, str):
                    raise ValidationError(f"{where}: keys must be strings, not {k!r}")
                stack.append((v, f"{where}.{k}", depth + 1))
            continue
        if isinstance(item, list):
            stack.extend((v, f"{where}[{i}]", depth + 1) for i, v in enumerate(item))
            continue
        raise ValidationError(f"{where}: {type(item).__name__} is not a JSON value")
    return value


def nonfinite_to_null(value: Any, depth: int = 0) -> Any:
    """``value`` with NaN and infinities replaced by ``None`` (as W&B stores them in metadata)."""
    if depth > MAX_DEPTH:
        raise ValidationError(f"nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: nonfinite_to_null(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [nonfinite_to_null(v, depth + 1) for v in value]
    return value
