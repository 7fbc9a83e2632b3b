"""Sign-in with API keys through a UiBackend, as ``cairn server`` will provide one."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from cairn.core._records import RunRecord, VersionRecord
from cairn.errors import PermissionDeniedError
from cairn.service import LocalService, SearchRequest, SearchResult, Service
from cairn.ui import Principal, UiBackend, create_ui_app
from tests.ui.conftest import csrf_token
from tests.ui.sample_store import ENTITY

ALICE = "ck-alice-secret"  # may read and write acme/mnist only
BOB = "ck-bob-secret"  # may read everything, write nothing


class ProjectScopedService:
    """A Service that reads only some projects: what a server gives a key (by delegation)."""

    def __init__(self, inner: LocalService, projects: set[tuple[str, str]] | None) -> None:
        self._inner = inner
        self._projects = projects

    def __getattr__(self, name: str) -> Any:
        if name in ("commit", "stage", "finish", "update_version", "delete_version"):
            raise AttributeError(name)
        return getattr(self._inner, name)

    def _allowed(self, entity: str, project: str) -> bool:
        return self._projects is None or (entity, project) in self._projects

    def _check(self, entity: str, project: str) -> None:
        if not self._allowed(entity, project):
            raise PermissionDeniedError(f"this key may not read {entity}/{project}")

    def list_projects(self, entity: str | None = None) -> list[tuple[str, str]]:
        return [p for p in self._inner.list_projects(entity) if self._allowed(*p)]

    def list_collections(self, entity: str, project: str, type_name: str | None = None) -> Any:
        self._check(entity, project)
        return self._inner.list_collections(entity, project, type_name)

    def list_types(self, entity: str, project: str) -> list[str]:
        self._check(entity, project)
        return self._inner.list_types(entity, project)

    def search(self, request: SearchRequest) -> SearchResult:
        if request.collection is not None:
            self._check(*request.collection[:2])
        scope = self.list_projects()
        if request.projects is not None:
            scope = [p for p in scope if p in request.projects]
        return self._inner.search(dataclasses.replace(request, projects=tuple(scope)))

    def list_versions(self, entity: str, project: str, name: str, **kw: Any) -> Any:
        self._check(entity, project)
        return self._inner.list_versions(entity, project, name, **kw)

    def resolve(self, entity: str, project: str, name: str, label: str | None) -> VersionRecord:
        self._check(entity, project)
        return self._inner.resolve(entity, project, name, label)

    def get_version(self, version_id: str) -> VersionRecord:
        v = self._inner.get_version(version_id)
        self._check(v.entity, v.project)
        return v

    def get_run(self, entity: str, project: str, run_id: str) -> RunRecord:
        self._check(entity, project)
        return self._inner.get_run(entity, project, run_id)

    def run_versions(self, entity: str, project: str, run_id: str, role: str) -> Any:
        self._check(entity, project)
        found = self._inner.run_versions(entity, project, run_id, role)
        return [v for v in found if self._allowed(v.entity, v.project)]

    def version_runs(self, version_id: str, role: str) -> list[RunRecord]:
        self.get_version(version_id)
        return [
            r
            for r in self._inner.version_runs(version_id, role)
            if self._allowed(r.entity, r.project)
        ]

    def add_alias(self, version_id: str, alias: str) -> VersionRecord:
        self.get_version(version_id)
        return self._inner.add_alias(version_id, alias)

    def remove_alias(self, version_id: str, alias: str) -> VersionRecord:
        self.get_version(version_id)
        return self._inner.remove_alias(version_id, alias)


class KeyBackend:
    """A UiBackend with API keys, as a server has."""

    def __init__(self, service: LocalService) -> None:
        self.service = service
        self.keys = {ALICE: Principal("u-alice", "alice"), BOB: Principal("u-bob", "bob")}
        self.seen: list[str] = []

    @property
    def needs_login(self) -> bool:
        return True

    def anonymous(self) -> Principal | None:
        return None

    def authenticate(self, api_key: str) -> Principal | None:
        self.seen.append(api_key)
        return self.keys.get(api_key)

    def service_for(self, principal: Principal) -> Service:
        projects = {(ENTITY, "mnist")} if principal.id == "u-alice" else None
        return ProjectScopedService(self.service, projects)  # type: ignore[return-value]

    def can_write(self, principal: Principal, entity: str, project: str) -> bool:
        return principal.id == "u-alice" and (entity, project) == (ENTITY, "mnist")


@pytest.fixture
def backend(local_service: LocalService) -> KeyBackend:
    b = KeyBackend(local_service)
    assert isinstance(b, UiBackend)
    return b


@pytest.fixture
def browser(backend: KeyBackend) -> Iterator[TestClient]:
    """A client keeping cookies like a browser, over HTTPS (the cookies are Secure)."""
    app = create_ui_app(backend, secret=b"k" * 32)
    with TestClient(app, base_url="https://cairn.test", follow_redirects=False) as c:
        yield c


def sign_in(client: TestClient, key: str, next_url: str = "/") -> Any:
    page = client.get("/-/login?next=" + next_url)
    assert page.status_code == 200
    return client.post(
        "/-/login",
        data={"csrf_token": csrf_token(page.text), "api_key": key, "next": next_url},
    )


def test_pages_need_a_key_and_the_login_sets_a_secure_http_only_cookie(browser: TestClient) -> None:
    r = browser.get(f"/{ENTITY}/mnist?x=1")
    assert r.status_code == 303
    assert r.headers["location"] == "/-/login?next=%2Facme%2Fmnist%3Fx%3D1"
    form = browser.get(r.headers["location"])
    assert 'type="password" name="api_key"' in form.text
    assert 'name="next" value="/acme/mnist?x=1"' in form.text
    bad = sign_in(browser, "ck-wrong")
    assert bad.status_code == 401 and "not valid" in bad.text
    assert "cairn_key" not in browser.cookies

    ok = sign_in(browser, ALICE, f"/{ENTITY}/mnist")
    assert ok.status_code == 303 and ok.headers["location"] == f"/{ENTITY}/mnist"
    cookie = next(h for h in ok.headers.get_list("set-cookie") if h.startswith("cairn_key="))
    attributes = {a.strip().lower() for a in cookie.split(";")}
    assert {"httponly", "secure", "samesite=lax", "path=/"} <= attributes
    page = browser.get(f"/{ENTITY}/mnist")
    assert page.status_code == 200 and ">alice</span>" in page.text


def test_a_key_sees_only_what_it_may_read(browser: TestClient, backend: KeyBackend) -> None:
    sign_in(browser, ALICE)
    home = browser.get("/").text
    assert f'href="/{ENTITY}/mnist"' in home and "sandbox" not in home
    assert browser.get(f"/{ENTITY}/sandbox").status_code == 404
    assert browser.get(f"/{ENTITY}/sandbox/artifacts/dataset/xss-test").status_code == 403
    assert browser.get(f"/{ENTITY}/sandbox/artifacts/dataset/xss-test/v0").status_code == 403
    assert backend.seen and set(backend.seen) == {ALICE}  # every request re-checks the key
    found = browser.get("/-/search?q=xss").text  # search too stays within the key's projects
    hits = found[found.find('<div class="results">') :]
    assert "Nothing matches" in hits and "xss-test" not in hits, hits

    browser.cookies.clear()
    sign_in(browser, BOB)
    assert "sandbox" in browser.get("/").text
    assert browser.get(f"/{ENTITY}/sandbox/artifacts/dataset/xss-test/v0").status_code == 200
    assert "sandbox/xss-test:v0</a>" in browser.get("/-/search?q=xss").text


def test_only_writers_get_alias_forms_and_may_post_them(browser: TestClient) -> None:
    url = f"/{ENTITY}/mnist/artifacts/model/cnn-model"
    sign_in(browser, BOB)
    page = browser.get(url).text
    assert 'name="alias"' not in page
    form = {"csrf_token": csrf_token(page), "action": "add", "version": "v0", "alias": "by-bob"}
    assert browser.post(url, data=form).status_code == 403

    browser.cookies.clear()
    sign_in(browser, ALICE)
    page = browser.get(url).text
    assert 'name="alias"' in page
    form = {"csrf_token": csrf_token(page), "action": "add", "version": "v0", "alias": "by-alice"}
    assert browser.post(url, data=form).status_code == 303
    assert ">by-alice<" in browser.get(url).text
    form["action"] = "remove"
    assert browser.post(url, data=form).status_code == 303


def test_sign_out_and_revoked_keys(browser: TestClient, backend: KeyBackend) -> None:
    sign_in(browser, ALICE)
    page = browser.get("/").text
    assert "Sign out" in page
    out = browser.post("/-/logout", data={"csrf_token": csrf_token(page)})
    assert out.status_code == 303 and out.headers["location"] == "/-/login"
    assert browser.get("/").status_code == 303

    sign_in(browser, ALICE)
    assert browser.get("/").status_code == 200
    del backend.keys[ALICE]  # revoked on the server: the next request is signed out
    assert browser.get("/").status_code == 303


def test_login_is_csrf_protected_and_never_redirects_away(browser: TestClient) -> None:
    browser.get("/-/login")
    assert browser.post("/-/login", data={"api_key": ALICE}).status_code == 403
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        r = sign_in(browser, ALICE, target)
        assert r.status_code == 303 and r.headers["location"] == "/", target
    assert browser.post("/-/logout", data={}).status_code == 403
    # POSTs without a session are refused, not redirected.
    browser.cookies.delete("cairn_key")
    page = browser.get("/-/login").text
    url = f"/{ENTITY}/mnist/artifacts/model/cnn-model"
    form = {"csrf_token": csrf_token(page), "action": "add", "version": "v0", "alias": "x"}
    assert browser.post(url, data=form).status_code == 401


def test_the_ui_mounts_under_a_prefix(backend: KeyBackend) -> None:
    from fastapi import FastAPI

    outer = FastAPI()

    @outer.get("/api/ping")
    def ping() -> dict[str, str]:
        return {"ok": "yes"}

    outer.mount("/ui", create_ui_app(backend))
    with TestClient(outer, base_url="https://cairn.test", follow_redirects=False) as c:
        assert c.get("/api/ping").json() == {"ok": "yes"}
        r = c.get("/ui/")
        assert r.status_code == 303 and r.headers["location"] == "/ui/-/login?next=%2Fui%2F"
        page = c.get("/ui/-/login?next=/ui/")
        assert 'action="/ui/-/login"' in page.text and 'href="/ui/-/static/style.css"' in page.text
        c.post(
            "/ui/-/login",
            data={"csrf_token": csrf_token(page.text), "api_key": BOB, "next": "/ui/"},
        )
        home = c.get("/ui/")
        assert home.status_code == 200 and f'href="/ui/{ENTITY}/mnist"' in home.text
