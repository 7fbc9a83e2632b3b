"""Progress of long work: a bar on a terminal, a line every few seconds in logs, else silence.

``progress(...)`` counts finished files and their bytes (``advance``). While it is open it also
listens to the byte-level hooks of ``cairn.core._progress``: the loops that hash, store, upload
and download one large blob report each chunk, so one big file (a checkpoint) moves the display
while it is worked on, not only when it is done.

Where it shows (``cairn.sdk._settings.progress_output``): on stderr, as a bar when stderr is a
terminal, or as plain lines when ``CAIRN_PROGRESS=plain``; nothing with ``CAIRN_SILENT`` (else
``WANDB_SILENT``) or ``CAIRN_PROGRESS=off``. A bar appears at once for work big enough to notice
(``MIN_FILES`` files or ``MIN_BYTES`` bytes), or as soon as smaller work (or work of unknown size)
has taken longer than ``MIN_SECONDS``. Plain lines come every ``CAIRN_PROGRESS_SECONDS``
(default 5), so short work prints none; 0 shows every step at once (tests, debugging). The work is the same either way. ``progress`` has the
signature of ``cairn.service.ProgressFactory``, so the service's long operations (gc, verify)
report through it too.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

from cairn.core import Advance, format_size, listening
from cairn.sdk._settings import Settings, progress_output

MIN_FILES = 200
MIN_BYTES = 64 << 20
MIN_SECONDS = 1.0


@dataclass
class _Transfer:
    """One blob's bytes in flight (see ``cairn.core._progress.transfer``)."""

    phase: str
    name: str | None
    total: int | None
    done: int = 0
    task: Any = None  # its line in the rich display

    @property
    def label(self) -> str:
        return self.phase if self.name is None else f"{self.phase} {os.path.basename(self.name)}"

    def describe(self) -> str:
        if self.total:
            pct = min(100, self.done * 100 // self.total)
            return f"{self.label}: {format_size(self.done, binary=True)} of {format_size(self.total, binary=True)} ({pct}%)"
        return f"{self.label}: {format_size(self.done, binary=True)}"


class Progress:
    """Counts finished files and bytes, and the bytes of blobs in flight; shows them."""

    def __init__(
        self,
        description: str,
        total_files: int | None,
        total_bytes: int | None,
        unit: str = "files",
        output: str | None = None,
        seconds: float = 5.0,
    ) -> None:
        self.description = description
        self.unit = unit  # what "files" counts (e.g. versions, for a sync)
        self.total_files = total_files
        self.total_bytes = total_bytes
        self.files = 0
        self.bytes = 0
        self._output = output  # "bar", "plain" or None (count only)
        self._seconds = seconds
        self._lock = threading.Lock()
        self._rich: Any = None
        self._task: Any = None
        self._transfers: dict[int, _Transfer] = {}
        self._started_at = time.monotonic()
        self._last_line = self._started_at
        self._lines = 0
        self._done = False

    # -- what the work reports -----------------------------------------------------------------

    def advance(self, files: int, nbytes: int) -> None:
        """``files`` more finished, holding ``nbytes``."""
        with self._lock:
            self.files += files
            self.bytes += nbytes
            self._show()

    def transfer_begun(self, phase: str, total: int | None, name: str | None) -> Advance:
        transfer = _Transfer(phase, name, total)

        def advance(nbytes: int) -> None:
            with self._lock:
                transfer.done += nbytes
                self._show(transfer)

        with self._lock:
            self._transfers[id(advance)] = transfer
            if self._rich is not None:
                self._add_transfer_task(transfer)
        return advance

    def transfer_ended(self, advance: Advance) -> None:
        with self._lock:
            transfer = self._transfers.pop(id(advance), None)
            if transfer is not None and transfer.task is not None and self._rich is not None:
                self._rich.remove_task(transfer.task)

    # -- showing it ----------------------------------------------------------------------------

    def _show(self, transfer: _Transfer | None = None) -> None:
        """Called with the lock held, after every report."""
        if self._done or self._output is None:
            return
        now = time.monotonic()
        if self._output == "plain":
            if now - self._last_line >= self._seconds:
                self._write_line()
                self._last_line = now
            return
        if self._rich is None and now - self._started_at >= min(MIN_SECONDS, self._seconds):
            self._start()
        if self._rich is not None:
            refresh = self._seconds == 0  # every step drawn (tests); else rich's own pace
            self._rich.update(
                self._task, completed=self.bytes, files=self._files(), refresh=refresh
            )
            if transfer is not None and transfer.task is not None:
                self._rich.update(transfer.task, completed=transfer.done, refresh=refresh)

    def _line(self) -> str:
        files = f"{self.files}/{self.total_files}" if self.total_files is not None else self.files
        done = format_size(self.bytes, binary=True)
        if self.total_bytes is not None:
            done += f" of {format_size(self.total_bytes, binary=True)}"
        parts = [f"cairn: {self.description}: {files} {self.unit}, {done}"]
        parts += [t.describe() for t in self._transfers.values()]
        return "; ".join(parts)

    def _write_line(self, suffix: str = "") -> None:
        sys.stderr.write(self._line() + suffix + "\n")
        sys.stderr.flush()
        self._lines += 1

    def _start(self) -> None:
        from rich.console import Console
        from rich.errors import LiveError
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
        from rich.progress import (
            Progress as RichProgress,
        )

        self._rich = RichProgress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TextColumn("{task.fields[files]}"),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._task = self._rich.add_task(
            self.description,
            total=self.total_bytes,
            completed=self.bytes,
            files=self._files(),
        )
        for transfer in self._transfers.values():
            self._add_transfer_task(transfer)
        try:
            self._rich.start()
        except LiveError:  # rich < 14 draws one bar at a time: the one already on screen shows
            self._rich, self._output = None, None

    def _files(self) -> str:
        total = self.total_files if self.total_files is not None else "?"
        return f"{self.files}/{total} {self.unit}"

    def _add_transfer_task(self, transfer: _Transfer) -> None:
        transfer.task = self._rich.add_task(
            "  " + transfer.label, total=transfer.total, completed=transfer.done, files=""
        )

    def _stop(self) -> None:
        with self._lock:
            self._done = True
            if self._rich is not None:
                self._rich.stop()
                self._rich = None
            if self._lines:  # long work said how far it got: say it is over
                self._write_line(" (done)")


@contextmanager
def progress(
    description: str,
    total_files: int | None = None,
    total_bytes: int | None = None,
    unit: str = "files",
    *,
    settings: Settings | None = None,
) -> Iterator[Progress]:
    """A Progress that shows itself (see the module's docstring) if the work is large or takes
    a while; while it is open it hears every blob's bytes as they move. ``settings``: those of
    the caller's session (None: read from the environment)."""
    output, seconds = progress_output(settings)
    bar = Progress(description, total_files, total_bytes, unit, output, seconds)
    if output == "bar" and ((total_files or 0) >= MIN_FILES or (total_bytes or 0) >= MIN_BYTES):
        with bar._lock:
            bar._start()
    try:
        with listening(bar) if output is not None else nullcontext():
            yield bar
    finally:
        bar._stop()
