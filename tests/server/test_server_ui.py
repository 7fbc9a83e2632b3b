"""The web UI served by ``cairn server``: signed in with an API key, it shows what the key may
read and changes aliases only where the key may write (a real server process)."""

from __future__ import annotations

import html
import os
import re
import shlex
import subprocess
import sys
from typing import Any

import httpx
import pytest

import cairn
from tests._infra import CairnServer, reset_database
from tests.conftest import write


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match is not None, "no CSRF token in the page"
    return match.group(1)


class Browser:
    """An HTTP client that keeps the UI's cookies like a browser on localhost does (Chromium
    sends Secure cookies to http://127.0.0.1; httpx would not, so they are kept by hand)."""

    def __init__(self, url: str) -> None:
        self.client = httpx.Client(base_url=url, follow_redirects=False, timeout=30)
        self.cookies: dict[str, str] = {}

    def _remember(self, r: httpx.Response) -> httpx.Response:
        for header in r.headers.get_list("set-cookie"):
            name, _, rest = header.partition("=")
            value = rest.split(";", 1)[0]
            if "max-age=0" in header.lower() or not value:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return r

    def _cookie_header(self) -> dict[str, str]:
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}

    def get(self, path: str) -> httpx.Response:
        return self._remember(self.client.get(path, headers=self._cookie_header()))

    def post(self, path: str, data: dict[str, str]) -> httpx.Response:
        headers = {**self._cookie_header(), "Origin": str(self.client.base_url).rstrip("/")}
        return self._remember(self.client.post(path, data=data, headers=headers))

    def sign_in(self, key: str) -> httpx.Response:
        page = self.get("/-/login")
        return self.post("/-/login", {"csrf_token": _csrf(page.text), "api_key": key, "next": "/"})


@pytest.fixture
def server(server_local: CairnServer) -> CairnServer:
    reset_database(server_local.db)
    return server_local


def _log(server: CairnServer, key: str, project: str, files: dict[str, str]) -> cairn.Artifact:
    os.environ["CAIRN_BASE_URL"], os.environ["CAIRN_API_KEY"] = server.url, key
    try:
        from cairn.sdk import reset_services

        reset_services()
        art = cairn.Artifact("data", "dataset", description="<b>not bold</b>")
        for path, content in files.items():
            art.add_file(write(f"src-{project}/{path}", content), name=path)
        with cairn.init(project=project) as run:
            run.log({"loss": 0.5})
            run.log({"loss": 0.25})
            run.log_artifact(art)
        return art
    finally:
        reset_services()
        del os.environ["CAIRN_BASE_URL"], os.environ["CAIRN_API_KEY"]


def test_server_ui_behind_api_keys(server: CairnServer) -> None:
    alice = server.create_key("alice", "alice/vision", "write")
    reader = server.create_key("carol", "alice/vision", "read")
    bob = server.create_key("bob", "bob/private", "write")
    _log(server, alice, "vision", {"labels.csv": "id,label\n1,cat\n", "<img src=x>.txt": "x"})
    _log(server, bob, "private", {"secret.txt": "top secret"})

    # The REST API keeps its routes and its bearer keys.
    who = httpx.get(f"{server.url}/api/v1/whoami", headers={"Authorization": f"Bearer {bob}"})
    assert who.status_code == 200 and who.json()["user"] == "bob"

    b = Browser(server.url)
    assert b.get("/").status_code == 303  # sign in first
    assert b.sign_in("ck-not-a-key").status_code == 401
    assert b.sign_in(reader).status_code == 303
    home = b.get("/")
    assert home.status_code == 200 and "alice/vision" in home.text.replace("</a>", "")
    assert "private" not in home.text
    assert b.get("/bob/private").status_code in (403, 404)
    assert b.get("/bob/private/artifacts/dataset/data/v0").status_code in (403, 404)

    version = b.get("/alice/vision/artifacts/dataset/data/v0")
    assert version.status_code == 200
    assert "&lt;b&gt;not bold&lt;/b&gt;" in version.text and "<b>not bold</b>" not in version.text
    assert "&lt;img src=x&gt;.txt" in version.text and "<img src=x>" not in version.text
    # The run's page: its history chart and summary, read through the key's grants.
    run_path = re.search(r'href="(/alice/vision/runs/[a-z0-9]+)"', version.text)
    assert run_path is not None
    run_page = b.get(run_path.group(1))
    assert run_page.status_code == 200 and 'data-key="loss"' in run_page.text
    assert "2 points" in run_page.text and "0.25" in run_page.text
    raw = b.get("/alice/vision/artifacts/dataset/data/v0/raw/labels.csv")
    assert raw.status_code == 200 and raw.content == b"id,label\n1,cat\n"

    # A reader gets no alias form and may not post one.
    collection = "/alice/vision/artifacts/dataset/data"
    page = b.get(collection).text
    assert 'name="alias"' not in page
    form = {"csrf_token": _csrf(page), "action": "add", "version": "v0", "alias": "gold"}
    assert b.post(collection, form).status_code == 403

    # A writer may.
    w = Browser(server.url)
    assert w.sign_in(alice).status_code == 303
    page = w.get(collection).text
    assert 'name="alias"' in page
    form = {"csrf_token": _csrf(page), "action": "add", "version": "v0", "alias": "gold"}
    assert w.post(collection, form).status_code == 303
    assert ">gold<" in w.get(collection).text
    # ...and the key that may not read another project still cannot, signed in or not.
    assert w.get("/bob/private").status_code in (403, 404)


def _snippet(page: str, name: str) -> str:
    match = re.search(rf'<pre id="snippet-{name}"><code>(.*?)</code></pre>', page, re.S)
    assert match, f"no snippet {name}"
    return html.unescape(match.group(1))


def test_server_snippets_run_against_the_server(server: CairnServer, tmp_path: Any) -> None:
    """A version page on a server shows the environment that points the SDK at it; with the
    key put in, its Python snippets (a download, the ``cairn://`` path through fsspec) run as
    shown, in a shell, against this server."""
    alice = server.create_key("alice", "alice/vision", "write")
    _log(server, alice, "vision", {"labels.csv": "id,label\n1,cat\n"})
    b = Browser(server.url)
    assert b.sign_in(alice).status_code == 303
    page = b.get("/alice/vision/artifacts/dataset/data/v0").text
    environment = _snippet(page, "env")
    assert f"export CAIRN_BASE_URL={server.url}" in environment
    environment = environment.replace("cairn_...", alice)
    file_page = b.get("/alice/vision/artifacts/dataset/data/v0/file/labels.csv").text
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    env.update(CAIRN_DIR=str(tmp_path / "no-store"), CAIRN_CACHE_DIR=str(tmp_path / "cache"))
    for code, wanted in (
        (_snippet(page, "api-download") + "print(open(path + '/labels.csv').read())", "1,cat"),
        (_snippet(page, "cairn-url") + "print(files)", "labels.csv"),
        (_snippet(file_page, "cairn-url") + "print(data.decode())", "1,cat"),
    ):
        script = f"{environment}\n{shlex.quote(sys.executable)} -c {shlex.quote(code)}\n"
        done = subprocess.run(
            ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        assert wanted in done.stdout, (code, done.stdout)
    assert not (tmp_path / "no-store").exists()  # the server answered, not an embedded store
