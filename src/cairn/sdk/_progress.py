"""Progress bars for long work: bytes, files, rate and ETA on a terminal, silence elsewhere.

Shown on stderr, only when stderr is a terminal and ``CAIRN_SILENT`` is not set; the work is the
same either way. A bar appears at once for work big enough to notice (``MIN_FILES`` files or
``MIN_BYTES`` bytes), or as soon as smaller work (or work of unknown size) has taken longer than
``MIN_SECONDS``. ``progress`` has the signature of ``cairn.service.ProgressFactory``, so the
service's long operations (gc, verify) draw through it too.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

MIN_FILES = 200
MIN_BYTES = 64 << 20
MIN_SECONDS = 1.0
_TRUE = {"1", "true", "yes", "on"}


class Progress:
    """Counts files and bytes; draws a bar when attached to a terminal."""

    def __init__(
        self,
        description: str,
        total_files: int | None,
        total_bytes: int | None,
        unit: str = "files",
    ) -> None:
        self.description = description
        self.unit = unit  # what "files" counts (e.g. versions, for a sync)
        self.total_files = total_files
        self.total_bytes = total_bytes
        self.files = 0
        self.bytes = 0
        self._lock = threading.Lock()
        self._rich: Any = None
        self._task: Any = None
        self._started_at = time.monotonic()
        self._may_draw = False  # set when stderr is a terminal and the user did not silence it
        self._done = False

    def advance(self, files: int, nbytes: int) -> None:
        with self._lock:
            self.files += files
            self.bytes += nbytes
            if (
                self._rich is None
                and self._may_draw
                and not self._done
                and time.monotonic() - self._started_at >= MIN_SECONDS
            ):
                self._start()
            if self._rich is not None:
                self._rich.update(self._task, completed=self.bytes, files=self.files)

    def _start(self) -> None:
        from rich.console import Console
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

        total = self.total_files if self.total_files is not None else "?"
        self._rich = RichProgress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TextColumn("{task.fields[files]}/" + str(total) + " " + self.unit),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._task = self._rich.add_task(
            self.description, total=self.total_bytes, completed=self.bytes, files=self.files
        )
        self._rich.start()

    def _stop(self) -> None:
        with self._lock:
            self._done = True
            if self._rich is not None:
                self._rich.stop()
                self._rich = None


def enabled() -> bool:
    """Whether bars may be drawn: stderr is a terminal and ``CAIRN_SILENT`` (else
    ``WANDB_SILENT``) is not true."""
    silent = os.environ.get("CAIRN_SILENT") or os.environ.get("WANDB_SILENT") or ""
    if silent.lower() in _TRUE:
        return False
    return sys.stderr.isatty()


@contextmanager
def progress(
    description: str,
    total_files: int | None = None,
    total_bytes: int | None = None,
    unit: str = "files",
) -> Iterator[Progress]:
    """A Progress that draws itself on a terminal if the work is large or takes a while."""
    bar = Progress(description, total_files, total_bytes, unit)
    if enabled():
        bar._may_draw = True
        if (total_files or 0) >= MIN_FILES or (total_bytes or 0) >= MIN_BYTES:
            with bar._lock:
                bar._start()
    try:
        yield bar
    finally:
        bar._stop()
