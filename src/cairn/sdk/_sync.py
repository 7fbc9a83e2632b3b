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
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from cairn.core import LATEST, Index, RunRecord, decode_node
from cairn.errors import (
    ConflictError,
    DigestMismatchError,
    NotFoundError,
    TypeConflictError,
    UsageError,
    ValidationError,
)
from cairn.sdk import _progress
from cairn.sdk._progress import Progress
from cairn.sdk._units import parse_duration
from cairn.service import ImportRequest, LocalService, Service, VersionExport, http_service

BUNDLE_FILE = "cairn-bundle.json"
BUNDLE_FORMAT = "cairn.bundle/1"
PROVENANCE_KEY = "cairn_sync"  # metadata of a renumbered version: where it came from
_PRESENCE_BATCH = 20_000  # digests per presence question
_MEMORY_LIMIT = 8 << 20  # blobs below this travel as bytes, larger ones through a file
_SEND_BYTES = 32 << 20  # bytes of small blobs per store_blobs call
_ROLES = ("output", "input", "writer")

ProgressFactory = Callable[..., AbstractContextManager[Progress]]


@dataclass(frozen=True, slots=True)
class SyncOptions:
    """What to copy and how. ``projects``: ``entity/project`` or ``project`` (any entity);
    ``artifacts``: collection names; ``since``: only versions created at or after this time
    (seconds since the epoch); ``entity``: put everything under this entity at the destination."""

    projects: Sequence[str] = ()
    artifacts: Sequence[str] = ()
    since: float | None = None
    dry_run: bool = False
    fail_on_conflict: bool = False
    move_aliases: bool = False
    entity: str | None = None


@dataclass
class SyncReport:
    """What a sync did (or, with ``dry_run``, would do)."""

    source: str
    destination: str
    dry_run: bool = False
    copied: int = 0
    already_there: int = 0
    conflicting: int = 0  # versions appended under new numbers (or refused)
    refused: bool = False  # fail_on_conflict found a conflict: nothing changed
    renumbered: list[tuple[str, str]] = field(default_factory=list)
    aliases_kept: list[str] = field(default_factory=list)  # not moved: point elsewhere there
    aliases_moved: list[str] = field(default_factory=list)
    runs_copied: int = 0
    blobs_sent: int = 0
    bytes_sent: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "destination": self.destination,
            "dry_run": self.dry_run,
            "copied": self.copied,
            "already_there": self.already_there,
            "conflicting": self.conflicting,
            "refused": self.refused,
            "renumbered": [{"source": s, "destination": d} for s, d in self.renumbered],
            "aliases_kept": self.aliases_kept,
            "aliases_moved": self.aliases_moved,
            "runs_copied": self.runs_copied,
            "blobs_sent": self.blobs_sent,
            "bytes_sent": self.bytes_sent,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class _Step:
    """One source version and what to do with it."""

    export: VersionExport
    there: VersionExport | None  # the destination's version with the same digest
    index: int | None  # the number to ask for (None: the next one)
    aliases: list[str]  # aliases to set at the destination


@dataclass
class _CollectionPlan:
    entity: str  # at the destination
    project: str
    name: str
    type: str
    steps: list[_Step]
    dest_ids: dict[str, str]  # digest -> version id of what the destination holds


# -- opening stores --------------------------------------------------------------------------------


def open_store(spec: str, api_key: str | None = None) -> Service:
    """A store named on the command line: ``http(s)://...`` is a server (with ``api_key``),
    anything else the directory of an embedded store."""
    if spec.startswith(("http://", "https://")):
        from cairn.sdk._settings import Settings

        return http_service(spec, api_key, Settings.from_env().cache_dir)
    if not spec or "://" in spec:
        raise ValidationError(
            f"store {spec!r}: give a directory (an embedded store) or an http(s):// server URL"
        )
    return LocalService.open(spec)


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


# -- planning ----------------------------------------------------------------------------------------


def _wanted_projects(source: Service, options: SyncOptions) -> list[tuple[str, str]]:
    projects = source.list_projects()
    if not options.projects:
        return projects
    out = []
    for entity, project in projects:
        for want in options.projects:
            if want == project or want == f"{entity}/{project}":
                out.append((entity, project))
                break
    return out


def _digest(x: VersionExport) -> str:
    assert x.version.digest is not None  # exports are committed versions
    return x.version.digest


