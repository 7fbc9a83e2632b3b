"""Progress bars for long work: bytes, files, rate and ETA on a terminal, silence elsewhere.

Shown only when stderr is a terminal and ``CAIRN_SILENT`` is not set; the work is the same either
way. Bars appear only for work big enough to notice (see ``MIN_FILES``/``MIN_BYTES``).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

MIN_FILES = 200
MIN_BYTES = 64 << 20


class Progress:
    """Counts files and bytes; draws a bar when attached to a terminal."""

    def __init__(self, description: str, total_files: int | None, total_bytes: int | None) -> None:
        self.description = description
        self.total_files = total_files
        self.total_bytes = total_bytes
        self.files = 0
        self.bytes = 0
        self._lock = threading.Lock()
        self._rich: Any = None
        self._task: Any = None

    def advance(self, files: int, nbytes: int) -> None:
        with self._lock:
            self.files += files
            self.bytes += nbytes
            if self._rich is not None:
                self._rich.update(self._task, completed=self.bytes, files=self.files)

    def _start(self) -> None:
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
            TextColumn("{task.fields[files]}/" + str(total) + " files"),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            transient=True,
        )
        self._task = self._rich.add_task(self.description, total=self.total_bytes, files=0)
        self._rich.start()

    def _stop(self) -> None:
        if self._rich is not None:
            self._rich.stop()
            self._rich = None


def enabled() -> bool:
    if (os.environ.get("CAIRN_SILENT") or "").lower() in {"1", "true", "yes", "on"}:
        return False
    return sys.stderr.isatty()


@contextmanager
def progress(
    description: str, total_files: int | None = None, total_bytes: int | None = None
) -> Iterator[Progress]:
    """A Progress that draws itself if the work is large and stderr is a terminal."""
    bar = Progress(description, total_files, total_bytes)
    big = (total_files or 0) >= MIN_FILES or (total_bytes or 0) >= MIN_BYTES
    if big and enabled():
        bar._start()
    try:
        yield bar
    finally:
        bar._stop()
