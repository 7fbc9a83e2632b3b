"""The OpenAPI document declares the answers the server really gives: on every route the error
answers (400, 401, 403, 404, 413, 503; 409 where something changes; 422 where content is
re-hashed) with the one error body, and real refusals have that body."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from cairn.server import ServerConfig
from cairn.server._app import create_app
from cairn.service._wire import API, STATUS
from tests._infra import ADMIN_KEY, CairnServer, SyncASGITransport

METHODS = ("get", "post", "put", "patch", "delete")
ERROR_REF = "#/components/schemas/Error"


class _NoBackend:
    """Enough of a Backend to build the app (the document, the body limit) without a store."""

    config = ServerConfig(db="", store="", max_json_bytes=64, max_batch_bytes=64)


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return create_app(_NoBackend()).openapi()  # type: ignore[arg-type]


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path.removeprefix(API), op)
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        if method in METHODS
    ]


def is_error_body(body: Any) -> bool:
    """The shape the document's Error schema gives (checked by hand: no schema library)."""
    err = body.get("error") if isinstance(body, dict) else None
    return (
        isinstance(err, dict)
        and isinstance(err.get("type"), str)
        and isinstance(err.get("message"), str)
    )


def test_every_route_declares_its_error_answers_with_the_error_body(doc: dict[str, Any]) -> None:
    ops = operations(doc)
    assert len(ops) > 40  # every route of the API, not a few
    schema = doc["components"]["schemas"]["Error"]
    assert schema["required"] == ["error"]
    assert schema["properties"]["error"]["required"] == ["type", "message"]
    declared_anywhere: set[int] = set()
    for method, path, op in ops:
        answers = op["responses"]
        expected = {"400", "401", "403", "404", "413", "503"}
        if method != "get":
            expected.add("409")
        missing = expected - set(answers)
        assert not missing, f"{method.upper()} {path} does not declare {sorted(missing)}"
        for status, answer in answers.items():
            declared_anywhere.add(int(status))
            if int(status) >= 400 and status != "416":  # 416: no body, a Content-Range header
                content = answer["content"]["application/json"]["schema"]
                assert content == {"$ref": ERROR_REF}, (method, path, status)
        # FastAPI's 422 for validation is gone (this server answers 400); 422 stays only where
        # uploaded content is re-hashed.
        hashed = path in ("/blobs/batch", "/uploads/{upload_id}/complete") or (
            method == "put" and path.startswith("/uploads/")
        )
        assert ("422" in answers) == hashed, (method, path)
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    # Every status a cairn error maps to is declared somewhere (500 is a bug, 408 never served).
    assert set(STATUS.values()) - {500, 408} <= declared_anywhere


def test_real_refusals_have_the_declared_body(server_local: CairnServer) -> None:
    base = f"{server_local.url}{API}"
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    writer = {"Authorization": f"Bearer {server_local.create_key('openapi', 'openapi/*', 'write')}"}
    answers = {
        401: httpx.get(f"{base}/whoami"),
        403: httpx.post(f"{base}/admin/gc", json={}, headers=writer),
        404: httpx.get(f"{base}/projects/nobody/nothing/artifacts/ds/resolve", headers=admin),
        400: httpx.post(f"{base}/projects/openapi/p/runs", json={"id": 5}, headers=writer),
    }
    for status, resp in answers.items():
        assert resp.status_code == status and is_error_body(resp.json()), (status, resp.text)
    # 413 comes from the body limit, before any route: an app with a 64-byte limit.
    transport = SyncASGITransport(create_app(_NoBackend()))  # type: ignore[arg-type]
    try:
        with httpx.Client(transport=transport, base_url="http://cairn") as client:
            resp = client.post(f"{API}/blobs/missing", json={"digests": ["x" * 100]})
    finally:
        transport.shutdown()
    assert resp.status_code == 413 and is_error_body(resp.json())
