"""The HTTP client of ``HttpService``: two ``httpx`` clients and the one retry policy.

``api`` talks to the cairn server (the API key in every request); ``plain`` to presigned
object-store URLs (which carry their own signature: the key is never sent there). Both keep
connections alive across calls and threads.

Every request goes through ``Retrying``, which wraps one attempt: a call that fails on the way
(connection refused or reset, a server that died mid-request, 502/503/504) is tried again with
backoff for about half a minute (``RETRY_SECONDS``). Every call of the Service protocol is safe
to repeat (a repeated commit finds its own version by digest, an upsert overwrites itself, a
repeated part rewrites the same bytes); the one that is not (creating an API key) is retried only
when it never reached the server. Downloads stream their answer inside the attempt, so a body
cut off half-way is fetched again the same way.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import httpx

from cairn.core import check_json_value
from cairn.errors import CairnError, CommError, ValidationError
from cairn.service._http_plain import PlainHttp, plain_url
from cairn.service._wire import API, error_from_body

T = TypeVar("T")

RETRIES = 12  # backoff 0.2 s doubling to 5 s, within RETRY_SECONDS in all
RETRY_SECONDS = 45.0  # a call is given up after this long (a catalog restart takes seconds)
NOTICE_AFTER = 2.0  # waiting longer than this is said on stderr, once per call
RETRY_STATUS = (502, 503, 504)
TRANSFER_THREADS = 4  # parts (or batches, or ranges) in flight at once, unless told
_log = logging.getLogger("cairn")
_OBJECT_HEADERS = {"User-Agent": "cairn-http"}  # to an object store: no key
_OBJECT_STORES = 8  # object stores reached over http.client (each a pool of kept-alive sockets)
_UNKNOWN: Any = object()


def seg(value: str) -> str:
    """One path segment, quoted. A segment of dots only would be resolved away by URL rules
    (``/a/../b`` is ``/b``), reaching another route: refused, as the names it stands for are."""
    if not value.strip("."):
        raise ValidationError(f"{value!r} cannot be sent as a name: it is empty or only dots")
    return quote(value, safe="")


def json_body(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


class Busy(CairnError):
    """An answer 502/503/504 (the server, or one in front of it, is restarting): try again."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"{status}")
        self.status = status
        self.body = body

    @property
    def why(self) -> str:
        err = self.body.get("error") if isinstance(self.body, dict) else None
        message = err.get("message") if isinstance(err, dict) else ""
        return f"{self.status}: {message}".rstrip(": ")


class Retrying:
    """Runs one attempt of a request again while it fails on the way, with backoff, for at most
    ``retries`` more attempts and ``seconds`` from the first failure; waiting longer than
    ``notice_after`` is said on stderr, once per call."""

    def __init__(self, base_url: str, retries: int, seconds: float, notice_after: float) -> None:
        self.base_url = base_url
        self.retries = retries
        self.seconds = seconds
        self.notice_after = notice_after

    def __call__(
        self, attempt: Callable[[], T], *, idempotent: bool = True, what: str | None = None
    ) -> T:
        """``attempt()``, again while it raises ``httpx.TransportError`` or ``Busy``. Given up:
        ``CommError`` (``what``: "could not <what>"), or the error the last answer carried."""
        # The clock starts at the first failure: a long transfer that fails late gets its retries.
        started: float | None = None
        noticed = False
        n = 0
        while True:
            try:
                return attempt()
            except httpx.TransportError as exc:
                started = time.monotonic() if started is None else started
                never_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
                notice = not noticed and time.monotonic() - started > self.notice_after
                noticed = noticed or notice
                why = f"{type(exc).__name__}: {exc!s}"
                if not (idempotent or never_sent) or not self._wait(n, started, why, notice):
                    if what is not None:
                        raise CommError(f"could not {what}: {exc!s}") from None
                    raise CommError(
                        f"cannot reach the cairn server at {self.base_url}: {exc!s}"
                        " (is it running? is CAIRN_BASE_URL right?)"
                    ) from None
            except Busy as exc:
                started = time.monotonic() if started is None else started
                notice = not noticed and time.monotonic() - started > self.notice_after
                noticed = noticed or notice
                if not idempotent or not self._wait(n, started, exc.why, notice):
                    if what is not None:
                        raise CommError(f"could not {what}: {exc.why}") from None
                    raise error_from_body(exc.status, exc.body, self.base_url) from None
            n += 1

    def _wait(self, attempt: int, started: float, why: str, notice: bool) -> bool:
        """Wait before another attempt, or False when the time for retries is spent; with
        ``notice``, say on stderr what it waits for."""
        if attempt >= self.retries or time.monotonic() - started > self.seconds:
            return False
        if notice:
            _log.warning(
                "cairn: waiting for the server at %s (%s); retrying for up to %d s",
                self.base_url,
                why,
                self.seconds,
            )
        self.backoff(attempt)
        return True

    @staticmethod
    def backoff(attempt: int) -> None:
        time.sleep(min(5.0, 0.2 * 2**attempt) * (0.5 + random.random() / 2))


