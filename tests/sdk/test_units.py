"""Sizes and durations as people write them."""

from __future__ import annotations

import pytest

from cairn.errors import ValidationError
from cairn.sdk import format_size, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("0", 0),
        ("123", 123),
        ("10B", 10),
        ("2.5KB", 2500),
        ("500MB", 500_000_000),
        ("10GB", 10**10),
        ("1 tb", 10**12),
        ("2GiB", 2 * 2**30),
        ("1.5KiB", 1536),
        (".5MB", 500_000),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "10XB", "-1GB", "1e3", "GB", "1.2.3MB"])
def test_parse_size_refuses_with_an_example(text: str) -> None:
    with pytest.raises(ValidationError, match=r"e\.g\. 500MB"):
        parse_size(text)


def test_durations_and_formatting() -> None:
    assert [parse_duration(t) for t in ("0", "90", "30s", "15m", "1.5h", "2d")] == [
        0,
        90,
        30,
        900,
        5400,
        172800,
    ]
    with pytest.raises(ValidationError, match="30m"):
        parse_duration("soon")
    assert [format_size(n) for n in (None, 0, 999, 1000, 1_234_567, 10**13)] == [
        "-",
        "0 B",
        "999 B",
        "1.0 kB",
        "1.2 MB",
        "10.0 TB",
    ]


def test_times_and_digests_have_one_format_each() -> None:
    from cairn.core import display_time, iso_time, short_digest

    assert iso_time(None) is None
    assert iso_time(0.0) == "1970-01-01T00:00:00Z"
    assert iso_time(1_764_561_540.5) == "2025-12-01T03:59:00Z"
    assert display_time(None) == "" and display_time(1_764_561_540) == "2025-12-01 03:59 UTC"
    digest = "sha256:" + "0123456789ab" + "c" * 52
    assert short_digest(digest) == "0123456789ab"
    assert short_digest(digest, algorithm=True) == "sha256:0123456789ab"
    assert short_digest(None) == "" and short_digest("") == ""
