"""An upsert's body read as a stream (``cairn.server._streamed_changes``) accepts and refuses
exactly what decoding it whole did: the same fields, the same changes, the same refusals."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import httpx
import pytest

from cairn.errors import ValidationError
from cairn.server._streamed_changes import CHUNK, streamed_body
from cairn.service import API, changes_from_json
from tests._infra import ADMIN_KEY
from tests.conftest import InProcess

DIGEST = "sha256:" + "ab" * 32


def _row(i: int) -> list[Any]:
    path = f"d/{i:06}"
    return [path, None if i % 7 == 3 else [path, DIGEST, i, None, {"k": [1, [2]]}]]


@pytest.mark.parametrize(
    ("count", "indent"), [(0, None), (1, 2), (CHUNK, None), (CHUNK + 1, 2), (2 * CHUNK + 3, None)]
)
def test_a_body_streamed_is_the_body_decoded(count: int, indent: int | None) -> None:
    body = {
        "name": "a",
        "changes": [_row(i) for i in range(count)],
        "metadata": {"changes": [1]},
        "aliases": ["x"],
    }
    text = json.dumps(body, indent=indent)
    fields, changes = streamed_body(text)
    assert fields == {**body, "changes": []}
    expected = changes_from_json(body["changes"])
    assert len(changes) == count
    assert list(changes) == expected
    assert list(changes) == expected  # decoded again, the same


def test_a_body_without_changes_has_none() -> None:
    fields, changes = streamed_body('{"name": "a"}')
    assert fields == {"name": "a"} and list(changes) == [] and len(changes) == 0


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[]",
        '{"changes": [}',
        '{"changes": [["d/a", null],]}',
        '{"changes": [["d/a", null]] "x": 1}',
        '{"changes": {"d/a": null}}',
        '{"changes": []} x',
        '{"name": "a",}',
        "{1: 2}",
        '{"changes": [["d/b", null], ["d/a", null]]}',  # not sorted
        '{"changes": [["d/a", null], ["d/a", null]]}',  # not unique
        '{"changes": [["../a", null]]}',
        '{"changes": [["d/a", ["d/b", "' + DIGEST + '", 1]]]}',
        '{"changes": [["d/a", ["d/a", "sha256:zz", 1]]]}',
        '{"changes": [7]}',
    ],
)
def test_what_decoding_it_whole_refuses_is_refused(text: str) -> None:
    with pytest.raises(ValidationError):
        streamed_body(text)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"name": "a", "type": "t", "distributed_id": "w"}', "body.changes: Field required"),
        (b'{"name": "a", "type": "t", "changes": []}', "body.distributed_id: Field required"),
        (b'{"name": "a", "type": "t", "distributed_id": "", "changes": []}', "distributed_id"),
        (b'{"name": "a", "type": "t", "distributed_id": "w", "changes": [7]}', "malformed change"),
        (b'{"name": "a", "type": "t", "distributed_id": "w", "changes": [}', "invalid JSON"),
        (b'{"name": "\xff"}', "not UTF-8"),
    ],
)
def test_an_upsert_or_finish_refused_answers_400(
    inprocess: InProcess, tmp_path: pathlib.Path, body: bytes, message: str
) -> None:
    app = inprocess("sqlite", "local")
    for route in ("stage", "finish"):
        resp = app.transport.handle_request(
            httpx.Request(
                "POST",
                f"{app.url}{API}/projects/me/scale/{route}",
                content=body,
                headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            )
        )
        resp.read()
        assert resp.status_code == 400, resp.text
        assert message in resp.json()["error"]["message"], resp.text
