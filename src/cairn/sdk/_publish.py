"""Publishing an artifact: its log, save and commit path (W&B's ``log_artifact``, ``save``,
``upsert_artifact``, ``finish_artifact``).

A draft is committed through its session's service: the blobs its files became are made durable
(``Stager.flush``), the commit names the changes (or the manifest a streamed ``add_dir`` wrote),
and blobs the store lost meanwhile are stored again (``Stager.commit_with_blobs``). The artifact
then becomes a view of the committed version. A logged artifact's edits (description, metadata,
aliases, tags, TTL) are saved by difference from what was read.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from cairn.core import Change, validate_aliases, validate_tags
from cairn.errors import (
    ArtifactFinalizedError,
    ArtifactNotFoundError,
    NotFoundError,
    UsageError,
    ValidationError,
)
from cairn.sdk._gc import without_gc
from cairn.sdk._session import Session
from cairn.sdk._ttl import ArtifactTTL, ttl_seconds
from cairn.sdk._values import warn_user
from cairn.service import CommitRequest, CommitResult, FinishRequest, StageRequest

if TYPE_CHECKING:
    from cairn.sdk._artifact import Artifact
    from cairn.sdk._run import Run


def _bind(art: Artifact, session: Session) -> None:
    """Make ``session`` the artifact's (refusing a draft staged into another store)."""
    if art._session is not None and art._session.service is not session.service:
        raise UsageError("this artifact was built for another store; build it again")
    art._session = session


def commit_request(
    art: Artifact,
    *,
    entity: str,
    project: str,
    run_id: str | None,
    aliases: Sequence[str],
    tags: Sequence[str],
) -> CommitRequest:
    base = art._base
    if base is not None and base.project != project:
        raise ValidationError(
            f"a draft of {base.qualified_name} can only be logged to project {base.project!r}"
        )
    contents = art._contents
    return CommitRequest(
        entity=base.entity if base is not None else entity,
        project=project,
        name=art._name,
        type=art._type,
        changes=contents.changes(),
        base_version_id=base.id if base is not None else None,
        description=art._description,
        metadata=art._metadata,
        aliases=list(aliases),
        tags=list(tags),
        run_id=run_id,
        expect_alias=art._expect_alias,
        manifest=contents.root if contents.local_base else None,
    )


@without_gc
def log(
    art: Artifact,
    session: Session,
    *,
    entity: str,
    project: str,
    run_id: str | None,
    aliases: Sequence[str],
    tags: Sequence[str],
) -> Artifact:
    """Commit ``art`` as a new version (or find the identical one)."""
    if art._record is not None:
        raise ArtifactFinalizedError(
            f"{art.name} is already logged; call new_draft() to make a new version from it",
            name="log",
        )
    _bind(art, session)
    service = session.service
    stager = art._stage()
    stager.flush(hold_small=True)
    if art._incremental and art._base is None:
        # W&B's incremental artifact: the files added apply onto the latest version.
        with contextlib.suppress(NotFoundError):
            art._base = service.resolve(entity, project, art._name, None)
    request = commit_request(
        art, entity=entity, project=project, run_id=run_id, aliases=aliases, tags=tags
    )
    result = stager.commit_with_blobs(lambda: stager.commit(request), hold_small=True)
    tree, art._tree = art._tree, None
    if tree is not None and result.version is not None and result.version.digest:
        tree.logged(art._contents, result.version.digest)  # the next add_dir: a stat per file
    after_commit(art, result)
    return art


