"""Search in the catalog: projects, collections, committed versions and runs that match a parsed
query, a page at a time, answered from indexes (no manifest is read).

Words match case-insensitively as substrings of names and descriptions, and exactly against
aliases, tags and metadata values; filters (``type:``, ``tag:``, ``alias:``, ``name:``, metadata
conditions) must all hold. Tags, aliases and metadata belong to versions, so a query with them
finds only versions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, false, func, intersect, or_, select, union

from cairn.catalog import _schema as s
from cairn.core._records import CollectionRecord, RunRecord, VersionRecord
from cairn.core._search import MAX_TEXT_CHARS, MetadataCondition, SearchQuery

KINDS = ("project", "collection", "version", "run")
VERSION_SORTS = {"version": "idx", "created": "created_at", "size": "size", "files": "file_count"}


@dataclass
class CatalogHits:
    projects: list[tuple[str, str]] = field(default_factory=list)
    collections: list[CollectionRecord] = field(default_factory=list)
    versions: list[VersionRecord] = field(default_factory=list)
    runs: list[RunRecord] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)


def _like(word: str) -> str:
    escaped = word.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _contains(column: Any, word: str, dialect: str = "") -> Any:
    """``word`` in ``column``, ignoring case. On SQLite, LIKE ignores ASCII case already (and
    ``lower()`` on every row would double the cost of a scan)."""
    if dialect == "sqlite":
        return column.like(_like(word), escape="\\")
    return func.lower(column).like(_like(word), escape="\\")


def _metadata_ids(cond: MetadataCondition) -> Any:
    """The ids of versions whose metadata leaf ``cond.key`` satisfies the condition (from the
    covering (key, value, version) indexes)."""
    m = s.version_metadata.c
    if cond.op == "=":
        found = select(m.version_id).where(
            m.key == cond.key, m.text_value == cond.text[:MAX_TEXT_CHARS]
        )
        if cond.number is None:
            return found
        return union(
            found, select(m.version_id).where(m.key == cond.key, m.num_value == cond.number)
        )
    assert cond.number is not None
    ops = {">": m.num_value > cond.number, ">=": m.num_value >= cond.number}
    ops.update({"<": m.num_value < cond.number, "<=": m.num_value <= cond.number})
    return select(m.version_id).where(m.key == cond.key, ops[cond.op])


COUNT_CAP = 10_000  # a total above this is reported as a lower bound above COUNT_CAP


def _page(tx: Any, q: Any, offset: int, limit: int, *, once: bool = False) -> tuple[list[Any], int]:
    """One page of ``q``'s rows, and how many rows it has, counted up to ``COUNT_CAP + 1`` (a
    query that matches a million rows is not counted to the end: its total is then a lower
    bound). A first page with room to spare is its own count; otherwise the rows are counted in
    SQL. With ``once`` (a costly filter: a scan), ``q`` runs once instead, and the first
    ``max(COUNT_CAP + 1, offset + limit)`` rows are read and counted here."""
    if once:
        n = max(COUNT_CAP + 1, offset + limit)
        rows = list(tx.conn.execute(q.limit(n)))
        total = len(rows) + 1 if len(rows) == n else len(rows)
        return rows[offset : offset + limit], total
    rows = list(tx.conn.execute(q.offset(offset).limit(limit)))
    if offset == 0 and len(rows) < limit:
        return rows, len(rows)
    cap = max(COUNT_CAP + 1, offset + limit + 1)
    capped = q.order_by(None).limit(cap).subquery()
    return rows, int(tx.conn.execute(select(func.count()).select_from(capped)).scalar_one())


def _collection_records(tx: Any, ids: list[int]) -> list[CollectionRecord]:
    """Collections by id, in that order (version counts computed for these only)."""
    if not ids:
        return []
    c, v, p = s.collections.c, s.versions.c, s.projects.c
    counts = (
        select(v.collection_id, func.count().label("n"), func.max(v.idx).label("latest_idx"))
        .where(tx.alive(), v.collection_id.in_(ids))  # expired versions (TTL) are not counted
        .group_by(v.collection_id)
        .subquery()
    )
    q = (
        select(s.collections, p.entity, p.name.label("project"), counts.c.n, counts.c.latest_idx)
        .join(s.projects, p.id == c.project_id)
        .outerjoin(counts, counts.c.collection_id == c.id)
        .where(c.id.in_(ids))
    )
    rows = {int(r.id): r for r in tx.conn.execute(q)}
    # What ":latest" names: the "latest" alias, else the newest live version (W&B's rule).
    latest = tx._latest_versions({cid: r.latest_idx for cid, r in rows.items()})
    return [
        CollectionRecord(
            id=cid,
            entity=r.entity,
            project=r.project,
            name=r.name,
            type=r.type,
            description=r.description,
            version_count=int(r.n or 0),
            latest_index=latest.get(cid, (None, None))[0],
            latest_size=latest.get(cid, (None, None))[1],
            created_at=r.created_at,
            updated_at=r.updated_at,
        )
        for cid in ids
        if (r := rows.get(cid)) is not None
    ]


def search(
    tx: Any,
    query: SearchQuery,
    *,
    project_ids: Sequence[int] | None,
    collection_id: int | None = None,
    kinds: Sequence[str] = KINDS,
    sort: str = "created",
    descending: bool = True,
    offset: int = 0,
    limit: int = 20,
) -> CatalogHits:
    """A page (``offset``, ``limit``) of each kind of hit, within ``project_ids`` (None: all)."""
    hits = CatalogHits()
    only_versions = query.has_version_filters or collection_id is not None
    p, c, v, r = s.projects.c, s.collections.c, s.versions.c, s.runs.c

    def scoped(column: Any) -> Any:
        if project_ids is None:
            return None
        if not project_ids:
            return false()
        return tx.among(column, list(project_ids))

    if "project" in kinds and not only_versions and not query.types and not query.names:
        conds = [or_(_contains(p.entity, w), _contains(p.name, w)) for w in query.words]
        where = [x for x in (scoped(p.id), *conds) if x is not None]
        q = select(p.entity, p.name).where(*where).order_by(p.entity, p.name)
        rows, hits.totals["project"] = _page(tx, q, offset, limit)
        hits.projects = [(row.entity, row.name) for row in rows]

    if "collection" in kinds and not only_versions:
        conds = [
            or_(_contains(c.name, w), _contains(c.description, w), func.lower(c.type) == w.lower())
            for w in query.words
        ]
        conds += [c.type == t for t in query.types] + [c.name == n for n in query.names]
        where = [x for x in (scoped(c.project_id), *conds) if x is not None]
        q = select(c.id).where(*where).order_by(c.updated_at.desc(), c.id)
        rows, hits.totals["collection"] = _page(tx, q, offset, limit)
        hits.collections = _collection_records(tx, [int(row.id) for row in rows])

    if "version" in kinds:
        a, t, m = s.aliases.c, s.tags.c, s.version_metadata.c
        conds = [tx.alive()]  # committed and not expired (TTL)
        if collection_id is not None:
            conds.append(v.collection_id == collection_id)
        conds += [c.type == x for x in query.types] + [c.name == x for x in query.names]
        # Tags, aliases and metadata conditions are sets of version ids read from covering
        # indexes and intersected before any version row is read.
        id_sets: list[Any] = [select(t.version_id).where(t.tag == x) for x in query.tags]
        id_sets += [select(a.version_id).where(a.alias == x) for x in query.aliases]
        id_sets += [_metadata_ids(x) for x in query.metadata]
        for i, w in enumerate(query.words):
            # The versions of collections whose name has the word; those with an alias, tag or
            # metadata value equal to it (indexes); those whose own description has it (the
            # one pass over every version row a search makes). The first word is a set of ids
            # like the filters; the others are tested on the rows that set leaves (so two
            # common words cost one pass, not two sets of every version).
            exact = [
                select(a.version_id).where(a.alias == w),
                select(t.version_id).where(t.tag == w),
                select(m.version_id).where(m.text_value == w[:MAX_TEXT_CHARS]),
            ]
            if i > 0:
                conds.append(
                    or_(
                        _contains(c.name, w, tx.dialect),
                        _contains(v.description, w, tx.dialect),
                        *(v.id.in_(x) for x in exact),
                    )
                )
                continue
            cc, vv = s.collections.alias("cc"), s.versions.alias("vv")
            named = select(cc.c.id).where(_contains(cc.c.name, w))
            id_sets.append(
                union(
                    select(vv.c.id).where(vv.c.collection_id.in_(named.scalar_subquery())),
                    *exact,
                    select(vv.c.id).where(_contains(vv.c.description, w, tx.dialect)),
                )
            )
        if id_sets:
            # (SQLite takes no parenthesised compound inside a compound: unions are wrapped.)
            parts = [x if isinstance(x, Select) else select(x.subquery().c[0]) for x in id_sets]
            ids = parts[0] if len(parts) == 1 else intersect(*parts)
            conds.append(v.id.in_(select(ids.subquery().c[0])))
        where = [x for x in (scoped(c.project_id), *conds) if x is not None]
        column = getattr(v, VERSION_SORTS.get(sort, "created_at"))
        order = [column.desc(), v.idx.desc()] if descending else [column.asc(), v.idx.asc()]
        q = (
            select(v.id)
            .select_from(s.versions)
            .join(s.collections, c.id == v.collection_id)
            .where(*where)
            .order_by(*order, v.id)
        )
        rows, hits.totals["version"] = _page(tx, q, offset, limit, once=bool(id_sets))
        hits.versions = tx.version_records([str(row.id) for row in rows])

    if "run" in kinds and not only_versions and not query.types and not query.names:
        conds = [
            or_(
                _contains(r.name, w),
                _contains(r.run_id, w),
                _contains(r.job_type, w),
                _contains(r.group_name, w),
            )
            for w in query.words
        ]
        where = [x for x in (scoped(r.project_id), *conds) if x is not None]
        q = select(r.id).where(*where).order_by(r.created_at.desc(), r.id)
        rows, hits.totals["run"] = _page(tx, q, offset, limit)
        found = tx.run_records(r.id.in_([int(row.id) for row in rows])) if rows else []
        hits.runs = sorted(found, key=lambda run: run.created_at or 0.0, reverse=True)
    return hits


def project_ids(tx: Any, projects: Sequence[tuple[str, str]]) -> list[int]:
    """The ids of those (entity, name) projects that exist."""
    if not projects:
        return []
    p = s.projects.c
    wanted = set(projects)
    entities = sorted({e for e, _ in projects})
    q = select(p.id, p.entity, p.name).where(tx.among(p.entity, entities))
    return [int(row.id) for row in tx.conn.execute(q) if (row.entity, row.name) in wanted]
