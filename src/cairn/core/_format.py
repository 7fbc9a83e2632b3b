"""Sizes, times and digests for people: the one place they are formatted (CLI, web UI, SDK).

Sizes in SI units (powers of 1000, as ``parse_size`` reads them and as the progress bars show
them; the plain-text progress lines in binary units), times as ISO 8601 in UTC (JSON, the CLI,
the public API; W&B's two forms for artifacts and runs) or for a page, digests cut short for a
table.
"""

from __future__ import annotations

import datetime as _dt

_SI_UNITS = ("kB", "MB", "GB", "TB", "PB")
_BINARY_UNITS = ("KiB", "MiB", "GiB")  # the plain-text progress lines stop at GiB


def format_size(n: float | None, *, binary: bool = False) -> str:
    """``1234567`` -> ``"1.2 MB"`` (powers of 1000, as ``parse_size`` reads them; SI units, like
    the progress bars); with ``binary``, ``"1.2 MiB"`` (powers of 1024, as the plain-text progress
    lines print them)."""
    if n is None:
        return "-"
    base, units = (1024, _BINARY_UNITS) if binary else (1000, _SI_UNITS)
    if n < base:
        return f"{n:.0f} B" if binary else f"{n} B"
    value = float(n)
    for unit in units:
        value /= base
        if value < base or unit == units[-1]:
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def iso_time(ts: float | None) -> str | None:
    """Seconds since the epoch -> ``2026-12-01T03:59:00Z`` (None stays None)."""
    if ts is None:
        return None
    return _dt.datetime.fromtimestamp(ts, tz=_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_time_micro(ts: float) -> str:
    """Seconds since the epoch -> ``2026-12-01T03:59:00.123456Z`` (W&B's form of an artifact's
    ``created_at``/``updated_at``)."""
    return _dt.datetime.fromtimestamp(ts, tz=_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_time_naive(ts: float) -> str:
    """Seconds since the epoch -> ``2026-12-01T03:59:00`` (UTC, no zone: W&B's form of a run's
    ``created_at``, which run filters compare)."""
    return _dt.datetime.fromtimestamp(ts, tz=_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


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