_SPENT = httpx.ByteStream(b"")  # the body stream of a response once it is closed


class _Released(httpx.SyncByteStream):
    """A response's body stream that lets go of the response once closed (see ``Client``)."""

    def __init__(self, response: httpx.Response, inner: httpx.SyncByteStream) -> None:
        self._response: httpx.Response | None = response
        self._inner = inner

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._inner)

    def close(self) -> None:
        self._inner.close()
        if self._response is not None:
            self._response.stream = _SPENT
            self._response = None


class Client(httpx.Client):
    """An ``httpx.Client`` whose responses are freed as soon as nobody holds them.

    httpx 0.28 binds every response to its body stream and the stream back to the response (a
    reference cycle, encode/httpx#3733), so a response, its body and its request's body were
    freed only by Python's cyclic garbage collector, whose full passes are rare: a download of
    600 image-sized blobs held every one of them until it ended (VmRSS 36 -> 170 MiB), as did
    uploads their batch bodies. A closed response's stream is replaced here, which breaks the
    cycle; a streamed one's when it is closed."""

    def send(self, request: httpx.Request, **kw: Any) -> httpx.Response:
        response = super().send(request, **kw)
        stream = response.stream
        if response.is_closed:
            response.stream = _SPENT
        elif isinstance(stream, httpx.SyncByteStream):
            response.stream = _Released(response, stream)
        return response


