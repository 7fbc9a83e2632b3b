"""Keys, roles and what a key may see, against a real server process (PostgreSQL + S3)."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from cairn.core import CollectionRecord, ManifestEntry, RunRecord, VersionRecord, digest_bytes
from cairn.errors import (
    ArtifactNotFoundError,
    AuthenticationError,
    BlobNotFoundError,
    DigestMismatchError,
    PermissionDeniedError,
    ValidationError,
)
from cairn.service import CommitRequest, CommitResult
from cairn.service._http import HttpService
from cairn.service._wire import BATCH_TYPE, pack_blobs
from tests._infra import ADMIN_KEY, CairnServer, reset_database


@pytest.fixture(params=["local", "s3"])
def server(request: pytest.FixtureRequest) -> CairnServer:
    srv: CairnServer = request.getfixturevalue(f"server_{request.param}")
    reset_database(srv.db)
    return srv


@pytest.fixture
def clients(server: CairnServer, tmp_path: pathlib.Path) -> Iterator[dict[str, HttpService]]:
    made = {
        "alice": HttpService(
            server.url, server.create_key("alice"), str(tmp_path / "a"), retries=0
        ),
        "bob": HttpService(server.url, server.create_key("bob"), str(tmp_path / "b"), retries=0),
        "reader": HttpService(
            server.url,
            server.create_key("carol", "alice/shared", "read"),
            str(tmp_path / "c"),
            retries=0,
        ),
    }
    yield made
    for svc in made.values():
        svc.close()


def _commit(svc: HttpService, project: str, data: bytes, entity: str = "alice") -> str:
    d = digest_bytes(data)
    svc.store_blobs([(d, data)])
    req = CommitRequest(
        entity=entity,
        project=project,
        name="ds",
        type="dataset",
        changes=[("f.bin", ManifestEntry("f.bin", d, len(data)))],
    )
    result = svc.commit(req)
    assert result.version is not None, result.missing
    return d


def test_every_route_needs_a_key(server: CairnServer) -> None:
    for method, path in (
        ("GET", "/whoami"),
        ("GET", "/openapi.json"),
        ("GET", "/projects"),
        ("POST", "/blobs/missing"),
        ("GET", "/blobs/sha256:" + "0" * 64),
        ("GET", "/projects/a/b/artifacts/c/resolve"),
    ):
        for headers in ({}, {"Authorization": "Bearer nonsense"}, {"Authorization": "Basic x"}):
            resp = httpx.request(method, f"{server.url}/api/v1{path}", headers=headers, json={})
            assert resp.status_code == 401, (method, path, headers)
    bad = HttpService(server.url, "cairn_0123456789abcdef_wrong", "/tmp/unused-cache", retries=0)
    with pytest.raises(AuthenticationError, match="401"):
        bad.list_projects()
    bad.close()


def test_openapi_document_lists_the_versioned_routes(server: CairnServer) -> None:
    resp = httpx.get(
        f"{server.url}/api/v1/openapi.json",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        timeout=120,  # built on first request: over httpx's 5 s default on a loaded machine
    )
    doc = resp.json()
    paths = doc["paths"]
    assert "/api/v1/projects/{entity}/{project}/commit" in paths
    assert all(p.startswith("/api/v1/") for p in paths)

    # Answers have real schemas, made from the same dataclasses the records travel as.
    def answer(method: str, path: str) -> dict[str, object]:
        ok = paths[f"/api/v1{path}"][method]["responses"]["200"]
        schema: dict[str, object] = ok["content"]["application/json"]["schema"]
        return schema

    assert answer("get", "/versions/{version_id}") == {"$ref": "#/components/schemas/VersionRecord"}
    listed = answer("get", "/projects/{entity}/{project}/artifacts/{name}/versions")
    assert listed["items"] == {"$ref": "#/components/schemas/VersionRecord"}
    assert answer("post", "/search") == {"$ref": "#/components/schemas/SearchResult"}
    schemas = doc["components"]["schemas"]
    for record in (VersionRecord, RunRecord, CollectionRecord, CommitResult):
        fields = {f.name for f in dataclasses.fields(record)}
        assert set(schemas[record.__name__]["properties"]) == fields, record


def test_a_key_sees_and_changes_only_its_projects(clients: dict[str, HttpService]) -> None:
    alice, bob, reader = clients["alice"], clients["bob"], clients["reader"]
    _commit(alice, "shared", b"shared data")
    _commit(alice, "private", b"private data")
    assert reader.resolve("alice", "shared", "ds", None).version == "v0"
    assert reader.list_projects() == [("alice", "shared")]
    # A key that may not read a project is told it is not found (404), as if it did not exist.
    with pytest.raises(ArtifactNotFoundError, match="not found"):
        reader.resolve("alice", "private", "ds", None)
    with pytest.raises(ArtifactNotFoundError):
        bob.resolve("alice", "shared", "ds", None)
    with pytest.raises(PermissionDeniedError, match="403"):  # read-only: no commits
        _commit(reader, "shared", b"more", entity="alice")
    with pytest.raises(ArtifactNotFoundError):  # bob may not even read alice/shared
        _commit(bob, "shared", b"bob's", entity="alice")
    version = alice.resolve("alice", "private", "ds", None)
    with pytest.raises(ArtifactNotFoundError) as hidden:
        bob.get_version(version.id)
    with pytest.raises(ArtifactNotFoundError) as absent:
        bob.get_version("f" * len(version.id))
    assert str(hidden.value).replace(version.id, "ID") == str(absent.value).replace(
        "f" * len(version.id), "ID"
    )
    with pytest.raises(PermissionDeniedError):
        reader.delete_version(alice.resolve("alice", "shared", "ds", None).id)


def test_presence_checks_never_reveal_other_projects_content(
    clients: dict[str, HttpService], tmp_path: pathlib.Path
) -> None:
    alice, bob, reader = clients["alice"], clients["bob"], clients["reader"]
    secret = _commit(alice, "private", b"alice's secret weights")
    shared = _commit(alice, "shared", b"shared weights")
    # bob's key cannot tell that alice stored this content, nor read it.
    assert bob.missing_blobs([secret]) == [secret]
    with pytest.raises(BlobNotFoundError):
        bob.read_blob(secret)
    # A commit that names the digest without the content is told to upload it.
    req = CommitRequest(
        entity="bob",
        project="p",
        name="steal",
        type="dataset",
        changes=[("x", ManifestEntry("x", secret, 22))],
    )
    assert bob.commit(req).missing == (secret,)
    # The reader sees exactly the shared project's blobs (files and manifest pages).
    assert reader.missing_blobs([secret, shared]) == [secret]
    v = reader.resolve("alice", "shared", "ds", None)
    assert v.digest is not None and reader.read_blob(v.digest)
    dest = str(tmp_path / "f")
    reader.download_blob(shared, dest)
    assert pathlib.Path(dest).read_bytes() == b"shared weights"
    # Uploading the content proves bob has it: then he may use it, in his own project.
    bob.store_blobs([(secret, b"alice's secret weights")])
    assert bob.missing_blobs([secret]) == []
    assert bob.commit(req).version is not None


def test_uploads_that_do_not_match_their_digest_are_refused(
    server: CairnServer, clients: dict[str, HttpService], tmp_path: pathlib.Path
) -> None:
    alice = clients["alice"]
    claimed = digest_bytes(b"the real content")
    key = alice._client.api.headers["Authorization"]
    body = pack_blobs([(claimed, b"something else")])
    resp = httpx.post(
        f"{server.url}/api/v1/blobs/batch",
        content=body,
        headers={"Authorization": key, "Content-Type": BATCH_TYPE},
    )
    assert resp.status_code == 422 and "mismatch" in resp.text
    assert alice.missing_blobs([claimed]) == [claimed]
    # A large upload (in parts or presigned) with other content is refused at completion.
    big = os.urandom(300_000)
    wrong = digest_bytes(big[:-1] + bytes([big[-1] ^ 0xFF]))  # the last byte flipped
    with pytest.raises(DigestMismatchError):
        alice._uploads.upload(wrong, len(big), lambda off, n: big[off : off + n], None)
    assert alice.missing_blobs([wrong]) == [wrong]
    req = CommitRequest(
        entity="alice",
        project="p",
        name="ds",
        type="dataset",
        changes=[("b", ManifestEntry("b", wrong, len(big)))],
    )
    assert alice.commit(req).missing == (wrong,)


def test_entry_paths_and_names_are_validated_by_the_server(
    server: CairnServer, clients: dict[str, HttpService]
) -> None:
    alice = clients["alice"]
    d = _commit(alice, "p", b"x")
    headers = {"Authorization": alice._client.api.headers["Authorization"]}
    for path in ("../escape", "/abs", "a//b", "a\\b", "nul\x00", ""):
        resp = httpx.post(
            f"{server.url}/api/v1/projects/alice/p/commit",
            headers=headers,
            json={"name": "ds", "type": "dataset", "changes": [[path, [path, d, 1]]]},
        )
        assert resp.status_code == 400, path
    resp = httpx.post(
        f"{server.url}/api/v1/projects/alice/p/commit",
        headers=headers,
        json={"name": "bad/name", "type": "dataset", "changes": []},
    )
    assert resp.status_code == 400
    with pytest.raises(ValidationError):
        alice.resolve("alice", "p", "ds", "x" * 500)


def test_request_size_limits(server: CairnServer, clients: dict[str, HttpService]) -> None:
    headers = {"Authorization": clients["alice"]._client.api.headers["Authorization"]}
    too_big = b"\0" * ((64 << 20) + (2 << 20))
    resp = httpx.post(
        f"{server.url}/api/v1/blobs/batch",
        content=too_big,
        headers={**headers, "Content-Type": BATCH_TYPE},
        timeout=60,
    )
    assert resp.status_code == 413


def test_keys_command_creates_and_revokes(server: CairnServer, tmp_path: pathlib.Path) -> None:
    env = {
        **os.environ,
        "CAIRN_BASE_URL": server.url,
        "CAIRN_API_KEY": ADMIN_KEY,
        "CAIRN_CACHE_DIR": str(tmp_path / "cache"),
    }
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "cairn",
            "keys",
            "create",
            "--user",
            "dave",
            "--project",
            "team/models",
            "--role",
            "read",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    key = out.stdout.strip()
    svc = HttpService(server.url, key, str(tmp_path / "d"), retries=0)
    assert svc.default_entity == "dave"
    assert svc.list_collections("team", "models") == []
    with pytest.raises(ArtifactNotFoundError):
        svc.list_collections("team", "other")
    # A non-admin key cannot make keys.
    denied = subprocess.run(
        [sys.executable, "-m", "cairn", "keys", "create", "--user", "eve"],
        env={**env, "CAIRN_API_KEY": key},
        capture_output=True,
        text=True,
    )
    assert denied.returncode == 1 and "403" in denied.stderr
    _, key_id, secret = key.split("_", 2)  # cairn_<id>_<secret>; the secret may hold "_"
    subprocess.run(
        [sys.executable, "-m", "cairn", "keys", "revoke", key_id],
        env=env,
        check=True,
        capture_output=True,
    )
    # Revocation reaches every server once its key cache expires (two seconds). Polled, with a
    # bound far above that (a busy machine may take longer), not a timing assertion.
    for _ in range(300):
        try:
            svc.list_collections("team", "models")
        except AuthenticationError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the revoked key still works after 300 tries, 0.1 s apart")
    svc.close()
    listed = subprocess.run(
        [sys.executable, "-m", "cairn", "keys", "list"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert key_id in listed.stdout and secret not in listed.stdout


def test_w_and_b_routes_check_the_keys_grants(clients: dict[str, HttpService]) -> None:
    """Collections and runs of a project (W&B's public API) obey the same grants."""
    from cairn.core._records import RunRecord

    alice, bob, reader = clients["alice"], clients["bob"], clients["reader"]
    _commit(alice, "shared", b"w&b routes")
    alice.start_run(RunRecord(id="r1", entity="alice", project="shared", name="r1"))
    assert [r.id for r in reader.list_runs("alice", "shared")] == ["r1"]
    assert reader.get_collection("alice", "shared", "ds").name == "ds"
    with pytest.raises(ArtifactNotFoundError):  # bob may not read alice/shared: 404
        bob.list_runs("alice", "shared")
    with pytest.raises(ArtifactNotFoundError):
        bob.get_collection("alice", "shared", "ds")
    with pytest.raises(ArtifactNotFoundError):
        bob.delete_collection("alice", "shared", "ds")
    for denied in (
        lambda: reader.delete_run("alice", "shared", "r1"),
        lambda: reader.update_collection("alice", "shared", "ds", tags=["x"]),
        lambda: reader.delete_collection("alice", "shared", "ds"),
    ):
        with pytest.raises(PermissionDeniedError):
            denied()
    assert alice.update_collection("alice", "shared", "ds", tags=["x"]).tags == ("x",)
    alice.delete_run("alice", "shared", "r1")
    assert alice.list_runs("alice", "shared") == []


def test_registries_are_granted_as_projects(
    server: CairnServer, clients: dict[str, HttpService], tmp_path: pathlib.Path
) -> None:
    """Linking into a registry needs write on registry/wandb-registry-<name>; reading a link
    (and its content) needs read there, not on the source project."""
    alice = clients["alice"]
    data = b"registry weights"
    digest = _commit(alice, "train", data)
    source = alice.resolve("alice", "train", "ds", None)
    with pytest.raises(ArtifactNotFoundError):  # alice may not even read the registry: 404
        alice.link_version(source.id, "registry", "wandb-registry-model", "churn", ["prod"])
    publisher = HttpService(
        server.url,
        server.create_key("alice", "registry/wandb-registry-model", "write"),
        str(tmp_path / "pub"),
        retries=0,
    )
    consumer = HttpService(
        server.url,
        server.create_key("dave", "registry/wandb-registry-model", "read"),
        str(tmp_path / "con"),
        retries=0,
    )
    try:
        with pytest.raises(ArtifactNotFoundError):  # the publisher key cannot read alice/train
            publisher.link_version(source.id, "registry", "wandb-registry-model", "churn")
        both = HttpService(server.url, server.create_key("alice"), str(tmp_path / "both"))
        with pytest.raises(ArtifactNotFoundError):
            both.link_version(source.id, "registry", "wandb-registry-model", "churn")
        both.close()
        admin = HttpService(server.url, ADMIN_KEY, str(tmp_path / "admin"), retries=0)
        link = admin.link_version(source.id, "registry", "wandb-registry-model", "churn", ["prod"])
        admin.close()
        got = consumer.resolve("registry", "wandb-registry-model", "churn", "prod")
        assert got.id == link.id and got.source_version_id == source.id
        assert consumer.read_blob(digest) == data  # the content, through the registry grant
        with pytest.raises(ArtifactNotFoundError):
            consumer.get_version(source.id)  # but not the source project (404, as if absent)
        assert [r.name for r in consumer.list_registries()] == ["model"]
        with pytest.raises(PermissionDeniedError):
            consumer.unlink_version(link.id)
        with pytest.raises(ArtifactNotFoundError):  # no grant on that registry at all: 404
            consumer.create_registry("mine")
    finally:
        publisher.close()
        consumer.close()
