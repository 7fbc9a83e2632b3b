"""An upload under way as the server sees it (a row of the catalog's ``uploads`` table with its
part arithmetic), and the pieces ``Transfers`` (``_transfers.py``) uses on its parts: the writer
of one part into the spool file, and the S3 answers it reads."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

from cairn.catalog import UploadRow
from cairn.errors import UnavailableError, ValidationError

STREAM_REF = "\nstream-parts"  # the end of a streamed upload's ``ref`` (parts in the catalog)
# Streamed by older servers: parts checked by their SHA-256 ("stream"), or by a CRC32 with their
# records kept as marker objects in S3 ("stream-crc32"). Such an upload is begun again.
OLDER_STREAM_REFS = ("\nstream", "\nstream-crc32")
# The ``ref`` of a streamed upload begun before its digest (``digest`` is ``''`` until the client
# names it: then the digest and the ref of a streamed upload are written in its place).
UNNAMED_REF = "unnamed-stream"


@dataclass(frozen=True, slots=True)
class Upload(UploadRow):
    """An upload under way (a row of the catalog's ``uploads`` table)."""

    @property
    def part_count(self) -> int:
        return max(1, -(-self.size // self.part_size))

    def part_length(self, n: int) -> int:
        if not 0 <= n < self.part_count:
            raise ValidationError(f"part {n} is out of range: the upload has {self.part_count}")
        return min(self.part_size, self.size - n * self.part_size)

    @property
    def multipart(self) -> tuple[str, str] | None:
        """(key, S3 upload id) of an upload to an S3 multipart upload; ``ref`` is
        ``key\\nid`` (sent by presigned URLs) or ``key\\nid\\nstream-parts`` (through the
        server; ``OLDER_STREAM_REFS``: an older server's)."""
        return multipart_of(self.ref)

    @property
    def streamed(self) -> bool:
        return self.ref.endswith((STREAM_REF, *OLDER_STREAM_REFS))

    @property
    def older_stream(self) -> bool:
        """Streamed by an older server (``OLDER_STREAM_REFS``: its part records are S3 marker
        objects, its parts checked another way): never taken up, begun again."""
        return self.ref.endswith(OLDER_STREAM_REFS)

    @property
    def unnamed(self) -> bool:
        """Begun before its digest: its content streams in, its blob is not named yet (its
        parts held until then, ``held``, or sent at once to a key of its own)."""
        return self.digest == "" or self.ref == UNNAMED_REF

    @property
    def held(self) -> bool:
        """Begun before its digest by a server that holds the parts until the name (their key
        was the blob's; ``UNNAMED_REF``, nothing in S3 yet)."""
        return self.ref == UNNAMED_REF


def multipart_of(ref: str) -> tuple[str, str] | None:
    """(key, S3 upload id) named by an upload's ``ref`` (``key\\nid[\\n...]``), if it names one."""
    lines = ref.split("\n")
    return (lines[0], lines[1]) if len(lines) >= 2 else None


def upload_of(row: UploadRow) -> Upload:
    return Upload(row.id, row.owner, row.digest, row.size, row.part_size, row.ref, row.active_at)


def open_for_part(path: str) -> int:
    """The spool file at ``path`` opened to write one part, under a shared ``flock`` held until
    the part's writer closes it (``complete`` takes it exclusively: ``held_spool``; a writer
    opened meanwhile waits for it, in a worker thread, as long as a hash takes). Raises
    ``FileNotFoundError`` where ``path`` no longer names the file once it is locked: the upload
    was completed (the file moved into the store, where no part may write) or abandoned."""
    fd = os.open(path, os.O_WRONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # waits while a complete holds it; across processes too
        if os.stat(path).st_ino == os.fstat(fd).st_ino:
            return fd
    except BaseException:
        os.close(fd)
        raise
    os.close(fd)
    raise FileNotFoundError(path)


@contextmanager
def held_spool(path: str, upload_id: str) -> Iterator[BinaryIO]:
    """The spool file at ``path`` to read, under an exclusive ``flock``: no part is being
    written (each writer holds a shared lock), and none writes until the caller is done (one
    waiting then finds the file gone from ``path``: ``open_for_part``). ``complete`` hashes,
    fsyncs and stores it under this lock, so the blob's bytes are the ones it verified. Not
    waited for: a part still arriving (its body's pace is the client's) refuses the complete
    with ``UnavailableError`` (503, which clients retry), so no complete holds a thread."""
    with open(path, "rb") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UnavailableError(
                f"a part of upload {upload_id} is still arriving; complete it once every part"
                " has been answered"
            ) from None
        yield f


class PartWriter:
    """Writes one part at its offset in the spool file, chunk by chunk (no 32 MiB buffers), on
    a descriptor from ``open_for_part`` (closing it ends the shared lock).

    Not fsynced here: ``complete`` hashes the whole file and fsyncs it once before it becomes a
    blob, so a part lost in a crash fails that check, never a version."""

    def __init__(self, fd: int, offset: int, length: int, marker: str) -> None:
        self._fd = fd
        self._pos = offset
        self._end = offset + length
        self._length = length
        self._marker = marker

    def write(self, chunk: bytes) -> None:
        if self._pos + len(chunk) > self._end:
            self.abort()
            raise ValidationError(f"part is longer than its {self._length} bytes")
        os.pwrite(self._fd, chunk, self._pos)
        self._pos += len(chunk)

    def close(self) -> None:
        """Mark the part done, if it arrived whole."""
        os.close(self._fd)
        if self._pos != self._end:
            raise ValidationError(
                f"part is {self._length} bytes, {self._end - self._pos} of them did not arrive"
            )
        with open(self._marker, "w"):
            pass

    def abort(self) -> None:
        try:
            os.close(self._fd)
        except OSError:
            pass
