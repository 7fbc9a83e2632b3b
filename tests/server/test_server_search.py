"""Search on a server (REST and web UI): a key finds only what its grants let it read."""

from __future__ import annotations

import html
import os
import pathlib
import re
import subprocess
import sys
from typing import Any

import httpx
import pytest

import cairn
from tests._infra import ADMIN_KEY, CairnServer, reset_database
from tests.conftest import write
from tests.server.test_server_ui import Browser


@pytest.fixture
def server(server_local: CairnServer) -> CairnServer:
    reset_database(server_local.db)
    return server_local


def _log(server: CairnServer, key: str, project: str, metadata: dict[str, Any]) -> None:
    os.environ["CAIRN_BASE_URL"], os.environ["CAIRN_API_KEY"] = server.url, key
    try:
        from cairn.sdk import reset_services

        reset_services()
        art = cairn.Artifact("data", "dataset", metadata=metadata, description="shared words")
        art.add_file(write(f"src-{project}/a.txt", project), name="a.txt")
        with cairn.init(project=project, name=f"run-{project}") as run:
            run.log_artifact(art, tags=["nightly"])
    finally:
        reset_services()
        del os.environ["CAIRN_BASE_URL"], os.environ["CAIRN_API_KEY"]


def _search(server: CairnServer, key: str, **body: Any) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/v1/search",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def test_search_stays_within_the_keys_grants(server: CairnServer, tmp_path: pathlib.Path) -> None:
    alice = server.create_key("alice", "alice/vision", "write")
    bob = server.create_key("bob", "bob/private", "write")
    _log(server, alice, "vision", {"owner": "alice", "acc": 0.8})
    _log(server, bob, "private", {"owner": "bob", "codename": "bluebird", "acc": 0.9})

    def versions(key: str, **body: Any) -> list[str]:
        r = _search(server, key, **body)
        assert r.status_code == 200, r.text
        return [f"{v['entity']}/{v['project']}/{v['name']}" for v in r.json()["versions"]]

    for query in ("", "data", "tag:nightly", "acc>0.5", "shared"):
        assert versions(alice, query=query) == ["alice/vision/data"], query
        assert versions(bob, query=query) == ["bob/private/data"], query
    assert versions(alice, query="bluebird") == [] and versions(alice, query="owner:bob") == []
    assert versions(bob, query="codename:bluebird") == ["bob/private/data"]
    everything = _search(server, alice, query="").json()
    assert everything["projects"] == [["alice", "vision"]]
    assert [r["project"] for r in everything["runs"]] == ["vision"]
    assert everything["totals"] == {"project": 1, "collection": 1, "version": 1, "run": 1}
    # Asking for another key's project narrows the search to nothing; naming its collection
    # is refused like any other read of it.
    assert versions(alice, query="", projects=[["bob", "private"]]) == []
    denied = _search(server, alice, kinds=["version"], collection=["bob", "private", "data"])
    assert denied.status_code == 404  # a project the key may not read: as if it did not exist
    assert _search(server, alice, query="acc>x").status_code == 400
    assert _search(server, alice, limit=10_000).status_code == 400
    assert _search(server, "ck-not-a-key").status_code == 401
    # The admin key sees both.
    assert len(versions(ADMIN_KEY, query="tag:nightly")) == 2

    # The web UI answers through the same authorization.
    b = Browser(server.url)
    assert b.sign_in(alice).status_code == 303
    page = html.unescape(b.get("/-/search?q=data").text)
    assert "alice/vision/data:v0" in page and "bob/private" not in page
    assert "Nothing matches" in b.get("/-/search?q=bluebird").text
    assert b.get("/bob/private/artifacts/dataset/data?q=tag%3Anightly").status_code in (403, 404)
    table = b.get("/alice/vision/artifacts/dataset/data?q=tag%3Anightly&col=owner").text
    assert '<tr id="v0">' in table and "<code>alice</code>" in table
    # A server's snippets say where the server is (and never carry a key).
    version = html.unescape(b.get("/alice/vision/artifacts/dataset/data/v0").text)
    assert f"export CAIRN_BASE_URL={server.url}" in version
    assert alice not in version and 'run.use_artifact("alice/vision/data:v0")' in version
    # ... and they run, with the key in the environment as the snippet says.
    match = re.search(r'<pre id="snippet-api-download"><code>(.*?)</code></pre>', version, re.S)
    assert match is not None
    env = {
        **os.environ,
        "CAIRN_BASE_URL": server.url,
        "CAIRN_API_KEY": alice,
        "CAIRN_CACHE_DIR": str(tmp_path / "cache"),
    }
    done = subprocess.run(
        [sys.executable, "-c", match.group(1)], cwd=tmp_path, env=env, capture_output=True
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "data-v0" / "a.txt").read_text() == "vision"
