"""The cairn:// path grammar, and the entry point that makes fsspec find the filesystem."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cairn.errors import ValidationError
from cairn.fs import CairnPath, parse_cairn_path

pytestmark = pytest.mark.embedded_only  # no store involved


def test_paths_parse_one_way() -> None:
    assert parse_cairn_path("cairn://proj/ds:latest/a/b.csv") == CairnPath(
        None, "proj", "ds", "latest", "a/b.csv"
    )
    assert parse_cairn_path("me/proj/ds:v3") == CairnPath("me", "proj", "ds", "v3", "")
    assert parse_cairn_path("cairn://me/proj/ds:prod/") == CairnPath("me", "proj", "ds", "prod", "")
    # a ':' further down belongs to the path inside the artifact
    assert parse_cairn_path("proj/ds:v1/t:1.txt").path == "t:1.txt"
    assert parse_cairn_path("proj/ds:v1/x").pinned and not parse_cairn_path("p/d:latest").pinned


@pytest.mark.parametrize(
    "bad",
    [
        "cairn://proj/ds/a.csv",
        "proj",
        "ds:latest/a.csv",
        "a/b/c/ds:v1",
        "proj/bad name:v1",
        "p/ds:",
    ],
)
def test_bad_paths_say_what_a_path_looks_like(bad: str) -> None:
    with pytest.raises(ValidationError):
        parse_cairn_path(bad)


def test_fsspec_finds_the_filesystem_without_importing_cairn() -> None:
    code = (
        "import sys, fsspec\n"
        "assert 'cairn' not in sys.modules\n"
        "fs = fsspec.filesystem('cairn')\n"
        "print(type(fs).__module__, fsspec.core.url_to_fs('cairn://p/d:v0/x')[1])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["cairn.fs._filesystem", "p/d:v0/x"]
