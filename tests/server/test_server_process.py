"""``cairn server`` as a process: the schema check at start, SQLite as a catalog, keys at rest."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import psycopg
import pytest

from cairn.catalog import HEAD_REVISION
from cairn.core import ManifestEntry, digest_bytes
from cairn.service import CommitRequest
from cairn.service._http import HttpService
from tests._infra import ADMIN_KEY, CairnServer, Postgres, free_port


def test_the_server_refuses_an_unmigrated_catalog(
    postgres: Postgres, tmp_path: pathlib.Path
) -> None:
    db = postgres.create_database("not_migrated")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "cairn",
            "server",
            "--db",
            db,
            "--store",
            str(tmp_path / "b"),
            "--port",
            str(free_port()),
        ],
        env={**os.environ, "CAIRN_ADMIN_KEY": ADMIN_KEY},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert "cairn server migrate" in out.stderr
    # ... and the command it names brings the catalog to this version's schema.
    migrated = subprocess.run(
        [sys.executable, "-m", "cairn", "server", "migrate", "--db", db],
        env={**os.environ, "CAIRN_ADMIN_KEY": ADMIN_KEY},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migrated.returncode == 0, migrated.stderr
    with psycopg.connect(db) as conn:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert row == (HEAD_REVISION,)


def test_a_server_on_sqlite_and_a_directory(tmp_path: pathlib.Path) -> None:
    server = CairnServer(str(tmp_path / "catalog.sqlite"), str(tmp_path / "blobs"))
    try:
        svc = HttpService(server.url, server.create_key("solo"), str(tmp_path / "cache"))
        files = {f"f{i}.txt": os.urandom(100 + i) for i in range(3000)}  # over SQLite's 999/32,766
        big = os.urandom(300_000)
        svc.store_blobs([(digest_bytes(b), b) for b in [*files.values(), big]])
        changes = sorted(
            (p, ManifestEntry(p, digest_bytes(b), len(b)))
            for p, b in [*files.items(), ("big", big)]
        )
        result = svc.commit(
            CommitRequest(entity="solo", project="p", name="ds", type="dataset", changes=changes)
        )
        assert result.version is not None and result.version.file_count == 3001
        assert svc.resolve("solo", "p", "ds", "latest").id == result.version.id
        svc.prefetch_blobs([e.digest for _, e in changes if e is not None])
        dest = tmp_path / "big"
        svc.download_blob(digest_bytes(big), str(dest))
        assert dest.read_bytes() == big
        svc.close()
    finally:
        server.stop()


def test_keys_are_stored_hashed(postgres: Postgres, server_local: CairnServer) -> None:
    key = server_local.create_key("hashed")
    _, key_id, secret = key.split("_", 2)  # cairn_<id>_<secret>; the secret may hold "_"
    with psycopg.connect(server_local.db) as conn:
        row = conn.execute("SELECT secret_hash FROM api_keys WHERE id = %s", (key_id,)).fetchone()
    assert row is not None and secret not in row[0] and len(row[0]) == 64


@pytest.mark.parametrize("bad", ["", "Bearer", "Bearer cairn_", "Bearer cairn_x_y"])
def test_malformed_keys_are_401(server_local: CairnServer, bad: str) -> None:
    import httpx

    resp = httpx.get(f"{server_local.url}/api/v1/whoami", headers={"Authorization": bad})
    assert resp.status_code == 401 and resp.json()["error"]["type"] == "AuthenticationError"
