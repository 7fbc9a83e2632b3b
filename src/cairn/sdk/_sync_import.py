"""Committing synced versions and runs at the destination: ``import_run`` (with the run's history
and summary) for runs it lacks, then ``import_version``, one transaction like any commit."""

from __future__ import annotations

import json
from collections.abc import Iterable

from cairn.core import RunRecord
from cairn.errors import (
    ConflictError,
    NotFoundError,
)
from cairn.sdk._progress import Progress
from cairn.sdk._sync_copy import ContentCopier
from cairn.sdk._sync_plan import CollectionPlan, Step, SyncOptions, SyncReport, export_digest
from cairn.service import ImportRequest, Service, VersionExport

PROVENANCE_KEY = "cairn_sync"  # metadata of a renumbered version: where it came from
_ROLES = ("output", "input", "writer")
_HISTORY_PAGE = 2000  # history rows copied per request


def _run_key(run: RunRecord) -> tuple[str, str, str]:
    return (run.entity, run.project, run.id)


class Importer:
    """Commits each planned version at the destination (after its content was copied), with
    the runs it links to; then the projects' other runs."""

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
        if (entity, project, name, export_digest(x)) in self.imported:
            return (entity, project, name)
        try:
            there = self.dest.export_versions(entity, project, name)
        except NotFoundError:
            return None
        return (
            (entity, project, name)
            if any(export_digest(t) == export_digest(x) for t in there)
            else None
        )

    def _needs_update(self, step: Step) -> bool:
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

    def run(self, plans: list[CollectionPlan], copier: ContentCopier, bar: Progress) -> None:
        # Registry links after the versions they link to (a link never links to a link).
        links_last = sorted(plans, key=lambda p: any(s.export.link_of for s in p.steps))
        for plan in links_last:
            committed = dict(plan.dest_ids)  # digest -> version id at the destination
            for step in plan.steps:
                x = step.export
                if step.there is not None and not self._needs_update(step):
                    continue
                if step.there is None:
                    copier.copy(export_digest(x))
                runs = [r for role in _ROLES for r in x.runs.get(role, ())]
                self._ensure_runs(runs)
                vid = self._import(plan, step, committed)
                committed[export_digest(x)] = vid
                self.imported.add((plan.entity, plan.project, plan.name, export_digest(x)))
                if step.there is None:
                    bar.advance(1, 0)

    def _import(self, plan: CollectionPlan, step: Step, committed: dict[str, str]) -> str:
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
            digest=export_digest(x),
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
