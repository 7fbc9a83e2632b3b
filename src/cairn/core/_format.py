"""Sizes, times and digests for people: the one place they are formatted (CLI, web UI, SDK).

Sizes in SI units (powers of 1000, as ``parse_size`` reads them and as the progress bars show
them), times as ISO 8601 in UTC (JSON, the CLI, the public API) or for a page, digests cut short
for a table.
"""

from __future__ import annotations

import datetime as _dt


def format_size(n: int | None) -> str:
    """``1234567`` -> ``"1.2 MB"`` (powers of 1000, as ``parse_size`` reads them; SI units, like
    the progress bars)."""
    if n is None:
        return "-"
    if n < 1000:
        return f"{n} B"
    value = float(n)
    for unit in ("kB", "MB", "GB", "TB", "PB"):
        value /= 1000
        if value < 1000 or unit == "PB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def iso_time(ts: float | None) -> str | None:
    """Seconds since the epoch -> ``2026-12-01T03:59:00Z`` (None stays None)."""
    if ts is None:
        return None
    return _dt.datetime.fromtimestamp(ts, tz=_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def display_time(ts: float | None) -> str:
    """Seconds since the epoch -> ``2026-12-01 03:59 UTC`` for a page ("" when unknown)."""
    if not ts:
        return ""
    return _dt.datetime.fromtimestamp(ts, tz=_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def short_digest(digest: str | None, *, algorithm: bool = False) -> str:
    """The first 12 hex digits of a digest (``sha256:`` kept in front with ``algorithm``)."""
    if not digest:
        return ""
    algo, _, hex_part = digest.rpartition(":")
    short = hex_part[:12]
    return f"{algo}:{short}" if algorithm and algo else short
