"""JSON calls to an ``http://`` server over ``http.client`` (``service/_http_plain.py``): what
they send and read, kept-alive connections the server closed, and the same answers as through
httpx."""

from __future__ import annotations

import pathlib
import select
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from unittest import mock

import httpx
import pytest

from cairn.errors import ArtifactNotFoundError, CommError
from cairn.service import CommitRequest
from cairn.service._http import HttpService
from cairn.service._http_plain import PlainHttp, plain_url
from tests._infra import CairnServer, reset_database


class ScriptedServer:
    """Answers each request read on a socket with the next scripted answer (raw bytes); an
    answer followed by ``None`` closes that socket after it."""

    def __init__(self, answers: list[bytes | None]) -> None:
        self.answers = answers
        self.requests: list[bytes] = []
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while self.answers:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                buf = b""
                while self.answers:
                    while b"\r\n\r\n" not in buf:
                        data = conn.recv(65536)
                        if not data:
                            break
                        buf += data
                    if b"\r\n\r\n" not in buf:
                        break
                    head, _, buf = buf.partition(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value)
                    while len(buf) < length:
                        buf += conn.recv(65536)
                    self.requests.append(head + b"\r\n\r\n" + buf[:length])
                    buf = buf[length:]
                    answer = self.answers.pop(0)
                    assert answer is not None
                    conn.sendall(answer)
                    if self.answers and self.answers[0] is None:
                        self.answers.pop(0)
                        break

    def close(self) -> None:
        self.listener.close()
        self.thread.join(5)


@pytest.fixture
def scripted() -> Iterator[list[ScriptedServer]]:
    made: list[ScriptedServer] = []
    yield made
    for s in made:
        s.close()


def _json(body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n%scontent-length: %d\r\n\r\n%s"
        % (
            extra,
            len(body),
            body,
        )
    )


def test_requests_and_answers_on_the_wire(scripted: list[ScriptedServer]) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        b'4;x=y\r\n{"a"\r\n3\r\n: 1\r\n1\r\n}\r\n0\r\nTrailer: z\r\n\r\n'
    )
    server = ScriptedServer([_json(b'{"x": 1}'), chunked, _json(b"[]", b"connection: close\r\n")])
    scripted.append(server)
    calls = PlainHttp(
        "127.0.0.1", server.port, {"Authorization": "Bearer k"}, timeout=10, connect_timeout=10
    )
    assert calls.request("GET", "/api/v1/a%20b?label=x", None)[:2] == (200, b'{"x": 1}')
    assert calls.request("POST", "/api/v1/c", b'{"d":"\xc3\xa9"}')[:2] == (200, b'{"a": 1}')
    assert calls.request("DELETE", "/api/v1/e", None)[:2] == (200, b"[]")
    assert server.connections == 1  # kept alive for all three
    first, second, third = server.requests
    assert first.startswith(b"GET /api/v1/a%20b?label=x HTTP/1.1\r\n")
    assert b"\r\nAuthorization: Bearer k\r\n" in first and b"\r\nHost: 127.0.0.1:" in first
    assert b"\r\nContent-Length: 10\r\n" in second
    assert second.endswith(b'\r\n\r\n{"d":"\xc3\xa9"}')
    assert b"Content-Type: application/json" in second
    assert third.startswith(b"DELETE ") and b"Content-Length" not in third
    assert calls._idle == []  # the server said it closes: not kept
    calls.close()


def test_a_kept_alive_socket_the_server_closed(scripted: list[ScriptedServer]) -> None:
    """The server closes a socket after answering (as uvicorn does an idle one): the next call
    sees it closed and goes on a new socket. A server that closes one as a request comes, not
    answering it (it may have died doing it), fails a call that is not idempotent."""
    server = ScriptedServer([_json(b"1"), None, _json(b"2"), b"", None, _json(b"3")])
    scripted.append(server)
    calls = PlainHttp("127.0.0.1", server.port, {}, timeout=10, connect_timeout=10)
    assert calls.request("GET", "/x", None)[:2] == (200, b"1")
    (kept,) = calls._idle
    assert select.select([kept.sock], [], [], 10)[0]  # closed by the server (a bound on a hang)
    assert calls.request("GET", "/x", None)[:2] == (200, b"2")
    assert kept.sock is None  # closed, replaced
    with pytest.raises(httpx.RemoteProtocolError):
        calls.request("POST", "/x", b"{}", idempotent=False)
    assert calls.request("POST", "/x", b"{}", idempotent=False)[:2] == (200, b"3")
    assert server.connections == 3
    calls.close()


