"""A server takes care of its store (issue 12, item 4): `cairn gc`/`cairn verify` against a
server's catalog and store, the admin REST calls, and no "ok" from a store that is not there."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time

import httpx
import pytest

from cairn.core import ManifestEntry, digest_bytes
from cairn.service import CommitRequest
from cairn.service._http import HttpService
from tests._infra import ADMIN_KEY, CairnServer, reset_database


@pytest.fixture
def server(server_local: CairnServer) -> CairnServer:
    reset_database(server_local.db)
    return server_local


def _cairn(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cairn", *args], env=env, capture_output=True, text=True
    )


def _log(svc: HttpService, name: str, data: bytes) -> str:
    d = digest_bytes(data)
    if len(data) >= 128 * 1024:
        path = f"/tmp/cairn-test-{os.getpid()}-{name}"
        pathlib.Path(path).write_bytes(data)
        svc.store_file(path)
        os.unlink(path)
    else:
        svc.store_blobs([(d, data)])
    req = CommitRequest(
        entity="e",
        project="p",
        name=name,
        type="dataset",
        changes=[("f.bin", ManifestEntry("f.bin", d, len(data)))],
    )
    result = svc.commit(req)
    assert result.version is not None
    return result.version.id


@pytest.mark.slow  # long: dealt out first (tests/conftest.py)
def test_gc_and_verify_run_against_a_servers_store(
    server: CairnServer, tmp_path: pathlib.Path
) -> None:
    svc = HttpService(server.url, server.create_key("e"), str(tmp_path / "cache"), retries=0)
    kept = os.urandom(300_000)
    gone = os.urandom(300_000)
    _log(svc, "kept", kept)
    svc.delete_version(_log(svc, "gone", gone), delete_aliases=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    env |= {"CAIRN_DIR": str(tmp_path / "no-store"), "CAIRN_CACHE_DIR": str(tmp_path / "c")}
    where = ["--db", server.db, "--store", server.store]
    gc = _cairn("gc", *where, "--grace", "0", "--json", env=env)
    assert gc.returncode == 0, gc.stderr
    report = json.loads(gc.stdout)  # the deleted version's blob and manifest page (at least)
    assert report["removed_blobs"] >= 2 and report["removed_bytes"] >= 300_000
    ok = _cairn("verify", *where, env=env)
    assert ok.returncode == 0 and "ok" in ok.stdout, ok.stderr
    # Damage the kept blob: verify names the version and exits 1 (also through the env).
    blob = pathlib.Path(server.store, "sha256", digest_bytes(kept)[7:9], digest_bytes(kept)[9:])
    blob.chmod(0o644)
    blob.write_bytes(b"x" * 300_000)
    bad = _cairn(
        "verify", env={**env, "CAIRN_SERVER_DB": server.db, "CAIRN_SERVER_STORE": server.store}
    )
    assert bad.returncode == 1 and "kept" in bad.stdout, bad.stdout + bad.stderr
    assert not blob.exists()  # verify removed the damaged copy: the next log repairs it
    svc.close()


def test_admins_trigger_gc_and_verify_over_rest(server: CairnServer) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    writer = {"Authorization": f"Bearer {server.create_key('e')}"}
    for path in ("/admin/gc", "/admin/verify"):
        refused = httpx.post(f"{server.url}/api/v1{path}", headers=writer, json={})
        assert refused.status_code == 403, refused.text
    gc = httpx.post(
        f"{server.url}/api/v1/admin/gc", headers=admin, json={"dry_run": True}, timeout=60
    )
    assert gc.status_code == 200 and gc.json()["dry_run"] is True, gc.text
    verify = httpx.post(f"{server.url}/api/v1/admin/verify", headers=admin, timeout=60)
    assert verify.status_code == 200 and "ok" in verify.json(), verify.text


def test_without_a_store_gc_and_verify_say_so(tmp_path: pathlib.Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    env |= {"CAIRN_DIR": str(tmp_path / "nothing-here"), "CAIRN_CACHE_DIR": str(tmp_path / "c")}
    for command in ("verify", "gc"):
        done = _cairn(command, env=env)
        assert done.returncode != 0 and "no cairn store" in done.stderr, done.stdout + done.stderr
        assert "ok" not in done.stdout
    assert not (tmp_path / "nothing-here").exists()
    remote = _cairn("verify", env={**env, "CAIRN_BASE_URL": "http://127.0.0.1:9"})
    assert remote.returncode != 0 and "--db" in remote.stderr


def _blob_file(store: str, digest: str) -> pathlib.Path:
    return pathlib.Path(store, "sha256", digest[7:9], digest[9:])


def test_a_damaged_or_missing_blob_is_repaired_by_the_next_log(
    server: CairnServer, tmp_path: pathlib.Path
) -> None:
    from cairn.service import LocalService
    from cairn.storage import PACKED_LIMIT, LocalBlobStore

    content = os.urandom(PACKED_LIMIT + 300_000)  # a blob file (smaller ones go in packs)
    digest = digest_bytes(content)
    # Embedded: verify finds the damage (and drops the bad copy); the next log stores it again.
    local = LocalService.open(str(tmp_path / "store"))
    src = tmp_path / "ckpt.bin"
    src.write_bytes(content)
    local.store_file(str(src))
    assert isinstance(local.blobs, LocalBlobStore)
    blob = pathlib.Path(local.blobs.path_of(digest))
    blob.chmod(0o644)
    blob.write_bytes(b"\0" * len(content))
    assert [p.kind for p in local.verify().problems] == ["damaged"]
    assert local.missing_blobs([digest]) == [digest]
    local.store_file(str(src))
    assert local.read_blob(digest) == content and local.verify().ok
    local.close()
    # Server: a blob lost from the store is reported missing, so the next log uploads it again.
    svc = HttpService(server.url, server.create_key("e"), str(tmp_path / "cache"), retries=0)
    _log(svc, "first", content)
    _blob_file(server.store, digest).unlink()
    assert svc.missing_blobs([digest]) == [digest]
    _log(svc, "again", content)
    assert _blob_file(server.store, digest).read_bytes() == content
    svc.close()


def test_abandoned_uploads_are_swept_after_their_age(
    server: CairnServer, tmp_path: pathlib.Path
) -> None:
    headers = {"Authorization": f"Bearer {server.create_key('e')}"}
    content = os.urandom(300_000)
    begun = httpx.post(
        f"{server.url}/api/v1/uploads",
        headers=headers,
        json={"digest": digest_bytes(content), "size": 300 << 30},  # declares 300 GiB, sends little
    )
    assert begun.status_code == 200, begun.text
    upload = begun.json()["id"]
    spool = pathlib.Path(server.store, "tmp", "uploads")
    assert list(spool.glob(f"{upload}*"))
    # Nothing sent yet: the spool file is not stretched to the size the client declared.
    assert (spool / f"{upload}.partial").stat().st_size == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    env |= {"CAIRN_CACHE_DIR": str(tmp_path / "c"), "CAIRN_SERVER_UPLOAD_MAX_AGE": "0"}
    done = _cairn("gc", "--db", server.db, "--store", server.store, "--dry-run", env=env)
    assert done.returncode == 0, done.stderr
    assert list(spool.glob(f"{upload}*")) == []
    gone = httpx.get(f"{server.url}/api/v1/uploads/{upload}", headers=headers)
    assert gone.status_code == 404


def _expire(svc: HttpService, version_id: str) -> None:
    """A TTL of a millisecond from the commit: the version has expired once this returns."""
    svc.set_ttl(version_id, 0.001)


def test_admin_gc_frees_the_storage_of_expired_versions(server: CairnServer) -> None:
    """W&B's TTL through a server: an expired version is hidden at once, and ``POST /admin/gc``
    marks it deleted and frees its blobs; a version without a TTL keeps its own."""
    svc = HttpService(server.url, server.create_key("e"), "/tmp/unused-cache", retries=0)
    kept, gone = os.urandom(200_000), os.urandom(200_000)
    _log(svc, "kept", kept)
    expired = _log(svc, "gone", gone)
    _expire(svc, expired)
    assert [r.id for r in svc.list_versions("e", "p", "gone")] == []  # hidden already
    assert _blob_file(server.store, digest_bytes(gone)).exists()  # but not yet freed
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    gc = httpx.post(
        f"{server.url}/api/v1/admin/gc", headers=admin, json={"grace_seconds": 0}, timeout=60
    )
    assert gc.status_code == 200 and gc.json()["removed_bytes"] >= 200_000, gc.text
    assert not _blob_file(server.store, digest_bytes(gone)).exists()
    assert _blob_file(server.store, digest_bytes(kept)).exists()
    assert svc.resolve("e", "p", "kept", "latest").digest is not None
    svc.close()


def test_a_server_collects_expired_versions_by_itself(tmp_path: pathlib.Path) -> None:
    """The collector thread (``CAIRN_SERVER_GC_INTERVAL``): no admin call, the blobs of an
    expired version go within a few passes, and the pass is logged."""
    store = str(tmp_path / "blobs")
    server = CairnServer(
        str(tmp_path / "catalog.sqlite"),
        store,
        {"CAIRN_SERVER_GC_INTERVAL": "0.2", "CAIRN_SERVER_GC_GRACE": "0"},
    )
    try:
        svc = HttpService(server.url, server.create_key("e"), str(tmp_path / "c"), retries=0)
        kept, gone = os.urandom(200_000), os.urandom(200_000)
        _log(svc, "kept", kept)
        _expire(svc, _log(svc, "gone", gone))
        blob = _blob_file(store, digest_bytes(gone))
        for _ in range(600):  # polls: the pass runs every 0.2 s (bounded wait, no timing test)
            if not blob.exists():
                break
            time.sleep(0.1)
        assert not blob.exists(), "the collector did not free the expired version's blob"
        assert _blob_file(store, digest_bytes(kept)).exists()
        svc.close()
    finally:
        server.stop()
    with open(server.log_path) as f:
        events = [json.loads(line) for line in f if line.startswith("{")]
    passes = [e for e in events if e.get("event") == "ttl_collect"]
    assert passes and passes[0]["expired_versions"] == 1 and passes[0]["removed_bytes"] >= 200_000


def _advisory_waiters(db: str) -> int:
    """Sessions waiting (not granted) for cairn's maintenance lock, as PostgreSQL sees them."""
    import psycopg

    from cairn.service._maintenance_lock import _ADVISORY_KEY

    with psycopg.connect(db, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND ((classid::bigint << 32) | objid::bigint) = %s",
            (_ADVISORY_KEY,),
        ).fetchone()
    return int(row[0]) if row else 0


