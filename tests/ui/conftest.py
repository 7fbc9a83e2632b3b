"""Fixtures of the UI tests: one sample store per test session, filled through the SDK."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from cairn.core import ManifestEntry, digest_bytes
from cairn.service import CommitRequest, LocalService
from cairn.ui import LocalUiBackend, create_ui_app
from tests.ui.sample_store import ENTITY, add_sweep, fill

MANY = 1203
SWEEP = 120  # versions of sweeps/sweep-results: three pages of the versions table  # files in many-files:v0 under big/: more than two pages of 500


def add_many_files(store_dir: str) -> None:
    """many-files:v0: big/ holds MANY files, beside a few at the root (through the Service,
    as the benchmarks do: fast, and the same pages the SDK would write)."""
    svc = LocalService.open(store_dir)
    try:
        blobs = [f"row {i}\n".encode() for i in range(8)]
        svc.store_blobs([(digest_bytes(b), b) for b in blobs])
        paths = [f"big/part-{i:05}.txt" for i in range(MANY)] + ["a.txt", "z.txt"]
        entries = [
            ManifestEntry(p, digest_bytes(blobs[i % 8]), len(blobs[i % 8]))
            for i, p in enumerate(sorted(paths))
        ]
        result = svc.commit(
            CommitRequest(
                entity=ENTITY,
                project="mnist",
                name="many-files",
                type="dataset",
                changes=[(e.path, e) for e in entries],
            )
        )
        assert result.version is not None and result.version.file_count == MANY + 2
    finally:
        svc.close()


@pytest.fixture(scope="session")
def ui_root(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = str(tmp_path_factory.mktemp("ui-store"))
    fill(root)
    add_many_files(os.path.join(root, "store"))
    add_sweep(os.path.join(root, "store"), SWEEP)
    return root


@pytest.fixture(scope="session")
def ui_store(ui_root: str) -> str:
    return os.path.join(ui_root, "store")


@pytest.fixture(scope="session")
def local_service(ui_store: str) -> Iterator[LocalService]:
    svc = LocalService.open(ui_store)
    yield svc
    svc.close()


@pytest.fixture(scope="session")
def client(local_service: LocalService) -> Iterator[TestClient]:
    """The UI over the sample store, in process, as ``cairn ui`` serves it (no login)."""
    app = create_ui_app(LocalUiBackend(local_service), secure_cookies=False)
    with TestClient(app, follow_redirects=False) as c:
        yield c


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "page has no CSRF token"
    return match.group(1)
