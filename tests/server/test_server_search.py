"""Search on a server (REST and web UI): a key finds only what its grants let it read."""

from __future__ import annotations

import html
import os
import pathlib
import re
import subprocess
import sys
from typing import Any
from urllib.parse import quote

import httpx
import pytest

import cairn
from cairn.service import SEARCH_KINDS as KINDS
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


def _log_two_versions(server: CairnServer, key: str, project: str, secret: str) -> None:
    """Two versions of a dataset (a CSV and a text file that change, metadata, tags, an
    alias) and the run that logged them with a little history: every kind of page exists."""
    os.environ["CAIRN_BASE_URL"], os.environ["CAIRN_API_KEY"] = server.url, key
    try:
        from cairn.sdk import reset_services

        reset_services()
        for i in range(2):
            art = cairn.Artifact(
                "data",
                "dataset",
                metadata={"owner": secret, "acc": 0.5 + i / 10, "nested": {"tag": secret}},
                description=f"{secret} words {i}",
            )
            art.add_file(write(f"src-{project}/{i}/t.csv", f"id,{secret}\n1,{i}\n"), name="t.csv")
            art.add_file(write(f"src-{project}/{i}/notes.txt", f"{secret} {i}\n"), name="notes.txt")
            with cairn.init(project=project, name=f"{secret}-run-{i}") as run:
                run.log({"loss": 1.0 / (i + 1)})
                run.log_artifact(art, aliases=[f"{secret}-alias"], tags=[f"{secret}-tag", "shared"])
    finally:
        reset_services()
        del os.environ["CAIRN_BASE_URL"], os.environ["CAIRN_API_KEY"]


def _crawl(b: Browser, starts: list[str], limit: int = 400) -> dict[str, str]:
    """Every page reached from ``starts`` by the links of the pages (this server's, not the
    sign-out or static files), each read once: {path: text}."""
    seen: dict[str, str] = {}
    queue = list(starts)
    while queue and len(seen) < limit:
        path = queue.pop(0)
        if path in seen:
            continue
        r = b.get(path)
        assert r.status_code in (200, 303, 307), (path, r.status_code, r.text[:300])
        if r.status_code != 200:
            queue.append(r.headers["location"])
            seen[path] = ""
            continue
        seen[path] = r.text
        if not r.headers["content-type"].startswith("text/html"):
            continue
        for link in re.findall(r'href="(/[^"#]*)', r.text):
            link = html.unescape(link)
            if not link.startswith(("/-/static", "/-/logout")) and link not in seen:
                queue.append(link)
    assert not queue, f"more than {limit} pages"
    return seen


def test_a_crawl_with_each_of_two_keys_finds_nothing_beyond_its_grants(
    server: CairnServer,
) -> None:
    """The web UI crawled page by page with each of two keys of different grants, from the
    projects page and from searches that name the other key's things: every page answers,
    and nothing of the other key's project (names, metadata, descriptions, file contents,
    runs) appears in any of them; the crawl reaches every kind of page."""
    alice = server.create_key("alice", "alice/vision", "write")
    bob = server.create_key("bob", "bob/private", "read")
    bob_writer = server.create_key("bob", "bob/private", "write")
    _log_two_versions(server, alice, "vision", "sparrow")
    _log_two_versions(server, bob_writer, "private", "bluebird")
    searches = ["", "data", "shared", "tag:shared", "words", "acc>0.1", "type:dataset"]
    for key, mine, theirs in ((alice, "sparrow", "bluebird"), (bob, "bluebird", "sparrow")):
        project = "alice/vision" if mine == "sparrow" else "bob/private"
        other = "bob/private" if mine == "sparrow" else "alice/vision"
        b = Browser(server.url)
        assert b.sign_in(key).status_code == 303
        starts = ["/"] + [f"/-/search?q={quote(q)}" for q in searches]
        starts += [
            f"/-/search?q={quote(q)}" for q in (theirs, f"owner:{theirs}", f"tag:{theirs}-tag")
        ]
        starts += [f"/-/search?q={quote(q)}&kind={k}" for q in ("", "data") for k in KINDS]
        pages = _crawl(b, starts)
        for path, text in pages.items():
            assert other not in html.unescape(text), path
            if theirs in path:  # a search for the other key's words: the page echoes them
                assert "Nothing matches" in text, path
            else:
                assert theirs not in text, path
        found = html.unescape(pages["/-/search?q=shared"])
        assert f"{project}/data:v1" in found and f"{project}/data:v0" in found
        assert "Nothing matches" in pages[f"/-/search?q={quote(theirs)}"]
        # Every kind of page was reached (the crawl is not vacuous).
        collection = f"/{project}/artifacts/dataset/data"
        for wanted in (
            collection,
            f"{collection}/v1",
            f"{collection}/v1/diff",
            f"{collection}/v1/lineage",
            f"{collection}/v1/files",
            f"{collection}/v1/file/t.csv",
            f"/{project}/runs/",
        ):
            assert any(p.startswith(wanted) for p in pages), (wanted, sorted(pages))
        assert any(mine in text for text in pages.values())
        # The other key's pages, asked for by address, are not there.
        for path in (f"/{other}", f"/{other}/artifacts/dataset/data/v0"):
            assert b.get(path).status_code in (403, 404), path
