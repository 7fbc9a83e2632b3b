"""A stager's full buffers, stored by background writers while it reads on (``_staging.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

    from cairn.service import Service

Blobs = list[tuple[str, bytes]]


class WriteBehind:
    """Batches of blobs handed to a service's ``store_blobs`` on threads: a remote store's two
    (one asks which blobs are missing while the other is sent), the embedded store's one (SQLite
    has one writer anyway). At most two batches are in flight or waiting: memory stays bounded.

    A blob that a write under way carries already is left out of the next batch: both writes
    would find it missing and send it (identical files more than a buffer apart), and a server
    would record the key's upload of it twice (a ``COPY`` that fails, then its fallback,
    docs/design.md). One that ended stored it: the next write's presence check finds it."""

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None  # made by the first write
        self._writes: list[tuple[Future[None], set[str]]] = []  # each with its digests

    def write(self, service: Service, batch: Blobs) -> None:
        """Start storing ``batch`` in ``service`` (after the oldest write ended, if two are
        under way)."""
        carried = [ds for w, ds in self._writes if not w.done()]
        batch = [b for b in batch if all(b[0] not in ds for ds in carried)]
        if not batch:
            return
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            workers = 1 if service.is_local else 2
            self._pool = ThreadPoolExecutor(workers, thread_name_prefix="cairn-store")
        while len(self._writes) >= 2:
            self._writes.pop(0)[0].result()
        self._writes.append((self._pool.submit(service.store_blobs, batch), {d for d, _ in batch}))

    def __len__(self) -> int:
        """Writes under way or ended but not waited for."""
        return len(self._writes)

    def idle(self) -> bool:
        """No write under way."""
        return all(w.done() for w, _ in self._writes)

    def wait(self) -> None:
        """Every write ended; the first error, if any, raised here."""
        while self._writes:
            self._writes.pop(0)[0].result()
