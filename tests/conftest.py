"""Shared fixtures: every test gets its own embedded store, cache and working directory."""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterator

import pytest

import cairn
from cairn.sdk import reset_services

_CAIRN_VARS = (
    "CAIRN_DIR",
    "CAIRN_BASE_URL",
    "CAIRN_API_KEY",
    "CAIRN_CACHE_DIR",
    "CAIRN_ARTIFACT_DIR",
    "CAIRN_PROJECT",
    "CAIRN_ENTITY",
    "CAIRN_RUN_GROUP",
    "CAIRN_SILENT",
)


@pytest.fixture(autouse=True)
def cairn_env(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[pathlib.Path]:
    """A fresh store in ``tmp_path/store``; the test runs in ``tmp_path/work``."""
    for var in _CAIRN_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CAIRN_DIR", str(tmp_path / "store"))
    monkeypatch.setenv("CAIRN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CAIRN_ARTIFACT_DIR", str(tmp_path / "artifacts"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    yield tmp_path
    cairn.finish()
    reset_services()


def write(path: str | os.PathLike[str], content: bytes | str) -> str:
    """Write a file (creating directories); return its path."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "wb") as f:
        f.write(content.encode() if isinstance(content, str) else content)
    return path