class HttpClient:
    """The server's REST API (``api``, with the key) and object-store URLs (``plain``), each
    request retried by ``retrying``."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        transport: httpx.BaseTransport | None = None,
        retries: int = RETRIES,
        retry_seconds: float = RETRY_SECONDS,
        notice_after: float = NOTICE_AFTER,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"User-Agent": "cairn-http"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
        timeout = httpx.Timeout(300.0, connect=10.0)
        self.api = Client(
            base_url=self.base_url + API,
            headers=headers,
            timeout=timeout,
            limits=limits,
            transport=transport,
        )
        self._api_path = self.api.base_url.raw_path  # ends with "/"
        self.plain = Client(timeout=timeout, limits=limits)
        # JSON calls to an http:// server go over http.client (``_http_plain.py``), unless
        # the caller gave a transport of its own (an app in process, a test's faults).
        address = plain_url(self.base_url) if transport is None else None
        self.json_calls = None
        if address is not None:
            self.json_calls = PlainHttp(
                *address,
                headers,
                timeout=timeout.read or 300.0,
                connect_timeout=timeout.connect or 10.0,
            )
        self.retrying = Retrying(self.base_url, retries, retry_seconds, notice_after)
        # Object stores of presigned GETs: (scheme, host:port) -> http.client pool, or None
        # where httpx takes them (https://, a proxy).
        self._stores: dict[tuple[str, str], PlainHttp | None] = {}
        self._stores_lock = threading.Lock()

    def send(
        self,
        method: str,
        url: str,
        *,
        plain: bool = False,
        idempotent: bool = True,
        body_factory: Callable[[], Any] | None = None,
        accept: tuple[int, ...] = (),
        **kw: Any,
    ) -> httpx.Response:
        """One request (to the API, or with ``plain`` to an object-store URL), retried; an error
        status in ``accept`` is returned instead of raised. ``body_factory`` makes the body
        anew for each attempt (a stream is read once)."""
        _check_fields(kw.get("json"))
        client = self.plain if plain else self.api
        target = url if plain else self.api_url(url, kw.pop("params", None))

        def attempt() -> httpx.Response:
            if body_factory is not None:
                kw["content"] = body_factory()
            resp = client.request(method, target, **kw)
            if resp.status_code >= 400:
                self.raise_for(resp.status_code, lambda: json_body(resp), idempotent, accept)
            return resp

        return self.retrying(attempt, idempotent=idempotent)

    def get_object(self, url: str) -> tuple[int, bytes]:
        """One GET of a presigned object-store URL, not retried (the caller falls back to the
        server): its status and body. Over ``http.client`` where the URL is ``http://`` and no
        proxy is set (``_http_plain.py``: about 0.6 ms less of the client's CPU per GET than
        httpx, measured on 200 KiB objects), else through httpx (``plain``). The API key is
        never sent: the URL carries its own signature."""
        parts = urlsplit(url)
        where = (parts.scheme, parts.netloc)
        store = self._stores.get(where, _UNKNOWN)
        if store is _UNKNOWN:
            # A pool per object store the server's URLs name, a few at most (then httpx).
            address = plain_url(url) if len(self._stores) < _OBJECT_STORES else None
            with self._stores_lock:
                store = self._stores.setdefault(
                    where,
                    None
                    if address is None
                    else PlainHttp(*address, _OBJECT_HEADERS, timeout=300.0, connect_timeout=10.0),
                )
        if store is None:
            resp = self.plain.get(url)
            return resp.status_code, resp.content
        target = parts.path + ("?" + parts.query if parts.query else "")
        status, body, _ = store.request("GET", target or "/", None)
        return status, body

    def api_url(self, path: str, params: Any = None) -> httpx.URL:
        """The whole URL of API path ``path`` (quoted, from the API's root) with query
        ``params``, parsed once: httpx parses a relative URL, the URL merged with its base and
        that one again with its query (three parses, ~0.15 ms of a resolve's 1.1 ms of client
        CPU)."""
        return self.api.base_url.copy_with(raw_path=self._target(path, params))

    def _target(self, path: str, params: Any = None) -> bytes:
        raw = path.lstrip("/")
        if params:
            raw += "?" + str(httpx.QueryParams(params))
        return bytes(self._api_path + raw.encode("ascii"))

    def call(self, method: str, path: str, *, idempotent: bool = True, **kw: Any) -> Any:
        """An API call's JSON answer (None for an empty one): over ``json_calls`` when it has
        no other arguments than ``json`` and ``params``, else through httpx."""
        calls = self.json_calls
        if calls is None or not kw.keys() <= {"json", "params"}:
            resp = self.send(method, path, idempotent=idempotent, **kw)
            return resp.json() if resp.content else None
        _check_fields(kw.get("json"))
        target = self._target(path, kw.get("params"))
        # httpx's encoding of a JSON body, byte for byte
        body = None if kw.get("json") is None else _dumps(kw["json"])

        hooks = self.api.event_hooks  # they see every API request and answer, as httpx's

        def attempt() -> bytes:
            request = None
            if hooks["request"] or hooks["response"]:
                url = self.api.base_url.copy_with(raw_path=target)
                request = httpx.Request(method, url, headers=calls.headers, content=body)
            for hook in hooks["request"]:
                hook(request)
            status, content, headers = calls.request(
                method, target.decode("ascii"), body, idempotent=idempotent
            )
            for hook in hooks["response"]:
                hook(
                    httpx.Response(
                        status, headers=headers.items(), content=content, request=request
                    )
                )
            if status >= 400:
                self.raise_for(status, lambda: _loads(content), idempotent)
            return content

        content = self.retrying(attempt, idempotent=idempotent)
        return _decode(content) if content else None

    def check(self, resp: httpx.Response) -> None:
        """Raise what a streamed answer's error status means (``Busy`` for 502/503/504)."""
        if resp.status_code >= 400:
            resp.read()
            self.raise_for(resp.status_code, lambda: json_body(resp))

    def raise_for(
        self,
        status: int,
        body: Callable[[], Any],
        idempotent: bool = True,
        accept: tuple[int, ...] = (),
    ) -> None:
        """Raise what an answer's error ``status`` means, its JSON ``body()`` read only then:
        ``Busy`` (502/503/504) for a call ``Retrying`` may repeat, else the error the body
        names; a status in ``accept`` is an answer, not an error. The one owner of this rule
        for every way an answer comes (``send``, ``call``, ``check``)."""
        if status in RETRY_STATUS and idempotent:
            raise Busy(status, body())
        if status >= 400 and status not in accept:
            raise error_from_body(status, body(), self.base_url)

    def close(self) -> None:
        self.api.close()
        self.plain.close()
        if self.json_calls is not None:
            self.json_calls.close()
        for store in self._stores.values():
            if store is not None:
                store.close()


def _check_fields(body: Any) -> None:
    """What the server would refuse (NaN, 1e999, ...) is refused here alike, field named."""
    if isinstance(body, dict):
        for field, value in body.items():
            if field not in ("changes", "digests"):  # checked row by row by the server
                check_json_value(value, field)


def _dumps(value: Any) -> bytes:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8")


def _decode(content: bytes) -> Any:
    return json.loads(content)


def _loads(content: bytes) -> Any:
    """A JSON answer (None when it is not JSON, as ``json_body``)."""
    try:
        return json.loads(content)
    except ValueError:
        return None
