"""The authorization matrix (issue 12, item 7): every route of the OpenAPI document x {no key,
wrong key, revoked key, read key, write key, key of another project, admin key}.

Routes come from the server's own document, so a new route is probed as soon as it exists.
Expected: 401 without a valid key; 403 for admin routes without admin, and for changes with a
read key; 404 (as if it did not exist) for a project the key may not read; never 401/403 for a
key that holds the role. A route the classifier does not know fails the test.
"""

from __future__ import annotations

import os
import pathlib
import re

import httpx
import pytest

from cairn.core import ManifestEntry, digest_bytes
from cairn.core._records import RunRecord
from cairn.service import CommitRequest
from cairn.service._http import HttpService
from tests._infra import ADMIN_KEY, CairnServer, reset_database

KEYS = ("none", "wrong", "revoked", "read", "other", "write", "admin")
METHODS = ("get", "post", "put", "patch", "delete")


def _kind(method: str, path: str) -> str:
    if path.startswith(("/keys", "/admin/")):
        return "admin"
    if path in (
        "/whoami",
        "/projects",
        "/blobs/missing",
        "/blobs/fetch",
        "/blobs/urls",
        "/search",
        "/registries",
    ):
        return "any"
    if path.startswith("/uploads") or path in ("/uploads", "/blobs/batch"):
        return "upload"
    if path == "/versions/{version_id}/users":
        return "use"  # read the version, write the run's project
    if path.startswith(("/projects/{entity}/{project}", "/versions/{version_id}", "/blobs/")):
        return "read" if method == "get" else "write"
    raise AssertionError(f"the matrix does not know route {method.upper()} {path}: classify it")


def _expected(kind: str, who: str) -> set[int] | None:
    """The statuses allowed, or None for "any answer but 401/403" (the key holds the role)."""
    if who in ("none", "wrong", "revoked"):
        return {401}
    if who == "admin":
        return None
    if kind == "admin":
        return {403}
    if kind == "any":
        return None
    if kind == "upload":
        return {403} if who == "read" else None
    if kind == "read":
        return {404} if who == "other" else None
    if kind in ("write", "use"):
        return {404} if who == "other" else {403} if who == "read" else None
    raise AssertionError(kind)


def _bodies(digest: str) -> dict[str, dict[str, object]]:
    version = {"name": "ds", "type": "dataset", "changes": []}
    return {
        "post /projects/{entity}/{project}/runs": {"id": "r2", "name": "r2"},
        "post /projects/{entity}/{project}/runs/{run_id}/finish": {"state": "finished"},
        "post /projects/{entity}/{project}/runs/{run_id}/history": {
            "rows": ['{"_step": 0, "loss": 1}'],
            "summary": '{"loss": 1}',
        },
        "post /projects/{entity}/{project}/commit": version,
        "post /projects/{entity}/{project}/stage": {**version, "distributed_id": "d1"},
        "post /projects/{entity}/{project}/finish": {**version, "distributed_id": "d1"},
        "post /versions/{version_id}/users": {"entity": "alice", "project": "p", "run_id": "r1"},
        "post /uploads": {"digest": digest, "size": 1000},
        "post /uploads/{upload_id}/parts/{number}/url": {"checksum": "x"},
        "post /uploads/{upload_id}/name": {"digest": digest},
        "post /blobs/missing": {"digests": [digest]},
        "post /blobs/fetch": {"digests": [digest]},
        "post /blobs/urls": {"digests": [digest]},
        "post /admin/cleanup-pending": {"older_than_seconds": 3600},
        "post /keys": {"user": "zz", "role": "read"},
        "post /versions/{version_id}/links": {"entity": "alice", "project": "p", "name": "l"},
        "post /projects/{entity}/{project}/runs/import": {"id": "r3", "name": "r3"},
        "post /projects/{entity}/{project}/import": {
            "name": "ds",
            "type": "dataset",
            "digest": digest,
            "created_at": 1.0,
        },
    }


@pytest.fixture
def world(server_local: CairnServer, tmp_path: pathlib.Path) -> dict[str, object]:
    reset_database(server_local.db)
    keys = {
        "read": server_local.create_key("carol", "alice/p", "read"),
        "write": server_local.create_key("alice"),
        "other": server_local.create_key("bob"),
        "admin": ADMIN_KEY,
        "revoked": server_local.create_key("alice"),
    }
    keys["wrong"] = keys["write"][:-4] + "xxxx"
    alice = HttpService(server_local.url, keys["write"], str(tmp_path / "c"), retries=0)
    alice.start_run(RunRecord(id="r1", entity="alice", project="p", name="r1"))
    data = os.urandom(1000)
    d = digest_bytes(data)
    alice.store_blobs([(d, data)])
    version = alice.commit(
        CommitRequest(
            entity="alice",
            project="p",
            name="ds",
            type="dataset",
            changes=[("f", ManifestEntry("f", d, len(data)))],
            aliases=["best"],
        )
    ).version
    assert version is not None
    admin = HttpService(server_local.url, ADMIN_KEY, str(tmp_path / "a"), retries=0)
    admin.revoke_key(keys["revoked"])
    throwaway = server_local.create_key("zed").split("_")[1]
    admin.close()
    alice.close()
    return {
        "keys": keys,
        "params": {
            "entity": "alice",
            "project": "p",
            "name": "ds",
            "version_id": version.id,
            "alias": "best",
            "digest": d,
            "upload_id": "0" * 32,
            "number": "0",
            "run_id": "r1",
            "key_id": throwaway,
        },
    }


def test_every_route_answers_every_kind_of_key_as_it_should(
    server_local: CairnServer, world: dict[str, object]
) -> None:
    keys = world["keys"]
    params = world["params"]
    assert isinstance(keys, dict) and isinstance(params, dict)
    base = f"{server_local.url}/api/v1"
    doc = httpx.get(
        f"{base}/openapi.json",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=120,  # built on first request: over httpx's 5 s default on a loaded machine
    )
    routes = [(m, p.removeprefix("/api/v1")) for p, ops in doc.json()["paths"].items() for m in ops]
    routes = [(m, p) for m, p in routes if m in METHODS]
    assert len(routes) >= 30
    unexpected: list[str] = []
    probes = 0
    with httpx.Client(timeout=30) as http:
        for who in KEYS:
            headers = {} if who == "none" else {"Authorization": f"Bearer {keys[who]}"}
            for method, path in routes:
                url = base + re.sub(r"\{(\w+)\}", lambda m: str(params[m.group(1)]), path)
                # A valid body: the answer is about the key, not about a malformed request.
                body = _bodies(str(params["digest"])).get(f"{method} {path}", {})
                resp = http.request(method.upper(), url, headers=headers, json=body)
                probes += 1
                allowed = _expected(_kind(method, path), who)
                ok = (
                    resp.status_code not in (401, 403) and resp.status_code < 500
                    if allowed is None
                    else resp.status_code in allowed
                )
                if not ok:
                    unexpected.append(f"{who:8} {method.upper():6} {path}: {resp.status_code}")
    assert probes >= 7 * 30
    assert unexpected == [], "\n".join(unexpected)