def _plan_collection(
    source: Service,
    dest: Service,
    entity: str,
    project: str,
    name: str,
    type_name: str,
    options: SyncOptions,
    report: SyncReport,
) -> _CollectionPlan | None:
    src = source.export_versions(entity, project, name)
    if not src:
        return None
    to_entity = options.entity or entity
    dst = dest.export_versions(to_entity, project, name)
    if dst and dst[0].version.type != type_name:
        raise TypeConflictError(
            f"{to_entity}/{project}/{name} is a {dst[0].version.type!r} at the destination and a"
            f" {type_name!r} at the source; rename one of them first"
        )
    by_digest = {_digest(x): x for x in dst}
    src_digests = {_digest(x) for x in src}
    # Other history: a number the destination gave to other content, or versions of its own
    # after the first number to copy (the histories would interleave). A version the source
    # deleted since an earlier sync is neither.
    todo = [x.version.index or 0 for x in src if _digest(x) not in by_digest]
    taken = {x.version.index for x in dst}
    renumber = bool(todo) and (
        any(i in taken for i in todo)
        or any(_digest(x) not in src_digests and (x.version.index or 0) > min(todo) for x in dst)
    )
    owner = {a: _digest(x) for x in dst for a in x.version.aliases}
    ids = {d: x.version.id for d, x in by_digest.items()}
    plan = _CollectionPlan(to_entity, project, name, type_name, [], ids)
    where = f"{to_entity}/{project}/{name}"
    for x in src:
        if options.since is not None and x.version.created_at < options.since:
            continue
        digest = _digest(x)
        there = by_digest.get(digest)
        aliases = []
        for alias in x.version.aliases:
            if alias == LATEST or owner.get(alias) == digest:
                continue
            if alias in owner and not options.move_aliases:
                report.aliases_kept.append(f"{where}:{alias}")
                continue
            if alias in owner:
                report.aliases_moved.append(f"{where}:{alias}")
            aliases.append(alias)
            owner[alias] = digest
        index = x.version.index
        if there is None:
            report.copied += 1
            if renumber:
                index = None
                report.conflicting += 1
        else:
            report.already_there += 1
        plan.steps.append(_Step(x, there, index, aliases))
    return plan


def _plan(
    source: Service, dest: Service, options: SyncOptions, report: SyncReport
) -> list[_CollectionPlan]:
    plans = []
    for entity, project in _wanted_projects(source, options):
        for coll in source.list_collections(entity, project):
            if options.artifacts and coll.name not in options.artifacts:
                continue
            plan = _plan_collection(
                source, dest, entity, project, coll.name, coll.type, options, report
            )
            if plan is not None:
                plans.append(plan)
    return plans


# -- copying -------------------------------------------------------------------------------------------


class _Copier:
    """Sends the content of versions: what the destination lacks, nothing else."""

    def __init__(self, source: Service, dest: Service, report: SyncReport, bar: Progress) -> None:
        self.source = source
        self.dest = dest
        self.report = report
        self.bar = bar
        # Sending a batch overlaps reading the next one (at most two batches in memory).
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="cairn-sync")
        self._large = ThreadPoolExecutor(1, thread_name_prefix="cairn-sync-large")
        self._inflight: list[Future[None]] = []
        self._lock = threading.Lock()

    def close(self) -> None:
        try:
            self._drain(0)
        finally:
            self._pool.shutdown()
            self._large.shutdown()

    def _walk(self, root: str) -> tuple[dict[str, bytes], dict[str, int]]:
        """The manifest's pages (with their bytes) and the blobs its entries name (with sizes)."""
        pages: dict[str, bytes] = {}
        blobs: dict[str, int] = {}
        level = [root]
        while level:
            below: list[str] = []
            for digest in level:
                if digest in pages:
                    continue
                data = self.source.read_blob(digest)  # verified against its digest
                pages[digest] = data
                node = decode_node(data)
                if isinstance(node, Index):
                    below.extend(c.digest for c in node.children)
                else:
                    for e in node.entries:
                        if e.ref is None:
                            blobs[e.digest] = e.size or 0
            level = below
        return pages, blobs

    def copy(self, root: str) -> None:
        pages, blobs = self._walk(root)
        wanted = [*pages, *blobs]
        for start in range(0, len(wanted), _PRESENCE_BATCH):
            missing = self.dest.missing_blobs(wanted[start : start + _PRESENCE_BATCH])
            self._send(missing, pages, blobs)

    def _send(self, missing: Sequence[str], pages: dict[str, bytes], sizes: dict[str, int]) -> None:
        small = [d for d in missing if d not in pages and sizes.get(d, 0) < _MEMORY_LIMIT]
        large = [d for d in missing if d not in pages and sizes.get(d, 0) >= _MEMORY_LIMIT]
        # Large blobs upload in another thread meanwhile (the server works on both at once).
        uploads = [self._large.submit(self._send_large, d, sizes[d]) for d in large]
        batch = [(d, pages[d]) for d in missing if d in pages]
        pending = sum(len(b) for _, b in batch)
        for digest, data in self.source.read_blobs(small):
            pending += len(data)
            batch.append((digest, data))
            if pending >= _SEND_BYTES:
                self._store(batch)
                batch, pending = [], 0
        self._store(batch)
        self._drain(0)
        for upload in uploads:
            upload.result()

    def _send_large(self, digest: str, size: int) -> None:
        # A local source's own file is read in place (the destination checks it); otherwise the
        # blob is downloaded (verified) into a temporary file first.
        path = self.source.blob_path(digest)
        if path is not None:
            self.dest.store_blob_file(path, digest, size)
        else:
            with tempfile.TemporaryDirectory(prefix="cairn-sync-") as tmp:
                path = os.path.join(tmp, "blob")
                self.source.download_blob(digest, path)
                self.dest.store_blob_file(path, digest, size)
        self._sent(1, size)

    def _store(self, batch: list[tuple[str, bytes]]) -> None:
        if batch:
            self._drain(1)
            self._inflight.append(self._pool.submit(self._store_now, batch))

    def _store_now(self, batch: list[tuple[str, bytes]]) -> None:
        self.dest.store_blobs(batch)
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


