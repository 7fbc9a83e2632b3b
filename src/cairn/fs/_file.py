"""Files of a ``cairn://`` filesystem: ranged reads of one pinned blob, and buffered writes.

A file opened for reading holds the digest and size of the entry its path named when it was
opened, so an alias that moves meanwhile does not change what it reads. It fetches only the ranges
read, in blocks with a small read-ahead (fsspec's read-ahead cache, in memory, per file): those
partial ranges never enter the download cache, which holds verified whole blobs only. Whoever reads
the file from its start to its end in order has the content checked against the digest at the end
(``DigestMismatchError`` then, rather than damaged data); a reader that jumps around, as a Parquet
reader does, reads ranges that no digest covers.
"""

from __future__ import annotations

import os
import tempfile
import threading
from typing import TYPE_CHECKING, Any

from fsspec.spec import AbstractBufferedFile

from cairn.core import digest_from_hasher, new_hasher
from cairn.errors import DigestMismatchError
from cairn.service import Service
from cairn.storage import SMALL_LIMIT

if TYPE_CHECKING:
    from cairn.fs._filesystem import CairnFileSystem
    from cairn.fs._writes import Draft

DEFAULT_BLOCK_SIZE = 256 << 10  # the read-ahead: small, since Parquet readers jump around


class CairnFile(AbstractBufferedFile):  # type: ignore[misc]
    """A seekable file of an artifact version: ranged reads (``rb``) or a new file (``wb``)."""

    DEFAULT_BLOCK_SIZE = DEFAULT_BLOCK_SIZE
    loc: int  # fsspec's position of the handle (this thread's, while it reads)

    def __init__(
        self,
        fs: CairnFileSystem,
        path: str,
        mode: str = "rb",
        *,
        service: Service,
        details: dict[str, Any] | None = None,
        draft: Draft | None = None,
        **kwargs: Any,
    ) -> None:
        self._service = service
        self._draft = draft
        self._details = details
        self._whole: bytes | None = None
        self._hasher: Any = None
        self._hashed = 0
        self._tmp: str | None = None
        super().__init__(
            fs, path, mode, size=None if details is None else details["size"], **kwargs
        )
        # A handle may be shared by threads (DuckDB reads one from all of its threads, each a
        # seek then a read): each thread keeps its own position, and reads take turns with the
        # shared read-ahead cache, whose fetch releases the GIL.
        self._lock = threading.RLock()
        self._positions: dict[int, int] = {}
        if mode == "rb":
            assert details is not None
            self.digest: str = details["digest"]
            self._hasher = new_hasher()

    # -- reading -------------------------------------------------------------------------------

    def _fetch_range(self, start: int, end: int) -> bytes:
        if self.size < SMALL_LIMIT:
            # A small blob costs one request whole, and comes back verified.
            if self._whole is None:
                self._whole = self._service.read_blob(self.digest)
            return self._whole[start:end]
        return self._service.read_blob_range(self.digest, start, max(0, end - start))

    def seek(self, loc: int, whence: int = 0) -> int:
        with self._lock:
            self.loc = self._positions.get(threading.get_ident(), self.loc)
            at: int = super().seek(loc, whence)
            self._positions[threading.get_ident()] = at
            return at

    def read(self, length: int = -1) -> bytes:
        me = threading.get_ident()
        with self._lock:
            self.loc = self._positions.get(me, self.loc)
            start = self.loc
            data: bytes = super().read(length)
            if me in self._positions:
                self._positions[me] = self.loc
            self._check_whole(start, data)
            return data

    def _check_whole(self, start: int, data: bytes) -> None:
        """Hash what is read in order from the start; at the end, compare with the digest."""
        if self._hasher is None or not data:
            return
        if start > self._hashed:
            self._hasher = None  # a jump forward: this reader does not read the file whole
            return
        skip = self._hashed - start
        if skip < len(data):
            self._hasher.update(data[skip:])
            self._hashed = start + len(data)
        if self._hashed >= self.size:
            digest = digest_from_hasher(self._hasher)
            self._hasher = None
            if digest != self.digest:
                raise DigestMismatchError(
                    f"{self.full_name}: the content read has another digest than {self.digest};"
                    " the stored blob is damaged (run `cairn verify`)"
                )

    # -- writing -------------------------------------------------------------------------------

    def _initiate_upload(self) -> None:
        fd, self._tmp = tempfile.mkstemp(prefix="cairn-fs-", suffix=".partial")
        os.close(fd)

    def _upload_chunk(self, final: bool = False) -> bool:
        assert self._tmp is not None
        with open(self._tmp, "ab") as f:
            f.write(self.buffer.getvalue())
        if final and self.autocommit:
            self.commit()
        return True

    def commit(self) -> None:
        """Hand the written file to the filesystem: a new version now, or at the end of the
        transaction."""
        if self._tmp is None:  # nothing was ever flushed: an empty file
            self._initiate_upload()
        assert self._tmp is not None
        tmp, self._tmp = self._tmp, None
        self.fs._stage_file(self.path, tmp, owned=True, draft=self._draft)

    def discard(self) -> None:
        if self._tmp is not None:
            os.unlink(self._tmp)
            self._tmp = None
        if self._draft is not None and self.autocommit:
            self._draft.close()  # a draft of its own (in a transaction, the draft is shared)