@pytest.fixture
def short_keep_alive() -> Iterator[tuple[int, list[bytes]]]:
    """uvicorn (cairn's server) with a keep-alive of 0.2 s, answering each request with a
    count of the requests it read; yields its port and the bodies it read."""
    import asyncio

    import uvicorn

    seen: list[bytes] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        seen.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"%d" % len(seen)})

    sock = socket.create_server(("127.0.0.1", 0))
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_level="warning",
        timeout_keep_alive=0.2,  # type: ignore[arg-type]
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])))
    thread.start()
    try:
        while not server.started:
            assert thread.is_alive()
            time.sleep(0.01)
        yield sock.getsockname()[1], seen
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_a_call_after_the_servers_keep_alive_ran_out_takes_a_new_socket(
    short_keep_alive: tuple[int, list[bytes]],
) -> None:
    """uvicorn closes a socket idle for its keep-alive (5 s by default): a call that is not
    repeated (creating an API key) made after that failed with RemoteProtocolError, the socket
    reused without a look (review of fe475cf). It is looked at first now, and the call goes on
    a new one, sent once (fails on the old code)."""
    port, seen = short_keep_alive
    calls = PlainHttp("127.0.0.1", port, {}, timeout=10, connect_timeout=10)
    assert calls.request("POST", "/commit", b"{}", idempotent=False)[:2] == (200, b"1")
    (kept,) = calls._idle
    assert select.select([kept.sock], [], [], 10)[0]  # the keep-alive ran out (a bound on a hang)
    assert calls.request("POST", "/commit", b"[]", idempotent=False)[:2] == (200, b"2")
    assert seen == [b"{}", b"[]"]
    calls.close()


def test_who_takes_the_plain_way(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)  # a runner's own proxy
    assert plain_url("http://127.0.0.1:8400") == ("127.0.0.1", 8400)
    assert plain_url("http://cairn.example/base") == ("cairn.example", 80)
    assert plain_url("https://cairn.example") is None  # TLS: httpx
    assert plain_url("http://user:pw@cairn.example") is None
    monkeypatch.setenv("HTTP_PROXY", "http://proxy:3128")
    assert plain_url("http://cairn.example") is None  # httpx honours the proxy
    monkeypatch.delenv("HTTP_PROXY")
    monkeypatch.setenv("all_proxy", "http://proxy:3128")
    assert plain_url("http://cairn.example") is None
    monkeypatch.delenv("all_proxy")
    refused = HttpService("http://127.0.0.1:9", "k", "/nonexistent", retries=0)
    assert refused._client.json_calls is not None
    with pytest.raises(CommError, match="cannot reach the cairn server"):
        refused.resolve("me", "p", "a", None)
    refused.close()


def test_json_calls_to_a_server_use_no_httpx_and_answer_as_httpx_does(
    server_local: CairnServer, tmp_path: pathlib.Path
) -> None:
    reset_database(server_local.db)
    key = server_local.create_key("me")
    plain = HttpService(server_local.url, key, str(tmp_path / "c1"))
    via_httpx = HttpService(
        server_local.url, key, str(tmp_path / "c2"), transport=httpx.HTTPTransport()
    )
    seen: list[str] = []
    answers: list[tuple[int, str, Any]] = []
    plain._client.api.event_hooks["request"].append(lambda r: seen.append(r.url.path))
    plain._client.api.event_hooks["response"].append(
        lambda r: answers.append((r.status_code, r.request.url.path, r.json()))
    )
    sent = mock.Mock(wraps=httpx.HTTPTransport.handle_request, autospec=True)
    with mock.patch.object(httpx.HTTPTransport, "handle_request", sent):
        done = plain.commit(CommitRequest("me", "p", "ds", "dataset", changes=[]))
        assert done.version is not None
        assert plain.resolve("me", "p", "ds", "latest") == done.version
        with pytest.raises(ArtifactNotFoundError) as lost:
            plain.resolve("me", "p", "ds", "nope")
        assert sent.call_count == 0
    assert (
        seen
        == ["/api/v1/projects/me/p/commit"] + ["/api/v1/projects/me/p/artifacts/ds/resolve"] * 2
    )
    # Response hooks run too, as httpx's (they did not on this way: review of fe475cf).
    assert [(status, path) for status, path, _ in answers] == [
        (200, "/api/v1/projects/me/p/commit"),
        (200, "/api/v1/projects/me/p/artifacts/ds/resolve"),
        (404, "/api/v1/projects/me/p/artifacts/ds/resolve"),
    ]
    assert answers[2][2]["error"]["type"] == "ArtifactNotFoundError"
    assert via_httpx.resolve("me", "p", "ds", "latest") == done.version
    with pytest.raises(ArtifactNotFoundError) as lost2:
        via_httpx.resolve("me", "p", "ds", "nope")
    assert str(lost.value) == str(lost2.value)
    plain.close()
    via_httpx.close()


def test_one_rule_says_what_an_answers_status_means() -> None:
    """``send`` (httpx), ``call`` (http.client) and ``check`` (streams) each wrote out which
    status is retried and which error an answer is (review of fe475cf): ``raise_for`` is the
    one owner now (fails on the old code: no such rule to call)."""
    from cairn.errors import CairnError
    from cairn.service._http_client import Busy, HttpClient

    client = HttpClient("http://127.0.0.1:9", None)
    lost = {"error": {"type": "ArtifactNotFoundError", "message": "no such thing"}}

    def meaning(status: int, idempotent: bool = True, accept: tuple[int, ...] = ()) -> object:
        try:
            client.raise_for(status, lambda: lost, idempotent, accept)
        except CairnError as exc:
            return type(exc)
        return None

    assert meaning(200) is None and meaning(404, accept=(404,)) is None
    assert meaning(404) is ArtifactNotFoundError
    assert meaning(503) is Busy and meaning(502) is Busy  # tried again
    assert meaning(503, idempotent=False) is ArtifactNotFoundError  # said at once
    client.close()
