"""The server's periodic sweep of what killed writers left behind.

A client that goes away mid-upload leaves an upload row, its spool files and (S3) a multipart
upload; a process killed while it stored a large blob leaves a ``*.partial`` file in the store's
``tmp/``. ``cairn gc`` removes both, but a server nobody collects would keep them forever. So each
server process sweeps them every ``CAIRN_SERVER_SWEEP_INTERVAL`` seconds (0: never), once they
are older than ``CAIRN_SERVER_UPLOAD_MAX_AGE``, in a daemon thread started with the app and
stopped with it. Several processes sweeping at once is harmless: every removal tolerates the
thing being gone already.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cairn.server._backend import Backend

log = logging.getLogger("cairn.server.sweep")


class Sweeper:
    def __init__(self, backend: Backend, interval: float, max_age: float) -> None:
        self._backend = backend
        self._interval = interval
        self._max_age = max_age
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._interval <= 0:
            return
        self._thread = threading.Thread(target=self._run, name="cairn-sweeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(30)

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            try:
                self.sweep()
            except Exception as exc:  # noqa: BLE001 - a failed sweep is retried next time
                log.warning(
                    "sweep failed", extra={"fields": {"event": "sweep_failed", "error": repr(exc)}}
                )

    def sweep(self) -> tuple[int, int]:
        """Remove abandoned uploads and stale temp files now: ``(uploads, temp files)``."""
        uploads = self._backend.transfers.sweep(self._max_age)
        temp = self._backend.blobs.remove_stale_temp(self._max_age)
        if uploads or temp:
            log.info(
                "swept",
                extra={"fields": {"event": "sweep", "uploads": uploads, "temp_files": temp}},
            )
        return uploads, temp
