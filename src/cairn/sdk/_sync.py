"""Copying projects from one store to another: ``cairn sync``, ``cairn export``, ``cairn import``.

Everything goes through the Service protocol, so embedded to server, server to embedded, server
to server and embedded to embedded are one code path. For each collection (in version order):

1. **Plan** (reads only): the source's versions with their lineage (``export_versions``) are
   matched by manifest digest against the destination's. A version whose digest is there is
   *already there*; the others are *to copy*, keeping their numbers, unless the destination's
   collection has other history (it gave one of those numbers to other content, or has versions
   of its own numbered after the first one to copy): then they are *appended* with the
   destination's next numbers, in order, and each
   renumbered version records where it came from in its metadata (``cairn_sync``). With
   ``fail_on_conflict`` a plan with any renumbering (or an alias that would have to move) changes
   nothing at all. Aliases that point at another version at the destination stay unless
   ``move_aliases``.
2. **Content**, per version: the source's manifest pages are read, the destination is asked once
   (per batch of 20,000) which of the pages and blobs it lacks, and only those are sent (small ones
   many per request, large ones through the destination's upload path). A second sync finds every
   version by digest and sends no content.
3. **Commit**: ``import_run`` for runs the destination lacks, then ``import_version``, one
   transaction like any commit (with the version's TTL): a sync killed at any moment leaves
   blobs, never a partial version, and the next sync takes up where it stopped.
4. **Runs** linked to no copied version (unless ``artifacts`` narrows the sync): every run of
   the projects (created since ``since``) the destination lacks, through ``import_run``. A run
   copied (in 3 or 4) brings its history rows and summary (W&B's ``wandb sync`` of an offline
   run), right after it is imported; a run already at the destination is left as it is.

A bundle (``export_bundle``/``import_bundle``) is a directory holding an embedded store plus
``cairn-bundle.json`` (written last, so an interrupted export is not mistaken for a bundle); see
docs/design.md.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from functools import partial

from cairn.errors import (
    ValidationError,
)
from cairn.sdk import _progress
from cairn.sdk._progress import Progress
from cairn.sdk._session import open_embedded, open_server
from cairn.sdk._settings import Settings
from cairn.sdk._sync_copy import ContentCopier
from cairn.sdk._sync_import import Importer
from cairn.sdk._sync_plan import SyncOptions, SyncReport, plan_sync, wanted_projects
from cairn.sdk._units import parse_duration
from cairn.service import Service

ProgressFactory = Callable[..., AbstractContextManager[Progress]]


# -- opening stores --------------------------------------------------------------------------------


def open_store(spec: str, api_key: str | None = None, settings: Settings | None = None) -> Service:
    """A store named on the command line: ``http(s)://...`` is a server (with ``api_key``),
    anything else the directory of an embedded store; opened with ``settings`` (by default the
    environment's, read now)."""
    settings = Settings.from_env() if settings is None else settings
    if spec.startswith(("http://", "https://")):
        return open_server(spec, api_key, settings)
    if not spec or "://" in spec:
        raise ValidationError(
            f"store {spec!r}: give a directory (an embedded store) or an http(s):// server URL"
        )
    return open_embedded(spec, settings)


def parse_since(value: str, now: float | None = None) -> float:
    """``--since``: an ISO date or time (``2026-11-01``, ``2026-11-01T12:00``; UTC unless it
    says otherwise) or a duration back from now (``7d``, ``12h``)."""
    now = time.time() if now is None else now
    try:
        when = datetime.datetime.fromisoformat(value)
    except ValueError:
        try:
            return now - parse_duration(value)
        except ValidationError:
            raise ValidationError(
                f"--since {value!r}: give a date (2026-11-01), a time (2026-11-01T12:00) or a"
                " duration back from now (7d, 12h)"
            ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when.timestamp()


def sync_stores(
    source: Service,
    dest: Service,
    options: SyncOptions = SyncOptions(),
    *,
    progress: ProgressFactory = _progress.progress,
) -> SyncReport:
    """Copy what ``options`` select from ``source`` to ``dest`` (see the module's docstring)."""
    started = time.monotonic()
    report = SyncReport(source.location, dest.location, dry_run=options.dry_run)
    plans = plan_sync(source, dest, options, report)
    conflict = report.conflicting > 0 or bool(report.aliases_kept)
    if options.dry_run or (options.fail_on_conflict and conflict):
        report.refused = options.fail_on_conflict and conflict
        report.seconds = time.monotonic() - started
        return report
    todo = [s for p in plans for s in p.steps if s.there is None]
    total_bytes = sum(s.export.version.size for s in todo)
    with progress("sync", len(todo), total_bytes, unit="versions") as bar:
        copier = ContentCopier(source, dest, report, bar)
        try:
            syncer = Importer(source, dest, options, report)
            syncer.run(plans, copier, bar)
            if not options.artifacts:  # a project's runs, not only those of its artifacts
                syncer.copy_runs(wanted_projects(source, options))
        finally:
            copier.close()
    report.seconds = time.monotonic() - started
    return report


# -- what the command line calls ---------------------------------------------------------------------


def sync(
    source: str,
    destination: str,
    options: SyncOptions = SyncOptions(),
    *,
    source_key: str | None = None,
    destination_key: str | None = None,
) -> SyncReport:
    """``cairn sync SRC DST``: open both stores (a directory or a server URL), sync, close."""
    settings = Settings.from_env()
    src = open_store(source, source_key, settings)
    try:
        dst = open_store(destination, destination_key, settings)
        try:
            return sync_stores(
                src, dst, options, progress=partial(_progress.progress, settings=settings)
            )
        finally:
            dst.close()
    finally:
        src.close()
