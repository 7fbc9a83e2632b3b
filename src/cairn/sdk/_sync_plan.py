"""What ``cairn sync`` copies: its options and report, and the plan (reads only).

The source's versions with their lineage are matched by manifest digest against the
destination's; see ``cairn.sdk._sync`` for the whole algorithm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cairn.core import LATEST
from cairn.errors import (
    TypeConflictError,
)
from cairn.service import Service, VersionExport


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
class Step:
    """One source version and what to do with it."""

    export: VersionExport
    there: VersionExport | None  # the destination's version with the same digest
    index: int | None  # the number to ask for (None: the next one)
    aliases: list[str]  # aliases to set at the destination


@dataclass
class CollectionPlan:
    entity: str  # at the destination
    project: str
    name: str
    type: str
    steps: list[Step]
    dest_ids: dict[str, str]  # digest -> version id of what the destination holds


# -- planning ----------------------------------------------------------------------------------------


def wanted_projects(source: Service, options: SyncOptions) -> list[tuple[str, str]]:
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


def export_digest(x: VersionExport) -> str:
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
) -> CollectionPlan | None:
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
    by_digest = {export_digest(x): x for x in dst}
    src_digests = {export_digest(x) for x in src}
    # Other history: a number the destination gave to other content, or versions of its own
    # after the first number to copy (the histories would interleave). A version the source
    # deleted since an earlier sync is neither.
    todo = [x.version.index or 0 for x in src if export_digest(x) not in by_digest]
    taken = {x.version.index for x in dst}
    renumber = bool(todo) and (
        any(i in taken for i in todo)
        or any(
            export_digest(x) not in src_digests and (x.version.index or 0) > min(todo) for x in dst
        )
    )
    owner = {a: export_digest(x) for x in dst for a in x.version.aliases}
    ids = {d: x.version.id for d, x in by_digest.items()}
    plan = CollectionPlan(to_entity, project, name, type_name, [], ids)
    where = f"{to_entity}/{project}/{name}"
    for x in src:
        if options.since is not None and x.version.created_at < options.since:
            continue
        digest = export_digest(x)
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
        plan.steps.append(Step(x, there, index, aliases))
    return plan


def plan_sync(
    source: Service, dest: Service, options: SyncOptions, report: SyncReport
) -> list[CollectionPlan]:
    plans = []
    for entity, project in wanted_projects(source, options):
        for coll in source.list_collections(entity, project):
            if options.artifacts and coll.name not in options.artifacts:
                continue
            plan = _plan_collection(
                source, dest, entity, project, coll.name, coll.type, options, report
            )
            if plan is not None:
                plans.append(plan)
    return plans
