"""A server's answer to an unnamed upload's begin that lacks what the client needs is refused as
the server's fault (``CommError``), and the file's hash, begun before the request, is abandoned
and joined: no thread is left waiting for an upload that never began (review of 5763521)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from cairn.errors import CommError
from cairn.service._http_client import HttpClient
from cairn.service._http_upload import Uploader
from cairn.service._wire import UNNAMED_FROM


@pytest.mark.parametrize(
    "answer",
    [
        {"mode": "stream", "unnamed": True, "part_size": 1 << 20},  # no id
        {"mode": "stream", "unnamed": True, "id": "u1"},  # no part size
        {"mode": "stream", "unnamed": True, "id": "u1", "part_size": "many"},
        {"mode": "stream", "unnamed": True, "id": "..", "part_size": 1 << 20},
        {"mode": "stream", "unnamed": True, "id": "u1", "part_size": 0},
    ],
)
def test_a_begin_answered_without_its_id_or_part_size_is_the_servers_fault(
    tmp_path: Path, answer: dict[str, Any]
) -> None:
    path = tmp_path / "big"
    path.write_bytes(b"\0" * UNNAMED_FROM)
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(f"{request.method} {request.url.path}")
        return httpx.Response(200, json=answer)

    client = HttpClient(
        "http://cairn.test", None, transport=httpx.MockTransport(handler), retries=0
    )
    with pytest.raises(CommError, match="begin"):
        Uploader(client, 2).store_file(str(path))
    assert asked == ["POST /api/v1/uploads"]  # nothing sent for an upload that never began
    assert not [t for t in threading.enumerate() if t.name == "cairn-upload-hash" and t.is_alive()]
