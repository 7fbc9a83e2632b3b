"""Sizes and durations as people write them: ``10GB``, ``500MiB``, ``90m``, ``1h``.

Formatting them (and times and digests) is ``cairn.core``'s (``core/_format.py``); ``cairn.sdk``
re-exports those functions.
"""

from __future__ import annotations

import re

from cairn.errors import ValidationError

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "pb": 10**15,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
    "pib": 2**50,
}
_DURATION_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_NUMBER_UNIT = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([A-Za-z]*)\s*$")


def parse_size(text: str) -> int:
    """Bytes in ``text``: a number with an optional unit, B, KB/MB/GB/TB/PB (powers of 1000) or
    KiB/MiB/GiB/TiB/PiB (powers of 1024), case-insensitive: ``parse_size("10GB") == 10**10``."""
    m = _NUMBER_UNIT.match(text)
    unit = m.group(2).lower() if m else ""
    if m is None or unit not in _SIZE_UNITS:
        raise ValidationError(
            f"invalid size {text!r}: write a number with an optional unit, e.g. 500MB, 10GB, 2GiB"
        )
    return int(float(m.group(1)) * _SIZE_UNITS[unit])


def parse_duration(text: str) -> float:
    """Seconds in ``text``: a number with an optional unit s, m, h or d (``"90m"``, ``"1.5h"``)."""
    m = _NUMBER_UNIT.match(text)
    unit = m.group(2).lower() if m else ""
    if m is None or unit not in _DURATION_UNITS:
        raise ValidationError(
            f"invalid duration {text!r}: write a number with an optional unit s, m, h or d,"
            " e.g. 30m or 1h"
        )
    return float(m.group(1)) * _DURATION_UNITS[unit]