_HISTORY_PAGE = 2000  # history rows copied per request


def _run_key(run: RunRecord) -> tuple[str, str, str]:
    return (run.entity, run.project, run.id)


class _Syncer:
    def __init__(
        self, source: Service, dest: Service, options: SyncOptions, report: SyncReport
    ) -> None:
        self.source = source
        self.dest = dest
        self.options = options
        self.report = report
        self.known_runs: set[tuple[str, str, str]] = set()
        self.imported: set[tuple[str, str, str, str]] = set()  # entity, project, name, digest

    def _entity(self, entity: str) -> str:
        return self.options.entity or entity

    def _ensure_runs(self, runs: Iterable[RunRecord]) -> None:
        for run in runs:
            moved = _moved_run(run, self._entity(run.entity))
            key = _run_key(moved)
            if key in self.known_runs:
                continue
            try:
                self.dest.get_run(moved.entity, moved.project, moved.id)
            except NotFoundError:  # the run, or its project, is not there
                self.dest.import_run(moved)
                self._copy_history(run, moved)
                self.report.runs_copied += 1
            self.known_runs.add(key)

    def _copy_history(self, run: RunRecord, moved: RunRecord) -> None:
        """A copied run's history rows (a page at a time) and summary (W&B's ``wandb sync``)."""
        summary: str | None = self.source.run_summary(run.entity, run.project, run.id)
        start: int | None = None
        while True:
            rows = self.source.run_history(
                run.entity, run.project, run.id, min_step=start, limit=_HISTORY_PAGE
            )
            if rows or summary not in (None, "{}"):
                self.dest.log_history(moved.entity, moved.project, moved.id, rows, summary)
            summary = None
            if len(rows) < _HISTORY_PAGE:
                return
            start = int(json.loads(rows[-1])["_step"]) + 1

    def copy_runs(self, projects: Iterable[tuple[str, str]]) -> None:
        """The runs of ``projects`` linked to no copied version (runs that only used or made
        deleted versions, or none): created at or after ``since`` and not at the destination."""
        for entity, project in projects:
            to_entity = self._entity(entity)
            try:
                there = {r.id for r in self.dest.list_runs(to_entity, project)}
            except NotFoundError:  # the project is not at the destination yet
                there = set()
            self.known_runs.update((to_entity, project, run_id) for run_id in there)
            since = self.options.since
            runs = self.source.list_runs(entity, project)
            self._ensure_runs(r for r in runs if since is None or r.created_at >= since)

    def _links(self, x: VersionExport) -> list[tuple[str, str, str, str]]:
        return [
            (role, self._entity(r.entity), r.project, r.id)
            for role in _ROLES
            for r in x.runs.get(role, ())
        ]

    def _link_of(self, x: VersionExport) -> tuple[str, str, str] | None:
        """Where a registry link's version is at the destination (None: not a link, or its
        version was not synced there: then it is copied as a plain version)."""
        if x.link_of is None:
            return None
        entity, project, name = x.link_of
        entity = self._entity(entity)
        if (entity, project, name, _digest(x)) in self.imported:
            return (entity, project, name)
        try:
            there = self.dest.export_versions(entity, project, name)
        except NotFoundError:
            return None
        return (entity, project, name) if any(_digest(t) == _digest(x) for t in there) else None

    def _needs_update(self, step: _Step) -> bool:
        """Whether a version already there lacks aliases, tags or lineage of the source's."""
        there = step.there
        assert there is not None
        if step.aliases or set(step.export.version.tags) - set(there.version.tags):
            return True
        ttl = step.export.version.ttl_seconds
        if ttl is not None and ttl != there.version.ttl_seconds:
            return True
        have = {
            (role, r.entity, r.project, r.id) for role in _ROLES for r in there.runs.get(role, ())
        }
        return bool(set(self._links(step.export)) - have)

    def run(self, plans: list[_CollectionPlan], copier: _Copier, bar: Progress) -> None:
        # Registry links after the versions they link to (a link never links to a link).
        links_last = sorted(plans, key=lambda p: any(s.export.link_of for s in p.steps))
        for plan in links_last:
            committed = dict(plan.dest_ids)  # digest -> version id at the destination
            for step in plan.steps:
                x = step.export
                if step.there is not None and not self._needs_update(step):
                    continue
                if step.there is None:
                    copier.copy(_digest(x))
                runs = [r for role in _ROLES for r in x.runs.get(role, ())]
                self._ensure_runs(runs)
                vid = self._import(plan, step, committed)
                committed[_digest(x)] = vid
                self.imported.add((plan.entity, plan.project, plan.name, _digest(x)))
                if step.there is None:
                    bar.advance(1, 0)

    def _import(self, plan: _CollectionPlan, step: _Step, committed: dict[str, str]) -> str:
        x = step.export
        v = x.version
        metadata = dict(v.metadata)
        if step.there is None and step.index is None:
            metadata[PROVENANCE_KEY] = {"source": self.source.location, "version": v.version}
        request = ImportRequest(
            entity=plan.entity,
            project=plan.project,
            name=plan.name,
            type=plan.type,
            digest=_digest(x),
            index=step.index,
            created_at=v.created_at,
            description=v.description,
            metadata=metadata,
            aliases=step.aliases,
            tags=v.tags,
            created_by=v.created_by,
            runs=self._links(x),
            base_version_id=None if x.base_digest is None else committed.get(x.base_digest),
            collection_description=x.collection_description,
            ttl_seconds=v.ttl_seconds,
            link_of=self._link_of(x),
        )
        try:
            result = self.dest.import_version(request)
        except ConflictError:
            if step.index is None or self.options.fail_on_conflict:
                raise
            # The number was taken meanwhile (or by a deleted version): append instead.
            step.index = None
            self.report.conflicting += 1
            return self._import(plan, step, committed)
        if result.version is None:
            # Content vanished between the copy and the import (a gc at the destination): again.
            raise ConflictError(
                f"{len(result.missing)} blobs of {plan.name}:{v.version} were missing at the"
                " destination when it was imported (removed meanwhile?); run the sync again"
            )
        got = result.version
        if step.there is None and step.index is None:  # appended (even if the number matches)
            where = f"{plan.entity}/{plan.project}/{plan.name}"
            self.report.renumbered.append((f"{where}:{v.version}", f"{where}:{got.version}"))
        return got.id


