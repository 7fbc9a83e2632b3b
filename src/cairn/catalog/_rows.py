"""The rows a commit writes, made once for both ways of running its statements
(``_statements.py``): the repositories through SQLAlchemy and the embedded store's quick path on
a plain ``sqlite3`` connection (``_quick_tx.py``). Standard library only: a re-log must not
import SQLAlchemy."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cairn.catalog._repository import to_json
from cairn.core import (
    COMMITTED,
    DELETED,
    LATEST,
    Change,
    CollectionRecord,
    ManifestEntry,
    RunRecord,
    VersionRecord,
    index_rows,
    text_words,
)


def new_version_id() -> str:
    """A new version's id: the 32 hex digits of a random (version 4) UUID, as
    ``uuid.uuid4().hex`` makes them, without importing ``uuid`` (it loads ``platform``: a few
    ms of every re-log's process)."""
    b = bytearray(os.urandom(16))
    b[6] = b[6] & 0x0F | 0x40  # version 4
    b[8] = b[8] & 0x3F | 0x80  # RFC 4122 variant
    return b.hex()


RUN_COLUMNS = (
    "project_id",
    "run_id",
    "name",
    "group_name",
    "job_type",
    "config",
    "state",
    "created_at",
    "finished_at",
)
VERSION_COLUMNS = (
    "id",
    "collection_id",
    "idx",
    "state",
    "digest",
    "size",
    "file_count",
    "metadata",
    "description",
    "created_by",
    "distributed_id",
    "base_version_id",
    "source_version_id",
    "created_at",
    "updated_at",
    "committed_at",
)


def run_row(
    project_id: int, run: RunRecord, *, at: float, finished_at: float | None
) -> dict[str, Any]:
    """A new run's row (``RUN_INSERT``); ``at``: now, its creation time unless the run has one."""
    return {
        "project_id": project_id,
        "run_id": run.id,
        "name": run.name,
        "group_name": run.group,
        "job_type": run.job_type,
        "config": to_json(dict(run.config)),
        "state": run.state,
        "created_at": run.created_at or at,
        "finished_at": finished_at,
    }


def run_state(
    run_pk: int, state: str, config: Mapping[str, Any] | None, *, at: float
) -> dict[str, Any]:
    """A finished run's state (``RUN_STATE``, or ``RUN_STATE_CONFIG`` with ``config``)."""
    row: dict[str, Any] = {"run_pk": run_pk, "state": state, "finished_at": at}
    if config is not None:
        row["config"] = to_json(dict(config))
    return row


def version_row(
    *,
    vid: str,
    at: float,
    collection_id: int,
    state: str,
    index: int | None,
    digest: str | None,
    size: int,
    file_count: int,
    metadata: Mapping[str, Any],
    description: str | None,
    created_by: int | None,
    distributed_id: str | None = None,
    base_version_id: str | None = None,
    source_version_id: str | None = None,
    created_at: float | None = None,
) -> dict[str, Any]:
    """A new version's row (``VERSION_INSERT``); ``at``: now."""
    return {
        "id": vid,
        "collection_id": collection_id,
        "idx": index,
        "state": state,
        "digest": digest,
        "size": size,
        "file_count": file_count,
        "metadata": to_json(dict(metadata)),
        "description": description,
        "created_by": created_by,
        "distributed_id": distributed_id,
        "base_version_id": base_version_id,
        "source_version_id": source_version_id,
        "created_at": at if created_at is None else created_at,
        "updated_at": at,
        "committed_at": at if state == COMMITTED else None,
    }


def bump_index_row(collection_id: int, used: int, *, at: float) -> dict[str, Any]:
    """``BUMP_INDEX``'s parameters: ``next_index`` above ``used``."""
    return {"collection_id": collection_id, "used": used, "next_index": used + 1, "updated_at": at}


def metadata_rows(version_id: str, metadata: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``METADATA_INSERT``'s rows: the search index's leaves of a version's metadata."""
    return [
        {"version_id": version_id, "key": k, "text_value": t, "num_value": n}
        for k, t, n in index_rows(metadata)
    ]


def word_rows(version_id: str, description: str | None) -> list[dict[str, Any]]:
    """``WORDS_INSERT``'s rows: the words of a version's description."""
    return [{"word": w, "version_id": version_id} for w in text_words(description)]


def run_record(r: Mapping[Any, Any]) -> RunRecord:
    """A run's record from a row of ``_statements.run_records``."""
    return RunRecord(
        id=r["run_id"],
        entity=r["entity"],
        project=r["project"],
        name=r["name"],
        group=r["group_name"],
        job_type=r["job_type"],
        config=json.loads(r["config"]),
        state=r["state"],
        created_at=r["created_at"],
        finished_at=r["finished_at"],
    )


def version_record(r: Mapping[Any, Any], at: float) -> VersionRecord:
    """A version's record from a row of ``_statements.version_records``, as a reader sees it at
    ``at``: a version whose TTL ran out is DELETED, without aliases."""
    aliases = sorted(r["alias_list"].split("\n")) if r["alias_list"] else []
    state = r["state"]
    if state == COMMITTED and r["expires_at"] is not None and r["expires_at"] <= at:
        state, aliases = DELETED, []  # expired: gone for every reader
    # "latest" first, then the rest in name order, as W&B shows them.
    aliases.sort(key=lambda a: (a != LATEST, a))
    return VersionRecord(
        id=str(r["id"]),
        entity=r["entity"],
        project=r["project"],
        name=r["cname"],
        type=r["type"],
        index=r["idx"],
        state=state,
        digest=r["digest"],
        size=int(r["size"]),
        file_count=int(r["file_count"]),
        metadata=json.loads(r["metadata"]),
        description=r["description"],
        aliases=tuple(aliases),
        tags=tuple(sorted(r["tag_list"].split("\n")) if r["tag_list"] else ()),
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        created_by=r["creator"],
        distributed_id=r["distributed_id"],
        base_version_id=r["base_version_id"],
        collection_id=int(r["collection_id"]),
        ttl_seconds=None if r["ttl_seconds"] is None else float(r["ttl_seconds"]),
        source_version_id=r["source_version_id"],
    )


def collection_record(
    row: Mapping[str, Any],
    latest: Mapping[int, tuple[int, int]],
    tags: Mapping[int, list[str]],
    aliases: Mapping[int, list[str]],
) -> CollectionRecord:
    """A row of ``_statements.collection_records`` as a record, with the version ``:latest``
    resolves to (``latest``), the collection's tags and aliases, each by collection id."""
    cid = int(row["id"])
    index, size = latest.get(cid, (None, None))
    return CollectionRecord(
        id=cid,
        entity=row["entity"],
        project=row["project"],
        name=row["name"],
        type=row["type"],
        description=row["description"],
        version_count=int(row["n"] or 0),
        latest_index=index,
        latest_size=size,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        tags=tuple(tags.get(cid, ())),
        aliases=tuple(aliases.get(cid, ())),
    )


def alias_lists(rows: Iterable[Any]) -> dict[int, list[str]]:
    """(collection id, alias) rows as each collection's aliases, ``latest`` first, then by name."""
    out: dict[int, list[str]] = {}
    for cid, alias in rows:
        out.setdefault(int(cid), []).append(str(alias))
    for names in out.values():
        names.sort(key=lambda n: (n != LATEST, n))
    return out


def collection_row(
    project_id: int, name: str, type_name: str, description: str | None, *, at: float
) -> dict[str, Any]:
    """A new collection's row (``COLLECTION_CREATE``); ``at``: now."""
    return {
        "project_id": project_id,
        "name": name,
        "type": type_name,
        "description": description,
        "next_index": 0,
        "created_at": at,
        "updated_at": at,
    }


# The columns of a staged change an upsert sets (besides its version and path).
STAGED_SET = ("removed", "digest", "size", "ref", "extra", "run_id", "staged_at")


def staged_rows(
    version_id: str, changes: Sequence[Change], run_pk: int | None, *, at: float
) -> list[dict[str, Any]]:
    """The ``staged_entries`` rows of an upsert's changes (``STAGED_UPSERT``); ``at``: now."""
    return [
        {
            "version_id": version_id,
            "path": path,
            "removed": 1 if e is None else 0,
            "digest": "" if e is None else e.digest,
            "size": None if e is None else e.size,
            "ref": None if e is None else e.ref,
            "extra": None if e is None or not e.extra else to_json(dict(e.extra)),
            "run_id": run_pk,
            "staged_at": at,
        }
        for path, e in changes
    ]


def staged_change(row: Sequence[Any]) -> Change:
    """A staged row (path, removed, digest, size, ref, extra) as a change: a removal is None."""
    path, removed, digest, size, ref, extra = row
    if removed:
        return path, None
    return path, ManifestEntry(path, digest, size, ref, json.loads(extra) if extra else None)
