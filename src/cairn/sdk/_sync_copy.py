"""The content of synced versions: the destination is asked which pages and blobs it lacks (per
batch of 20,000, as the manifest is walked: never all of it in memory) and only those are sent,
small ones many per request (a request each 8 MiB, as they are read, four at a time), large ones
through its upload path (begun first, in a thread of their own; the small ones go once the first
large one's content has left, while its server verifies and stores it)."""

from __future__ import annotations

import os
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from cairn.core import Index, decode_node
from cairn.sdk._progress import Progress
from cairn.sdk._sync_plan import SyncReport
from cairn.service import Service, packed_size

_PRESENCE_BATCH = 20_000  # digests per presence question
_MEMORY_LIMIT = 8 << 20  # blobs below this travel as bytes, larger ones through a file
_SEND_BYTES = 8 << 20  # small blobs per store_blobs call (as packed: one request to a server)
_SENDING = 4  # store_blobs calls in flight at once, while the next batch is read
_PAGE_BYTES = 2 << 20  # manifest pages held before asking about them


class ContentCopier:
    """Sends the content of versions: what the destination lacks, nothing else."""

    def __init__(self, source: Service, dest: Service, report: SyncReport, bar: Progress) -> None:
        self.source = source
        self.dest = dest
        self.report = report
        self.bar = bar
        # Sending overlaps reading: a batch leaves as soon as it is read, a few at a time (at
        # most _SENDING batches in memory besides the one being read).
        self._pool = ThreadPoolExecutor(_SENDING, thread_name_prefix="cairn-sync")
        self._large = ThreadPoolExecutor(1, thread_name_prefix="cairn-sync-large")
        self._inflight: list[Future[None]] = []
        self._uploads: list[Future[None]] = []  # large blobs, in their thread
        self._lock = threading.Lock()

    def close(self) -> None:
        try:
            self._drain(0)
        finally:  # the large thread's shutdown waits for its uploads (copy() raised their errors)
            self._pool.shutdown()
            self._large.shutdown()

    def copy(self, root: str) -> None:
        """Send what the destination lacks of the manifest at ``root``: its pages are walked
        depth first and asked about a batch at a time, so memory holds one batch of pages and
        digests, never the whole manifest (a million entries are ~2,000 pages)."""
        pages: dict[str, bytes] = {}  # this batch's pages, with their bytes
        blobs: dict[str, int] = {}  # this batch's blobs, with their sizes
        held = 0
        stack = [root]
        while stack:
            digest = stack.pop()
            data = self.source.read_blob(digest)  # verified against its digest
            pages[digest] = data
            held += len(data)
            node = decode_node(data)
            if isinstance(node, Index):
                stack.extend(reversed([c.digest for c in node.children]))
            else:
                for e in node.entries:
                    if e.ref is None:
                        blobs[e.digest] = e.size or 0
            if len(pages) + len(blobs) >= _PRESENCE_BATCH or held >= _PAGE_BYTES or not stack:
                self._send(pages, blobs)
                pages, blobs, held = {}, {}, 0
        self._drain(0)
        self._finish_large()

    def _send(self, pages: dict[str, bytes], sizes: dict[str, int]) -> None:
        """Send what the destination lacks of one batch: the large blobs are asked about first
        (a few digests) and upload in another thread; the pages and small blobs are asked about
        meanwhile, then read and sent once the first large blob's content has left. A server
        hashes and fsyncs a large blob whole when it completes (a second for 1 GiB), which the
        small ones fill; sent while its parts arrived, they shared one event loop and two cores
        with them and the parts took longer by what they took (docs/design.md, sync)."""
        large = [d for d, n in sizes.items() if n >= _MEMORY_LIMIT and d not in pages]
        first_sent: threading.Event | None = None
        for start in range(0, len(large), _PRESENCE_BATCH):
            for d in self.dest.missing_blobs(large[start : start + _PRESENCE_BATCH]):
                sent = threading.Event()
                first_sent = first_sent or sent
                self._uploads.append(self._large.submit(self._send_large, d, sizes[d], sent))
        wanted = [*pages, *(d for d, n in sizes.items() if n < _MEMORY_LIMIT and d not in pages)]
        for start in range(0, len(wanted), _PRESENCE_BATCH):
            missing = self.dest.missing_blobs(wanted[start : start + _PRESENCE_BATCH])
            if first_sent is not None:
                first_sent.wait()  # set however the upload ends
            batch = [(d, pages[d]) for d in missing if d in pages]
            size = packed_size(batch)
            for digest, data in self.source.read_blobs([d for d in missing if d not in pages]):
                size += packed_size([(digest, data)])
                if batch and size > _SEND_BYTES:
                    self._store(batch)
                    batch, size = [], packed_size([(digest, data)])
                batch.append((digest, data))
            self._store(batch)

    def _finish_large(self) -> None:
        """Wait for the large blobs' uploads (raising what one raised)."""
        while self._uploads:
            self._uploads.pop(0).result()

    def _send_large(self, digest: str, size: int, sent: threading.Event) -> None:
        # A local source's own file is read in place (the destination checks it); otherwise the
        # blob is downloaded (verified) into a temporary file first, while the small ones go.
        try:
            path = self.source.blob_path(digest)
            if path is not None:
                self.dest.store_blob_file(path, digest, size, sent=sent.set)
            else:
                sent.set()
                with tempfile.TemporaryDirectory(prefix="cairn-sync-") as tmp:
                    path = os.path.join(tmp, "blob")
                    self.source.download_blob(digest, path)
                    self.dest.store_blob_file(path, digest, size)
        finally:
            sent.set()  # failed or stored: the small blobs wait no longer
        self._sent(1, size)

    def _store(self, batch: list[tuple[str, bytes]]) -> None:
        if batch:
            self._drain(_SENDING - 1)
            self._inflight.append(self._pool.submit(self._store_now, batch))

    def _store_now(self, batch: list[tuple[str, bytes]]) -> None:
        self.dest.store_blobs(batch, known_missing=True)  # asked about in ``_send``
        self._sent(len(batch), sum(len(b) for _, b in batch))

    def _drain(self, keep: int) -> None:
        """Wait until at most ``keep`` batches are being sent (raising what sending raised)."""
        while len(self._inflight) > keep:
            self._inflight.pop(0).result()

    def _sent(self, blobs: int, nbytes: int) -> None:
        with self._lock:  # two sending threads
            self.report.blobs_sent += blobs
            self.report.bytes_sent += nbytes
        self.bar.advance(0, nbytes)
