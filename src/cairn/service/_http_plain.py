"""API calls of JSON to an ``http://`` server over the standard library's
``http.client.HTTPConnection`` (kept alive, a few in a pool): what ``HttpClient.call`` sends
(no proxy configured, no test transport) instead of going through httpx; and presigned GETs of
whole objects from an ``http://`` object store (``HttpClient.get_object``), for the same reason
(1.1-1.4 ms of the client's CPU per 200 KiB GET through httpx, 0.5 ms here).

httpx, httpcore and h11 cost a client about 1 ms of CPU per call on a slow 2-core VM (a
``resolve``: building the request and its URL, the cookie jar on the way in and out, h11's state
machine, the response's streams), most of what a small call costs the client. A JSON call needs
none of it: ``http.client`` sends the request and reads the answer (its framing, Content-Length
or chunked). Failures are raised as the httpx errors they are (``ConnectError`` when nothing was
sent, ``ReadTimeout``, ``RemoteProtocolError``, ...), so ``Retrying`` treats them as it treats
httpx's. Streams, uploads, ranges, ``https://`` and proxies stay with httpx.
"""

from __future__ import annotations

import http.client
import select
import threading
from urllib.parse import urlsplit

import httpx

_IDLE = 32  # connections kept open for later calls (httpx's limit for the API client)


def plain_url(base_url: str) -> tuple[str, int] | None:
    """(host, port) when calls to ``base_url`` may go over ``http.client``: ``http://`` and no
    proxy in the environment (httpx would honour it); else None."""
    parts = urlsplit(base_url)
    if parts.scheme != "http" or not parts.hostname or parts.username or parts.password:
        return None
    if _proxied():
        return None
    return parts.hostname, parts.port or 80


def _proxied() -> bool:
    """Whether a proxy is set for plain HTTP, as httpx finds it (``urllib.request.getproxies``:
    the environment, and the system's settings on macOS and Windows): httpx then takes the call
    (it also knows ``no_proxy``)."""
    import urllib.request

    found = urllib.request.getproxies()
    return bool(found.get("http") or found.get("all"))


class PlainHttp:
    """Calls to one server over kept-alive ``HTTPConnection``s, one call per connection at a
    time; safe to share between threads."""

    def __init__(
        self,
        host: str,
        port: int,
        headers: dict[str, str],
        *,
        timeout: float,
        connect_timeout: float,
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.headers = {"Accept": "*/*", **headers}
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def request(
        self, method: str, target: str, body: bytes | None, *, idempotent: bool = True
    ) -> tuple[int, bytes, http.client.HTTPMessage]:
        """(status, body, headers) of one call; ``target`` the path and query, quoted. A
        kept-alive connection is checked before it is used again: one the server closed (as
        uvicorn does one idle for 5 s) is replaced. One it closes as the request goes out is
        replaced for an ``idempotent`` call only (a call that is not might have reached a
        server that died before answering: raised), as httpx does."""
        headers = self.headers
        if body is not None:
            headers = {**headers, "Content-Type": "application/json"}
        conn = self._take()
        if conn is not None:
            try:
                return self._exchange(conn, method, target, body, headers)
            except _Stale:
                if not idempotent:
                    raise httpx.RemoteProtocolError("the server closed the connection") from None
        return self._exchange(self._connect(), method, target, body, headers)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _take(self) -> http.client.HTTPConnection | None:
        """A kept-alive connection the server has not closed, or None."""
        while True:
            with self._lock:
                if not self._idle:
                    return None
                conn = self._idle.pop()
            if _open(conn):
                return conn
            conn.close()

    def _connect(self) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.connect_timeout)
        try:
            conn.connect()
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc)) from None
        except OSError as exc:
            raise httpx.ConnectError(str(exc)) from None
        assert conn.sock is not None
        conn.sock.settimeout(self.timeout)
        return conn

    def _exchange(
        self,
        conn: http.client.HTTPConnection,
        method: str,
        target: str,
        body: bytes | None,
        headers: dict[str, str],
    ) -> tuple[int, bytes, http.client.HTTPMessage]:
        reused = conn.sock is not None and getattr(conn, "_cairn_reused", False)
        keep = False
        try:
            try:
                conn.request(method, target, body, headers)
                resp = conn.getresponse()
            except TimeoutError as exc:
                raise httpx.ReadTimeout(str(exc)) from None
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                raise _Stale() if reused else httpx.RemoteProtocolError(str(e)) from None
            except http.client.HTTPException as exc:
                raise httpx.RemoteProtocolError(str(exc)) from None
            except OSError as exc:
                raise httpx.ReadError(str(exc)) from None
            try:
                data = resp.read()
            except TimeoutError as exc:
                raise httpx.ReadTimeout(str(exc)) from None
            except http.client.HTTPException as exc:
                raise httpx.RemoteProtocolError(str(exc)) from None
            except OSError as exc:
                raise httpx.ReadError(str(exc)) from None
            keep = not resp.will_close
            return resp.status, data, resp.msg
        finally:
            if keep:
                conn._cairn_reused = True  # type: ignore[attr-defined]
                with self._lock:
                    if len(self._idle) < _IDLE:
                        self._idle.append(conn)
                        conn = None  # type: ignore[assignment]
            if conn is not None:
                conn.close()


def _open(conn: http.client.HTTPConnection) -> bool:
    """Whether an idle connection may carry a request: nothing to read on it (a closed one
    reads as its end; an idle one has no answer coming). ``poll``, not ``select``: a process
    with over 1,024 files open has descriptors ``select`` cannot watch."""
    if conn.sock is None:
        return False
    watch = select.poll()
    watch.register(conn.sock, select.POLLIN)
    return not watch.poll(0)


class _Stale(Exception):
    """A kept-alive connection the server had closed: the call did not reach it."""