def test_two_gc_runs_at_once_one_waits_for_the_other(
    server: CairnServer, tmp_path: pathlib.Path
) -> None:
    """The PostgreSQL advisory lock under concurrency: while one gc sweeps (holds the lock,
    here on a connection of this test, as any gc process would), a second `cairn gc --db
    --store` process waits for it (PostgreSQL shows it waiting), removes nothing meanwhile,
    then finishes its own sweep."""
    from cairn.catalog import Catalog
    from cairn.server._backend import catalog_url
    from cairn.service._maintenance_lock import AdvisoryMaintenanceLock

    svc = HttpService(server.url, server.create_key("e"), str(tmp_path / "cache"), retries=0)
    gone = os.urandom(300_000)
    svc.delete_version(_log(svc, "gone", gone), delete_aliases=True)  # its blob is garbage
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    env |= {"CAIRN_DIR": str(tmp_path / "no-store"), "CAIRN_CACHE_DIR": str(tmp_path / "c")}
    blob = _blob_file(server.store, digest_bytes(gone))
    catalog = Catalog(catalog_url(server.db), create=False)
    first = AdvisoryMaintenanceLock(catalog)
    try:
        with first.exclusive():
            second = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "cairn",
                    "gc",
                    *("--db", server.db, "--store", server.store, "--grace", "0", "--json"),
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            deadline = time.monotonic() + 120  # a loaded machine: the process may start slowly
            while _advisory_waiters(server.db) == 0 and second.poll() is None:
                assert time.monotonic() < deadline, "the second gc never asked for the lock"
                time.sleep(0.05)
            assert second.poll() is None, second.communicate()  # waiting, not failed
            assert blob.exists()  # nothing swept while the first gc holds the lock
        out, err = second.communicate(timeout=120)
    finally:
        catalog.dispose()
    assert second.returncode == 0, err
    assert json.loads(out)["removed_blobs"] >= 1 and not blob.exists()
    assert _advisory_waiters(server.db) == 0
    svc.close()
