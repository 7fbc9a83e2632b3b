"""A server sweeps what killed writers left behind, by itself, every CAIRN_SERVER_SWEEP_INTERVAL
seconds (issue 12, item 4): stale temp files of its local store, abandoned uploads (row and
spool files) and spool files no upload owns; young ones stay. A real server process."""

from __future__ import annotations

import json
import os
import pathlib
import sqlite3
import time
from collections.abc import Iterator

import httpx
import pytest

from cairn.core import digest_bytes
from tests._infra import CairnServer

HOUR = 3600


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CairnServer]:
    where = tmp_path_factory.mktemp("sweeping-server")
    env = {"CAIRN_SERVER_SWEEP_INTERVAL": "0.2", "CAIRN_SERVER_UPLOAD_MAX_AGE": "600"}
    server = CairnServer(str(where / "catalog.sqlite"), str(where / "blobs"), env)
    yield server
    server.stop()


def _old(path: pathlib.Path, seconds: float = HOUR) -> pathlib.Path:
    past = time.time() - seconds
    os.utime(path, (past, past))
    return path


def _eventually_gone(*paths: pathlib.Path) -> None:
    """Wait for the sweeper (it runs every 0.2 s; generous for a loaded machine)."""
    deadline = time.monotonic() + 60
    while any(p.exists() for p in paths) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in paths if p.exists()]


def _begin_upload(server: CairnServer, key: str, data: bytes) -> str:
    headers = {"Authorization": f"Bearer {key}"}
    plan = httpx.post(
        f"{server.url}/api/v1/uploads",
        json={"digest": digest_bytes(data), "size": len(data)},
        headers=headers,
    ).json()
    assert plan["mode"] == "parts", plan
    sent = httpx.put(
        f"{server.url}/api/v1/uploads/{plan['id']}/parts/0", content=data, headers=headers
    )
    assert sent.status_code == 200, sent.text
    return str(plan["id"])


def test_the_server_sweeps_killed_writers_leftovers_periodically(server: CairnServer) -> None:
    store = pathlib.Path(server.store)
    tmp, spool = store / "tmp", store / "tmp" / "uploads"
    key = server.create_key("sweeper", "e/p", "write")
    headers = {"Authorization": f"Bearer {key}"}
    # A client that went away an hour ago (its row aged in the catalog), and one still uploading.
    abandoned = _begin_upload(server, key, os.urandom(200_000))
    running = _begin_upload(server, key, os.urandom(200_000))
    with sqlite3.connect(server.db) as db:
        db.execute("UPDATE uploads SET created_at = created_at - ? WHERE id = ?", (HOUR, abandoned))
    abandoned_spool = [_old(p) for p in spool.glob(f"{abandoned}.*")]
    assert abandoned_spool  # its data file and parts directory
    # A writer killed while storing a blob, a server killed between spool file and row, and a
    # blob being stored right now.
    dead = tmp / "0123456789abcdef0123456789abcdef.partial"
    dead.write_bytes(b"x" * 1000)
    _old(dead)
    orphan = spool / "fedcba9876543210fedcba9876543210.partial"
    orphan.write_bytes(b"y")
    _old(orphan)
    live = tmp / "00000000000000000000000000000000.partial"
    live.write_bytes(b"being written")

    _eventually_gone(dead, orphan, *abandoned_spool)
    gone = httpx.get(f"{server.url}/api/v1/uploads/{abandoned}", headers=headers)
    assert gone.status_code == 404 and "abandoned" in gone.json()["error"]["message"]
    # Younger than CAIRN_SERVER_UPLOAD_MAX_AGE: kept, through many sweeps.
    assert live.exists() and list(spool.glob(f"{running}.*"))
    assert httpx.get(f"{server.url}/api/v1/uploads/{running}", headers=headers).status_code == 200

    # Periodic, not once at start: what dies later is swept later.
    later = tmp / "11111111111111111111111111111111.partial"
    later.write_bytes(b"z")
    _old(later)
    _eventually_gone(later)
    # The sweep logs what it removed once it is removed: the line may come a moment after.
    deadline = time.monotonic() + 60
    while True:
        sweeps = _sweeps_logged(server)
        temp_files = sum(s["temp_files"] for s in sweeps)
        uploads = sum(s["uploads"] for s in sweeps)  # the abandoned upload and the orphan spool
        if (temp_files >= 2 and uploads >= 2) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert temp_files >= 2 and uploads >= 2, sweeps


def _sweeps_logged(server: CairnServer) -> list[dict[str, int]]:
    with open(server.log_path) as f:
        return [json.loads(x) for x in f if '"event":"sweep"' in x]


def test_the_sweep_interval_is_checked(tmp_path: pathlib.Path) -> None:
    from cairn.server import ServerConfig

    with pytest.raises(Exception, match="CAIRN_SERVER_SWEEP_INTERVAL must be a number"):
        ServerConfig.from_env({"CAIRN_SERVER_SWEEP_INTERVAL": "often"}, db="db", store="store")
    assert ServerConfig.from_env({}, db="db", store="store").sweep_interval == 3600
