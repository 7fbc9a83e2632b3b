"""A run's history rows and summary as stored: JSON objects in W&B's history encoding.

The SDK encodes what ``run.log`` gets (numbers, bools, strings, None, nested dicts, numpy values,
tables) the way W&B's client does; NaN and the infinities stay as JSON's ``NaN``/``Infinity``
tokens, as in W&B's history files. What reaches the catalog is checked here, so the embedded store
and a server refuse the same rows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from cairn.errors import ValidationError

# W&B keeps a history row under about a megabyte; so does cairn (one row, as JSON text).
MAX_ROW_BYTES = 1 << 20
MAX_SUMMARY_BYTES = 4 << 20
MAX_STEP = (1 << 62) - 1


def _object(text: Any, what: str, limit: int) -> dict[str, Any]:
    if not isinstance(text, str):
        raise ValidationError(f"{what} must be JSON text, not {type(text).__name__}")
    if len(text.encode()) > limit:
        raise ValidationError(f"{what} is larger than {limit >> 20} MiB: log less per step")
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValidationError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValidationError(f"{what} must be a JSON object")
    return value


def check_history_rows(rows: Sequence[str]) -> list[tuple[int, str]]:
    """``(step, text)`` for each row; a row must be a JSON object with an integer ``_step``."""
    out = []
    for i, text in enumerate(rows):
        row = _object(text, f"history row {i}", MAX_ROW_BYTES)
        step = row.get("_step")
        if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= MAX_STEP:
            raise ValidationError(
                f"history row {i} needs an integer _step between 0 and {MAX_STEP}, not {step!r}"
            )
        out.append((step, text))
    return out


def check_summary(text: str) -> str:
    """The summary as stored: a JSON object."""
    _object(text, "summary", MAX_SUMMARY_BYTES)
    return text
