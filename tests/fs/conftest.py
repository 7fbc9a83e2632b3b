"""Every ``cairn://`` test runs twice: on the embedded store and through a real server process
(PostgreSQL + S3), unless it looks inside the embedded store (``embedded_only``)."""

from __future__ import annotations

import os
import pathlib

import pytest

import cairn
from cairn.fs import CairnFileSystem
from cairn.sdk import current_service
from cairn.testing import CountingService

pytest.importorskip("fsspec")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        embedded_only = metafunc.definition.get_closest_marker("embedded_only") is not None
        metafunc.parametrize("backend", ["embedded"] if embedded_only else ["embedded", "server"])


@pytest.fixture
def counter() -> CountingService:
    """The store's Service, counting the blob bytes it hands out."""
    return CountingService(current_service())


@pytest.fixture
def fs(counter: CountingService) -> CairnFileSystem:
    """A cairn:// filesystem over the counting service (skip_instance_cache: a fresh one)."""
    return CairnFileSystem(service=counter, skip_instance_cache=True)  # type: ignore[arg-type]


def log_files(name: str, files: dict[str, bytes | str], project: str = "proj") -> cairn.Artifact:
    """Log ``files`` (entry path -> content) as a new version of ``project/name``."""
    art = cairn.Artifact(name, "dataset")
    src = pathlib.Path(f"src-{name}-{os.urandom(4).hex()}")
    for path, content in files.items():
        local = src / path
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(content.encode() if isinstance(content, str) else content)
        art.add_file(str(local), name=path)
    with cairn.init(project=project) as run:
        run.log_artifact(art)
    return art