def _moved_run(run: RunRecord, entity: str) -> RunRecord:
    if run.entity == entity:
        return run
    return RunRecord(
        id=run.id,
        entity=entity,
        project=run.project,
        name=run.name,
        group=run.group,
        job_type=run.job_type,
        config=run.config,
        state=run.state,
        created_at=run.created_at,
        finished_at=run.finished_at,
    )


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
    plans = _plan(source, dest, options, report)
    conflict = report.conflicting > 0 or bool(report.aliases_kept)
    if options.dry_run or (options.fail_on_conflict and conflict):
        report.refused = options.fail_on_conflict and conflict
        report.seconds = time.monotonic() - started
        return report
    todo = [s for p in plans for s in p.steps if s.there is None]
    total_bytes = sum(s.export.version.size for s in todo)
    with progress("sync", len(todo), total_bytes, unit="versions") as bar:
        copier = _Copier(source, dest, report, bar)
        try:
            syncer = _Syncer(source, dest, options, report)
            syncer.run(plans, copier, bar)
            if not options.artifacts:  # a project's runs, not only those of its artifacts
                syncer.copy_runs(_wanted_projects(source, options))
        finally:
            copier.close()
    report.seconds = time.monotonic() - started
    return report


# -- bundles ---------------------------------------------------------------------------------------------


def _all_versions(store: Service) -> Iterator[tuple[str, str, str, str, str]]:
    for entity, project in store.list_projects():
        for coll in store.list_collections(entity, project):
            for v in store.list_versions(entity, project, coll.name):
                assert v.version is not None and v.digest is not None
                yield entity, project, coll.name, v.version, v.digest


