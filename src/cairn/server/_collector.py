"""The server's collector of expired versions (W&B's ``Artifact.ttl``).

A server hides versions whose TTL ran out from every query at once. This collector, a thread of
each server process, also frees their storage: every ``CAIRN_SERVER_GC_INTERVAL`` seconds (0
turns it off) it marks expired versions deleted (aliases removed, ``latest`` moved) and, when it
marked any, runs the garbage collector (blobs unreferenced for ``CAIRN_SERVER_GC_GRACE`` seconds
go), under the maintenance lock every server process and ``cairn gc --db/--store`` share, so
several servers on one catalog never collect at once. ``POST /admin/gc`` does the same on demand.
Each pass that did something is logged as one JSON line (``event: "ttl_collect"``).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from cairn.server._backend import Backend

log = logging.getLogger("cairn.server.collector")


def collect_expired(backend: Backend, grace_seconds: float) -> dict[str, Any]:
    """One pass: expire versions, and if any expired, free what no version uses any more."""
    expired = backend.service.expire_versions()
    out: dict[str, Any] = {"expired_versions": expired}
    if expired:
        report = backend.service.collect_garbage(grace_seconds=grace_seconds)
        out |= {"removed_blobs": report.removed_blobs, "removed_bytes": report.removed_bytes}
    return out


class Collector:
    """A daemon thread running ``collect_expired`` every ``interval`` seconds until stopped."""

    def __init__(self, backend: Backend, interval: float, grace_seconds: float) -> None:
        self._backend = backend
        self._interval = interval
        self._grace = grace_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cairn-ttl-collector", daemon=True)

    def start(self) -> Collector:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                done = collect_expired(self._backend, self._grace)
            except Exception as exc:  # noqa: BLE001 - a failed pass is logged; the next retries
                log.warning(
                    "ttl collection failed",
                    extra={"fields": {"event": "ttl_collect_failed", "error": type(exc).__name__}},
                )
                continue
            if done["expired_versions"]:
                log.info("ttl collection", extra={"fields": {"event": "ttl_collect", **done}})