def _distributed_request(
    art: Artifact, session: Session, run: Run, dist: str, aliases: list[str], *, finish: bool
) -> StageRequest:
    if art._record is not None:
        raise ArtifactFinalizedError(
            f"{art.name} is already committed; an upsert needs a new Artifact", name="upsert"
        )
    _bind(art, session)
    art._tree = None  # a shared version holds other runs' files too: never a tree record
    changes = art._contents.all_changes()
    base = art._base
    fields: dict[str, Any] = {
        "entity": base.entity if base is not None else run.entity,
        "project": run.project,
        "name": art._name,
        "type": art._type,
        "distributed_id": dist,
        "changes": changes,
        "base_version_id": base.id if base is not None else None,
        "run_id": run.id,
        "description": art._description,
        "metadata": art._metadata or None,
        "aliases": aliases,
    }
    if finish:
        return FinishRequest(**fields)
    return StageRequest(**fields)


@without_gc
def stage_distributed(
    art: Artifact, session: Session, run: Run, dist: str, aliases: list[str]
) -> None:
    """Upsert the artifact's files into the pending version ``dist`` (Run.upsert_artifact)."""
    request = _distributed_request(art, session, run, dist, aliases, finish=False)
    stager = art._stage()
    stager.stage_with_blobs(lambda: stager.upsert(request), blob_digests(request.changes))
    art._distributed_id = dist


@without_gc
def finish_distributed(
    art: Artifact, session: Session, run: Run, dist: str, aliases: list[str]
) -> None:
    """Stage the artifact's files and commit the version ``dist`` (Run.finish_artifact)."""
    request = _distributed_request(art, session, run, dist, aliases, finish=True)
    assert isinstance(request, FinishRequest)
    stager = art._stage()
    stager.ensure_present(blob_digests(request.changes))
    result = stager.commit_with_blobs(lambda: session.service.finish(request))
    art._distributed_id = dist
    after_commit(art, result)


def after_commit(art: Artifact, result: CommitResult) -> None:
    """Make ``art`` a view of the committed version (its TTL set, its local paths kept)."""
    record = result.version
    assert record is not None
    if not result.created:
        warn_user(
            f"artifact {record.name}: the content is identical to {record.name}:{record.version};"
            " no new version was made (the existing one got the aliases)"
        )
    if art._ttl is not ArtifactTTL.INHERIT:
        # A TTL set on the draft counts from the commit (W&B's Artifact.ttl).
        record = art._svc().set_ttl(record.id, ttl_seconds(art._ttl))
    local_paths = art._local_paths
    art._assign(record)
    art._local_paths = local_paths
    art._base = None


def save_draft(art: Artifact, project: str | None) -> None:
    """Log a draft in the active run, or in a new run of job type ``auto``."""
    from cairn.sdk._init import init
    from cairn.sdk._run import current_run

    active = current_run()
    if active is not None:
        active.log_artifact(art)
        return
    base = art._base
    with init(
        project=project or (base.project if base is not None else None),
        entity=base.entity if base is not None else None,
        job_type="auto",
    ) as run:
        run.log_artifact(art)


def save_changes(art: Artifact) -> None:
    """Save a logged version's description, metadata, aliases, tags and TTL."""
    rec = art._ensure_logged("save")
    svc = art._svc()
    # Aliases change by difference from what was read (as W&B does), so that an alias another
    # process moved meanwhile ("latest" after a new version) is not taken back.
    wanted = validate_aliases(art._aliases)
    tags = validate_tags(art._tags)  # both checked before anything changes
    for alias in [a for a in art._saved_aliases if a not in wanted]:
        with contextlib.suppress(ArtifactNotFoundError):  # moved or removed meanwhile
            svc.remove_alias(rec.id, alias)
    for alias in [a for a in wanted if a not in art._saved_aliases]:
        svc.add_alias(rec.id, alias)
    if art._ttl_changed:
        svc.set_ttl(rec.id, ttl_seconds(art._ttl))
    record = svc.update_version(
        rec.id, description=art._description, metadata=art._metadata, tags=tags
    )
    art._assign(record)


def blob_digests(changes: Iterable[Change]) -> list[str]:
    """The stored blobs (not references) that ``changes`` add."""
    return [e.digest for _, e in changes if e is not None and e.ref is None]
