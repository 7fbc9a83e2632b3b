"""Naming an upload begun before its digest (``POST <upload>/name``): the file is hashed while
its content is sent, by a thread of its own (``Naming``), and the stream stops (``Stopped``) when
the server has the blob already. Used by ``_http_upload.Uploader._store_unnamed``; see
docs/design.md."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator

from cairn.errors import NotFoundError, ValidationError
from cairn.service._http_client import HttpClient
from cairn.storage import hash_stream


class Stopped(Exception):
    """The stream of an upload begun before its digest stops: the naming said so."""


class Naming(threading.Thread):
    """Hashes a file while it is sent (reading by offset, as the sender does), then names the
    blob of the upload (``POST <upload>/name``: the upload given here, or by ``begun`` once
    the server began it). ``stored``: the key has the blob already, and the stream stops
    (``until_stopped``); it waits for the name once ``lead`` bytes are sent. A failure stops
    the stream too; ``result`` raises it. ``abandon``: the stream failed, the blob is not
    named; ``hashed``: no upload to name, the digest is wanted all the same."""

    def __init__(
        self, client: HttpClient, upload: str | None, fd: int, size: int, lead: int = 0
    ) -> None:
        super().__init__(name="cairn-upload-hash", daemon=True)
        self._client = client
        self._upload = upload
        self._fd = fd
        self._size = size
        self._lead = lead
        self._begun = threading.Event()  # the upload is known (or none will be)
        if upload is not None:
            self._begun.set()
        self._stop_sending = threading.Event()
        self._over = threading.Event()  # named, or failed
        self._abandoned = threading.Event()
        self.digest: str | None = None
        self.stored = False
        self._error: BaseException | None = None

    def begun(self, upload: str, lead: int) -> None:
        """The upload to name, begun while the file was hashed; ``lead``: see the class."""
        self._upload, self._lead = upload, lead
        self._begun.set()

    def hashed(self) -> tuple[str, int]:
        """No upload to name (the server wants the digest first): the digest and size, once
        hashed."""
        self._begun.set()
        self.join()
        return self.result(), self._size

    def run(self) -> None:
        try:
            hashed = _hash_fd(self._fd, self._abandoned)
            if hashed is None:
                return  # the stream failed: no name wanted
            digest, size = hashed
            if size != self._size:
                raise ValidationError(f"the file is {size} bytes now, not {self._size}")
            self.digest = digest
            self._begun.wait()
            if self._abandoned.is_set() or self._upload is None:
                return
            try:
                answer = self._client.call("POST", f"{self._upload}/name", json={"digest": digest})
                self.stored = bool(answer.get("stored"))
            except NotFoundError:  # gone: a lost answer of ``stored``, or the upload swept
                answer = {}
            if self.stored or answer.get("resume"):
                # (``resume``: the server dropped this upload for an interrupted one of the
                # same blob; the caller sends the file again named, which takes that one up)
                self._stop_sending.set()
        except BaseException as exc:  # noqa: BLE001 - the caller's thread raises it
            self._error = exc
            self._stop_sending.set()
        finally:
            self._over.set()

    def until_stopped(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """``chunks``, until the naming stops the stream (``Stopped``). Once ``lead`` bytes
        are sent it waits for the name: the server holds those parts and sends none before it,
        and a stream sent on meanwhile takes the CPU the hash needs (measured under load: the
        name, and so the first part to S3, came 0.3 s later than after a hash pass alone)."""
        sent = 0
        for chunk in chunks:
            if sent >= self._lead:
                self._over.wait()
            if self._stop_sending.is_set():
                raise Stopped()
            sent += len(chunk)
            yield chunk

    def abandon(self) -> None:
        self._abandoned.set()
        self._begun.set()

    def result(self) -> str:
        """The digest (once the thread ended), or the naming's error."""
        if self._error is not None:
            raise self._error
        assert self.digest is not None
        return self.digest


class _Abandoned(Exception):
    """The hash of a file sent before its digest stops: its stream failed."""


def _hash_fd(fd: int, stop: threading.Event) -> tuple[str, int] | None:
    """The digest and size of an open file, from its start (read by offset); None once
    ``stop`` is set (the stream failed: the whole file is not read for nothing, only up to the
    next chunk)."""

    def go_on(n: int) -> None:
        if stop.is_set():
            raise _Abandoned

    try:
        return hash_stream(fd, go_on)
    except _Abandoned:
        return None
