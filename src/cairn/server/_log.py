"""The server's log: one JSON object per line on stderr, which log shippers read as they are.

Each request is logged once it is answered (``event: "request"``: method, path, status, key id,
milliseconds), and each refused key once more (``event: "key_refused"``: the key id if the key
had the shape of one, and why), and the text of an error whose answer withheld it
(``event: "error_withheld"``: it names the server's own detail). A key's secret is never logged: the ``Authorization`` header is
not read here, and any text that looks like a whole key is cut down to its id.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ACCESS = "cairn.server.access"
_KEY_TEXT = re.compile(r"cairn_([0-9a-f]{16})_[A-Za-z0-9_\-%]*")
_KEY_PATH = re.compile(r"(/keys/)([^/?]*)")


class JsonLines(logging.Formatter):
    """A record as one JSON line: time, level, logger, message and the record's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        else:
            out["message"] = redact(record.getMessage())
        return json.dumps(out, separators=(",", ":"), default=str)


def configure() -> None:
    """Send cairn's server logs to stderr as JSON lines (once per process)."""
    log = logging.getLogger("cairn.server")
    if any(getattr(h, "_cairn", False) for h in log.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines())
    handler._cairn = True  # type: ignore[attr-defined]
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def redact(text: str) -> str:
    """``text`` with every whole key cut down to its id (``cairn_<id>_***``)."""
    text = _KEY_TEXT.sub(lambda m: f"cairn_{m.group(1)}_***", text)

    def key_path(m: re.Match[str]) -> str:
        seg = m.group(2)
        return m.group(0) if re.fullmatch(r"[0-9a-f]{16}", seg) else f"{m.group(1)}***"

    return _KEY_PATH.sub(key_path, text)


def key_refused(path: str, token: str, reason: str) -> None:
    """Log a refused key: its id when it has the shape of one, never its secret."""
    m = re.match(r"cairn_([0-9a-f]{16})_", token)
    logging.getLogger(ACCESS).warning(
        "key refused",
        extra={
            "fields": {
                "event": "key_refused",
                "path": redact(path),
                "key_id": m.group(1) if m else None,
                "reason": reason,
            }
        },
    )


def withheld(path: str, exc: BaseException) -> None:
    """Log the text of an error whose answer withheld it (it names the server's own detail)."""
    logging.getLogger("cairn.server").warning(
        "error",
        extra={
            "fields": {
                "event": "error_withheld",
                "path": redact(path),
                "type": type(exc).__name__,
                "message": redact(str(exc)),
            }
        },
    )


class RequestLog:
    """ASGI middleware: one ``request`` line per answered HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.log = logging.getLogger(ACCESS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = 500  # what the client sees if the app fails before answering

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            state = scope.get("state") or {}
            self.log.info(
                "request",
                extra={
                    "fields": {
                        "event": "request",
                        "method": scope.get("method"),
                        "path": redact(str(scope.get("path", ""))),
                        "status": status,
                        "key_id": state.get("key_id"),
                        "ms": round((time.monotonic() - started) * 1000, 1),
                    }
                },
            )