def export_bundle(
    source: Service,
    path: str,
    options: SyncOptions = SyncOptions(),
    *,
    progress: ProgressFactory = _progress.progress,
) -> SyncReport:
    """Write (or bring up to date) a bundle directory at ``path`` from ``source``."""
    path = os.path.abspath(os.path.expanduser(path))
    if os.path.isdir(path) and os.listdir(path) and not _is_store(path):
        raise UsageError(f"{path} exists and is not a cairn bundle; give a new or empty directory")
    bundle = LocalService.open(path)
    try:
        report = sync_stores(source, bundle, options, progress=progress)
        if not report.dry_run and not report.refused:
            _write_manifest(bundle, path)
    finally:
        bundle.close()
    return report


def _is_store(path: str) -> bool:
    return os.path.exists(os.path.join(path, "cairn-store.json"))


def _write_manifest(bundle: Service, path: str) -> None:
    versions = [
        {"entity": e, "project": p, "name": n, "version": v, "digest": d}
        for e, p, n, v, d in _all_versions(bundle)
    ]
    body = {
        "format": BUNDLE_FORMAT,
        "created_at": time.time(),
        "store": "cairn-store.json, catalog.sqlite and blobs/: an embedded cairn store",
        "versions": versions,
    }
    target = os.path.join(path, BUNDLE_FILE)
    tmp = f"{target}.{os.getpid()}.partial"
    with open(tmp, "w") as f:
        json.dump(body, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)


def _read_manifest(path: str) -> dict[str, Any]:
    target = os.path.join(path, BUNDLE_FILE)
    if not os.path.exists(target) or not _is_store(path):
        raise UsageError(
            f"{path} is not a complete cairn bundle (no {BUNDLE_FILE}): an export that did not"
            " finish? Run `cairn export` again"
        )
    with open(target) as f:
        try:
            body = json.load(f)
        except ValueError as exc:
            raise ValidationError(f"{target} is damaged: {exc}") from None
    if not isinstance(body, dict) or body.get("format") != BUNDLE_FORMAT:
        raise ValidationError(
            f"{target} has format {body.get('format') if isinstance(body, dict) else None!r};"
            f" this cairn reads {BUNDLE_FORMAT!r}: upgrade cairn"
        )
    return body


def verify_bundle(path: str) -> LocalService:
    """Open a bundle after checking it: its manifest lists versions the store holds with those
    digests, and every blob re-hashes to its digest (``DigestMismatchError`` otherwise)."""
    path = os.path.abspath(os.path.expanduser(path))
    body = _read_manifest(path)
    bundle = LocalService.open(path)
    try:
        listed = {
            (str(v["entity"]), str(v["project"]), str(v["name"]), str(v["version"])): v["digest"]
            for v in body.get("versions", [])
        }
        held = {(e, p, n, v): d for e, p, n, v, d in _all_versions(bundle)}
        for key, digest in listed.items():
            if held.get(key) != digest:
                raise DigestMismatchError(
                    f"bundle {path}: {'/'.join(key[:3])}:{key[3]} is listed with digest {digest}"
                    f" but the bundle holds {held.get(key) or 'nothing'}; export it again"
                )
        check = bundle.verify()
        if not check.ok:
            first = check.problems[0].message()
            raise DigestMismatchError(
                f"bundle {path} is damaged: {len(check.problems)} problems, e.g. {first}"
            )
    except BaseException:
        bundle.close()
        raise
    return bundle


def import_bundle(
    dest: Service,
    path: str,
    options: SyncOptions = SyncOptions(),
    *,
    progress: ProgressFactory = _progress.progress,
) -> SyncReport:
    """Verify the bundle at ``path``, then sync it into ``dest``."""
    bundle = verify_bundle(path)
    try:
        return sync_stores(bundle, dest, options, progress=progress)
    finally:
        bundle.close()


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
    src = open_store(source, source_key)
    try:
        dst = open_store(destination, destination_key)
        try:
            return sync_stores(src, dst, options)
        finally:
            dst.close()
    finally:
        src.close()


def export_to(path: str, options: SyncOptions = SyncOptions()) -> SyncReport:
    """``cairn export PATH``: a bundle of the current store (``CAIRN_DIR`` or the server)."""
    from cairn.sdk._session import current_service

    return export_bundle(current_service(), path, options)


def import_from(path: str, options: SyncOptions = SyncOptions()) -> SyncReport:
    """``cairn import PATH``: verify a bundle and sync it into the current store."""
    from cairn.sdk._session import current_service

    return import_bundle(current_service(), path, options)
