"""The one blob layout (``sha256/ab/cdef...``) and the digest conversions every store uses."""

from __future__ import annotations

import pytest

from cairn.core import (
    blob_path,
    blob_path_parts,
    digest_bytes,
    digest_from_raw,
    digest_in_folder,
    digest_of_blob_path,
    digest_raw,
    is_digest,
)
from cairn.errors import ValidationError


def test_blob_path_round_trips() -> None:
    d = digest_bytes(b"layout")
    hexd = d.removeprefix("sha256:")
    assert blob_path_parts(d) == ("sha256", hexd[:2], hexd[2:])
    assert blob_path(d) == f"sha256/{hexd[:2]}/{hexd[2:]}"
    assert digest_of_blob_path(blob_path(d)) == d
    assert digest_in_folder(hexd[:2], hexd[2:]) == d
    assert digest_from_raw(digest_raw(d)) == d and len(digest_raw(d)) == 32


@pytest.mark.parametrize(
    "path",
    [
        "tmp/abc.partial",
        "sha256/ab",
        "md5/ab/" + "0" * 62,
        "sha256/abc/" + "0" * 61,
        "sha256/ab/" + "0" * 61,
        "sha256/AB/" + "0" * 62,
        "sha256/ab/" + "0" * 62 + "/x",
    ],
)
def test_paths_that_are_not_blobs(path: str) -> None:
    assert digest_of_blob_path(path) is None


def test_a_bad_digest_has_no_path() -> None:
    with pytest.raises(ValidationError):
        blob_path("sha256:xyz")


def test_a_digest_is_sha256_and_64_lowercase_hex_digits_nothing_more() -> None:
    # Checked without a regular expression now (``re`` is not loaded by a staging worker): the
    # expression's ``$`` also took a digest followed by a newline, which ``digest_hex`` then
    # passed to ``bytes.fromhex`` (it skips whitespace).
    d = digest_bytes(b"layout")
    assert is_digest(d)
    hexd = d.removeprefix("sha256:")
    for bad in (d + "\n", d + " ", d[:-1], d[:-1] + "G", "sha256:" + hexd.upper(), "md5:" + hexd):
        assert not is_digest(bad), bad
        with pytest.raises(ValidationError):
            blob_path(bad)
    assert not is_digest(None) and not is_digest(b"sha256:" + hexd.encode())
