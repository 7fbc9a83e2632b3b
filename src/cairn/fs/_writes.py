"""Writes through ``cairn://``: each artifact touched gets a draft; committing logs one version.

A draft is based on the version the path named when the draft began (``new_draft`` semantics:
writing to ``name:v3`` builds on v3), or on nothing when the artifact does not exist yet. It is
logged in a run of job type ``fsspec`` that records the base version as its input (lineage). If the
path named an alias and that alias has moved since the draft began, the commit is refused with
``ConflictError``: logging anyway would silently leave out the other writer's version. The store
checks the alias inside the transaction that commits (``CommitRequest.expect_alias``), so a writer
that commits in the same instant is caught too. Outside a
transaction every write is a draft committed at once; inside ``with fs.transaction:`` the drafts
are committed when the block ends without an exception, after every draft's alias is checked, and
thrown away otherwise (their blobs, unreferenced, go at the next ``cairn gc``).
"""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
import tempfile
import time
from typing import Any

from fsspec.transaction import Transaction

from cairn.core import LATEST, RUNNING, ManifestEntry, RunRecord, VersionRecord
from cairn.errors import ArtifactNotFoundError, ConflictError, PathNotFoundError
from cairn.fs._paths import CairnPath
from cairn.sdk import Artifact, Run, Session
from cairn.service import Service

JOB_TYPE = "fsspec"


def resolve_or_none(service: Service, entity: str, where: CairnPath) -> VersionRecord | None:
    try:
        return service.resolve(entity, where.project, where.name, where.label)
    except ArtifactNotFoundError:
        return None


class Draft:
    """The pending changes to one artifact, from one base version."""

    def __init__(self, session: Session, entity: str, where: CairnPath, artifact_type: str) -> None:
        self.session = session
        self.service: Service = session.service
        self.entity = entity
        self.where = where
        self.base = resolve_or_none(self.service, entity, where)
        if self.base is None and where.label != LATEST and self._exists():
            # A new version holding only what is written would silently drop every other file.
            raise PathNotFoundError(
                f"cannot write to {where.artifact}: {where.name} has no version"
                f" {where.label!r}; write to {where.project}/{where.name}:latest (or :vN)"
            )
        if self.base is not None:
            self.artifact = Artifact._from_record(session, self.base).new_draft()
        else:
            self.artifact = Artifact(where.name, artifact_type)
            self.artifact._session = session  # staged into this store, not the default one
        self._tmp = tempfile.mkdtemp(prefix="cairn-fs-draft-")
        self._names = itertools.count()

    def _exists(self) -> bool:
        if self.where.pinned:
            return True  # vN names a version that would have to exist
        w = self.where
        try:
            return bool(self.service.list_versions(self.entity, w.project, w.name))
        except ArtifactNotFoundError:
            return False

    def own(self, tmp: str) -> str:
        """Move a written temporary file under the draft (kept until it is logged)."""
        dest = os.path.join(self._tmp, f"{next(self._names)}.bin")
        shutil.move(tmp, dest)
        return dest

    def add_file(self, path: str, local: str) -> None:
        self.artifact.add_file(local, name=path, overwrite=True)

    def add_entry(self, entry: ManifestEntry) -> None:
        """Add content the store has already (a copy inside the store moves no bytes)."""
        self.artifact._put(entry, True, None)

    def remove(self, path: str) -> None:
        self.artifact.remove(path)

    def check_base(self) -> None:
        """Refuse to commit if the alias the path named has moved since the draft began."""
        if self.where.pinned:
            return  # a draft of vN builds on vN, whatever came after it
        now = resolve_or_none(self.service, self.entity, self.where)
        was = None if self.base is None else self.base.id
        if (None if now is None else now.id) != was:
            moved = "appeared" if was is None else "moved"
            label = f"{self.where.project}/{self.where.name}:{self.where.label}"
            raise ConflictError(
                f"{label} has {moved} since these writes began (another writer logged a"
                " version); nothing was logged: read the new version and write again"
            )

    def commit(self) -> VersionRecord:
        """Log the draft as one new version in a run of job type ``fsspec``."""
        self.check_base()
        svc = self.service
        record = RunRecord(
            id=secrets.token_hex(4),
            entity=self.entity,
            project=self.where.project,
            name=f"{JOB_TYPE}-{secrets.token_hex(3)}",
            group=None,
            job_type=JOB_TYPE,
            config={},
            state=RUNNING,
            created_at=time.time(),
        )
        # A run of its own, not cairn.init(): the user's active run (if any) is left alone.
        run = Run(self.session, svc.start_run(record), self.session.settings, None)
        try:
            if self.base is not None:
                run.use_artifact(Artifact._from_record(self.session, self.base))
            label = self.where.label
            aliases = [] if self.where.pinned or label == LATEST else [label]
            if not self.where.pinned:
                # The store checks it again in the commit's own transaction (no race).
                self.artifact._expect_alias = (label, None if self.base is None else self.base.id)
            logged = run.log_artifact(self.artifact, aliases=aliases)
        except BaseException:
            run.finish(exit_code=1)
            raise
        run.finish()
        self.close()
        assert logged.id is not None
        return svc.get_version(logged.id)

    def close(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)


class CairnTransaction(Transaction):  # type: ignore[misc]
    """fsspec's transaction: files are handed over at the end, then every draft is logged as
    one version (or all are thrown away)."""

    def complete(self, commit: bool = True) -> None:
        fs: Any = self.fs
        try:
            super().complete(commit)  # written files join their drafts (or are discarded)
        except BaseException:
            fs._drop_drafts()
            raise
        if not commit:
            fs._drop_drafts()
            return
        fs._commit_drafts()
