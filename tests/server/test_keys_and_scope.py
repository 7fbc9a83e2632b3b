"""Keys and scope (issue 12, item 1): no wildcard names, blobs by grants, 404 for what a key may
not read, no catalog address or secret in any message, and a request log a shipper can read."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import httpx
import pytest

from cairn.catalog import Catalog
from cairn.core import ManifestEntry, digest_bytes
from cairn.errors import BlobNotFoundError, CommError, ValidationError
from cairn.service import CommitRequest
from cairn.service._http import HttpService
from tests._infra import ADMIN_KEY, CairnServer, free_port, reset_database


@pytest.fixture
def server(server_local: CairnServer) -> CairnServer:
    reset_database(server_local.db)
    return server_local


def _admin(server: CairnServer, method: str, path: str, **kw: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    return httpx.request(method, f"{server.url}/api/v1{path}", headers=headers, timeout=30, **kw)  # type: ignore[arg-type]


def _commit(svc: HttpService, entity: str, project: str, data: bytes) -> str:
    d = digest_bytes(data)
    svc.store_blobs([(d, data)])
    req = CommitRequest(
        entity=entity,
        project=project,
        name="ds",
        type="dataset",
        changes=[("f.bin", ManifestEntry("f.bin", d, len(data)))],
    )
    assert svc.commit(req).version is not None
    return d


@pytest.mark.parametrize("user", ["*", "a*", "..", "."])
def test_a_user_name_that_is_a_grant_pattern_is_refused(server: CairnServer, user: str) -> None:
    resp = _admin(server, "POST", "/keys", json={"user": user, "role": "write"})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["type"] == "ValidationError"


@pytest.mark.parametrize("project", ["*", "x*", "..", "."])
def test_a_project_or_entity_named_like_a_pattern_is_refused(
    server: CairnServer, tmp_path: pathlib.Path, project: str
) -> None:
    svc = HttpService(server.url, ADMIN_KEY, str(tmp_path), retries=0)
    try:
        for entity, proj in ((project, "p"), ("alice", project)):
            with pytest.raises(ValidationError):
                _commit(svc, entity, proj, b"x")
        assert svc.list_projects() == []
    finally:
        svc.close()


def test_blob_reads_follow_the_keys_grants_not_its_user(
    server: CairnServer, tmp_path: pathlib.Path
) -> None:
    writer = HttpService(server.url, server.create_key("alice"), str(tmp_path / "w"), retries=0)
    reader = HttpService(
        server.url, server.create_key("alice", "alice/shared", "read"), str(tmp_path / "r")
    )
    try:
        secret = _commit(writer, "alice", "private", b"alice's private weights")
        shared = _commit(writer, "alice", "shared", b"alice's shared weights")
        # The same user, but this key reads only alice/shared.
        assert reader.missing_blobs([secret, shared]) == [secret]
        with pytest.raises(BlobNotFoundError):
            reader.read_blob(secret)
        assert reader.read_blob(shared) == b"alice's shared weights"
    finally:
        writer.close()
        reader.close()


def test_revoke_takes_a_whole_key_and_never_echoes_a_secret(
    server: CairnServer, tmp_path: pathlib.Path
) -> None:
    env = {**os.environ, "CAIRN_BASE_URL": server.url, "CAIRN_API_KEY": ADMIN_KEY}
    env["CAIRN_CACHE_DIR"] = str(tmp_path / "cache")
    key = server.create_key("dave")
    secret = key.split("_", 2)[2]
    for given in (key, key[len("cairn_") :]):
        done = subprocess.run(
            [sys.executable, "-m", "cairn", "keys", "revoke", given],
            env=env,
            capture_output=True,
            text=True,
        )
        assert secret not in done.stdout + done.stderr
    listed = [k for k in _admin(server, "GET", "/keys").json() if k["user"] == "dave"]
    assert listed and listed[0]["revoked"]
    bad = subprocess.run(
        [sys.executable, "-m", "cairn", "keys", "revoke", "not-a-key-" + secret],
        env=env,
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "id" in bad.stderr and secret not in bad.stderr
    resp = _admin(server, "DELETE", f"/keys/xyz_{secret}")
    assert resp.status_code == 400 and secret not in resp.text


def test_requests_and_refused_keys_are_logged_as_json_lines_without_secrets(
    server: CairnServer,
) -> None:
    key = server.create_key("erin")
    key_id, secret = key.split("_", 2)[1:]
    headers = {"Authorization": f"Bearer {key}"}
    assert httpx.get(f"{server.url}/api/v1/whoami", headers=headers).status_code == 200
    wrong = f"cairn_{key_id}_{'x' * 43}"
    resp = httpx.get(f"{server.url}/api/v1/whoami", headers={"Authorization": f"Bearer {wrong}"})
    assert resp.status_code == 401
    _admin(server, "DELETE", f"/keys/{key_id}_{secret}")
    text = pathlib.Path(server.log_path).read_text()
    assert secret not in text and "x" * 43 not in text
    records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    # Looked up, not taken by position: a server of several processes (or a line written just
    # after its answer was sent) may log two quick requests in either order.
    whoami = [
        r for r in records if r.get("event") == "request" and r.get("path") == "/api/v1/whoami"
    ]
    ok = {"method": "GET", "path": "/api/v1/whoami", "status": 200, "key_id": key_id}
    assert any(ok.items() <= r.items() for r in whoami), whoami
    assert any(r["status"] == 401 and r["key_id"] is None for r in whoami), whoami
    refused = [r for r in records if r.get("event") == "key_refused"]
    assert refused and refused[-1]["key_id"] == key_id and refused[-1]["level"] == "warning"


def test_catalog_errors_never_name_its_host_port_or_credentials() -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql+psycopg://cairnuser:s3cretpw@127.0.0.1:{port}/cairndb?connect_timeout=2"
    with pytest.raises(CommError) as err:
        Catalog(url, create=False)
    text = str(err.value)
    assert "cairndb" in text
    for leak in ("127.0.0.1", str(port), "cairnuser", "s3cretpw"):
        assert leak not in text, text
