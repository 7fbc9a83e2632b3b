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
