"""Search in the catalog: projects, collections, committed versions and runs that match a parsed
query, a page at a time, answered from indexes (no manifest is read).

Words match case-insensitively as substrings of names (and collections' descriptions), as word
prefixes of versions' descriptions (the ``version_words`` index), and exactly against aliases,
tags and metadata values; filters (``type:``, ``tag:``, ``alias:``, ``name:``, metadata
conditions) must all hold. Tags, aliases and metadata belong to versions, so a query with them
finds only versions.

``tx.search.find`` answers a query; how each of its terms finds versions, and the counts that
choose how a page of versions is read: ``_search_conditions.py``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, false, func, or_, select, union_all

from cairn.catalog import _schema as s
from cairn.catalog._repository import Repository
from cairn.catalog._search_conditions import (
    Condition,
    contains,
    count_members,
    rarely_together,
    version_conditions,
)
from cairn.catalog._ttl import alive
from cairn.core import (
    COMMITTED,
    COUNT_CAP,
    CollectionRecord,
    RunRecord,
    SearchQuery,
    VersionRecord,
)

if TYPE_CHECKING:
    from cairn.catalog._tx import Tx

KINDS = ("project", "collection", "version", "run")
VERSION_SORTS = {"version": "idx", "created": "created_at", "size": "size", "files": "file_count"}


@dataclass
class CatalogHits:
    projects: list[tuple[str, str]] = field(default_factory=list)
    collections: list[CollectionRecord] = field(default_factory=list)
    versions: list[VersionRecord] = field(default_factory=list)
    runs: list[RunRecord] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)


def _alive(tx: Tx) -> Any:
    """``alive()`` (committed, TTL not run out). On SQLite written so that no index serves
    it: with no statistics (an embedded store has none), SQLite would read every version
    through the ``expires_at`` index and sort them all rather than read the page's order.
    (PostgreSQL's statistics judge the plain form right, and would misjudge this one.)"""
    if tx.dialect != "sqlite":
        return alive()
    v = s.versions.c
    return and_(v.state == COMMITTED, func.coalesce(v.expires_at, _NEVER) > time.time())


_NEVER = 1e300  # the expiry of a version without a TTL


# A word's part that may match this many versions or more is tested by probes, and a condition
# that may match fewer than a quarter of it drives the query (see ``Search.find``).
DENSE = 20_000


def _page(
    tx: Tx,
    q: Any,
    offset: int,
    limit: int,
    *,
    once: bool = False,
    paged: Any = None,
    counted: Any = None,
) -> tuple[list[Any], int]:
    """One page of ``q``'s rows, and how many rows it has, counted up to ``COUNT_CAP + 1`` or
    one past the page, whichever is more (a query that matches a million rows is not counted to
    the end: its total is then a lower bound). A first page with room to spare is its own
    count; otherwise the rows are counted in SQL. With ``once`` (a set of fewer than ``dense //
    4`` ids drives the query: its rows are all read and sorted anyway), ``q`` runs once
    instead, and its first rows up to that count are read and counted here. ``paged``, if
    given, is the page itself (already offset and limited) read another way than ``q``;
    ``counted``, if given, is ``q`` as it is counted (the same rows, read another way)."""
    if once:
        rows = list(tx.conn.execute(q.limit(max(COUNT_CAP + 1, offset + limit + 1))))
        return rows[offset : offset + limit], len(rows)
    if paged is None:
        paged = q.offset(offset).limit(limit)
    rows = list(tx.conn.execute(paged))
    if offset == 0 and len(rows) < limit:
        return rows, len(rows)
    cap = max(COUNT_CAP + 1, offset + limit + 1)
    capped = (q if counted is None else counted).order_by(None).limit(cap).subquery()
    return rows, int(tx.conn.execute(select(func.count()).select_from(capped)).scalar_one())


# A scope of at most this many collections has its page read per collection (the number of
# parts of one ``UNION ALL``; SQLite allows 500).
PER_COLLECTION = 64


def _per_collection(
    dialect: str, cids: list[int], sort: str, rows: int, in_scope: int | None
) -> bool:
    """Whether a page ending at row ``rows`` of a scope of collections ``cids`` is read per
    collection: on SQLite (PostgreSQL reads a scope's rows as bitmaps of the ``collection_id``
    index, fewer pages than the parts would; measured), the sort has an index that starts
    with the collection (``created``:
    ``ix_versions_collection_created``, ``version``: the ``(collection_id, idx)`` key), the
    scope has several collections but not too many, and reading up to ``rows`` matching rows
    of each reads fewer rows than the scope has (``in_scope``, a capped count; None: not
    counted, taken as ``DENSE // 4``)."""
    if dialect != "sqlite" or sort not in ("created", "version"):
        return False
    if not 1 < len(cids) <= PER_COLLECTION:
        return False
    return len(cids) * rows < (DENSE // 4 if in_scope is None else in_scope)


def _per_collection_page(
    cids: list[int], where: list[Any], order: list[Any], descending: bool, offset: int, limit: int
) -> Any:
    """The page (``offset``, ``limit``) of the versions of collections ``cids`` that meet
    ``where``, read as the first ``offset + limit`` of each collection in the page's order (the
    index on the collection and the sort key, a few rows each) and those merged. One
    ``ORDER BY`` of every version of the scope would read and test them all, whatever the page:
    an index on ``(collection_id, created_at)`` cannot give ten collections' rows in one order
    (the rows of the scope are then read through the ``collection_id`` index, tested and
    sorted: 10,000 for a project of ten collections of 1,000)."""
    v, c = s.versions.c, s.collections.c
    parts = []
    for cid in cids:
        part = (
            select(v.id, order[0].element.label("k1"), v.idx.label("k2"))
            .select_from(s.versions)
            .join(s.collections, c.id == v.collection_id)
            .where(v.collection_id == cid, *where)
            .order_by(*order, v.id)
            .limit(offset + limit)
            .subquery()
        )
        # (SQLite takes no ``LIMIT`` on a part of a compound: each part is wrapped.)
        parts.append(select(part.c.id, part.c.k1, part.c.k2))
    merged = union_all(*parts).subquery()
    m = merged.c
    keys = [m.k1.desc(), m.k2.desc()] if descending else [m.k1.asc(), m.k2.asc()]
    return select(m.id).order_by(*keys, m.id).offset(offset).limit(limit)


def _collection_records(tx: Tx, ids: list[int]) -> list[CollectionRecord]:
    """Collections by id, in that order (version counts computed for these only)."""
    if not ids:
        return []
    c, v, p = s.collections.c, s.versions.c, s.projects.c
    counts = (
        select(v.collection_id, func.count().label("n"), func.max(v.idx).label("latest_idx"))
        .where(alive(), v.collection_id.in_(ids))  # expired versions (TTL) are not counted
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
    latest = tx.collections.latest_versions({cid: r.latest_idx for cid, r in rows.items()})
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


class Search(Repository):
    """Search: pages of hits of each kind for a parsed query."""

    def find(
        self,
        query: SearchQuery,
        *,
        project_ids: Sequence[int] | None,
        collection_id: int | None = None,
        kinds: Sequence[str] = KINDS,
        sort: str = "created",
        descending: bool = True,
        offset: int = 0,
        limit: int = 20,
        dense: int = DENSE,
    ) -> CatalogHits:
        """A page (``offset``, ``limit``) of each kind of hit, within ``project_ids`` (None: all).
        A word that may match ``dense`` versions or more is tested row by row (tests pass 0 and a
        huge number to check that both ways find the same)."""
        tx = self.tx
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
            conds = [or_(contains(p.entity, w), contains(p.name, w)) for w in query.words]
            where = [x for x in (scoped(p.id), *conds) if x is not None]
            q = select(p.entity, p.name).where(*where).order_by(p.entity, p.name)
            rows, hits.totals["project"] = _page(tx, q, offset, limit)
            hits.projects = [(row.entity, row.name) for row in rows]

        if "collection" in kinds and not only_versions:
            conds = [
                or_(
                    contains(c.name, w), contains(c.description, w), func.lower(c.type) == w.lower()
                )
                for w in query.words
            ]
            conds += [c.type == t for t in query.types] + [c.name == n for n in query.names]
            where = [x for x in (scoped(c.project_id), *conds) if x is not None]
            q = select(c.id).where(*where).order_by(c.updated_at.desc(), c.id)
            rows, hits.totals["collection"] = _page(tx, q, offset, limit)
            hits.collections = _collection_records(tx, [int(row.id) for row in rows])

        if "version" in kinds:
            conds = [_alive(tx)]  # committed and not expired (TTL)
            own = None  # the versions the scope allows, when it is narrower than the store
            cids: list[int] = []  # the scope's collections, when it is a list of projects
            if collection_id is not None:
                own = v.collection_id == collection_id
            elif project_ids is not None:
                # The scope's collections, listed first: their versions are then read through the
                # ``collection_id`` indexes, counted like a condition, and judged right by
                # PostgreSQL's planner (a join on the projects was judged as a scan of them all).
                where_scope = scoped(c.project_id)
                cids = [int(x) for x in tx.conn.execute(select(c.id).where(where_scope)).scalars()]
                own = tx.among(v.collection_id, cids) if cids else false()
            conds += [c.type == x for x in query.types] + [c.name == x for x in query.names]
            # Each tag, alias, metadata condition and word can be read three ways (``Condition``).
            # How many versions each may find is counted first from its indexes (up to ``dense``,
            # a few milliseconds). The rarest, if it may find fewer than ``dense // 4``, is the set
            # of ids that drives the query: its rows are read and sorted (a few thousand at most),
            # the other conditions probed on each. When the collection asked for (or the scope) has
            # fewer versions than that, its rows are read and every condition probed. Otherwise the
            # rows are read in the page's order until the page and the capped count are found, each
            # condition tested as ``Condition.test`` says; for a scope of a few collections, the
            # page is read per collection (see ``_per_collection``).
            conditions = version_conditions(query, tx.dialect)
            in_scope = count_members(
                tx, conditions, None if own is None else select(v.id).where(own), dense
            )
            rarest = min(conditions, key=lambda x: x.estimate, default=None)
            drivers: list[Condition] = []  # the conditions whose ids drive the query
            ids = None
            if rarest is not None and rarest.counts and rarest.estimate < dense // 4:
                drivers, ids = [rarest], rarest.ids()
            few = bool(drivers)
            if in_scope is not None and in_scope < min(
                dense // 4, rarest.estimate if rarest else dense
            ):
                drivers, ids, few = [], None, True
            once = ids is not None
            if not few and (together := rarely_together(tx, conditions, dense)) is not None:
                drivers, found_ids = together
                conds.append(tx.among(v.id, found_ids) if found_ids else false())
                few = once = True
            tests = [
                x.test(dense, tx.dialect, few=few)
                for x in conditions
                if all(x is not d for d in drivers)
            ]
            if ids is not None:
                if tx.dialect == "postgresql":
                    # Computed first: PostgreSQL misjudges how many ids a range of num_value leaves
                    # (its statistics mix every key) and would probe the index once per version.
                    found = ids.cte("found").prefix_with("MATERIALIZED")
                    conds.append(v.id.in_(select(found.c[0])))
                else:
                    # (SQLite takes no parenthesised compound inside a compound: unions are wrapped.)
                    conds.append(v.id.in_(select(ids.subquery().c[0])))
            column = getattr(v, VERSION_SORTS.get(sort, "created_at"))
            order = [column.desc(), v.idx.desc()] if descending else [column.asc(), v.idx.asc()]
            q = (
                select(v.id)
                .select_from(s.versions)
                .join(s.collections, c.id == v.collection_id)
                .where(*conds, *tests, *([] if own is None else [own]))
                .order_by(*order, v.id)
            )
            paged = None
            if not few and _per_collection(tx.dialect, cids, sort, offset + limit, in_scope):
                # Every condition probed: each part reads only its collection's first rows.
                probed = [x.test(dense, tx.dialect, few=True) for x in conditions]
                paged = _per_collection_page(cids, conds + probed, order, descending, offset, limit)
            counted = None
            if own is None and (query.types or query.names) and tx.dialect == "sqlite":
                # Counted through the ``collection_id`` index of the collections of those types or
                # names: SQLite would read every version for the count (not for the page, whose
                # order the ``created_at`` index gives: there that index stays its choice).
                named = [c.type == x for x in query.types] + [c.name == x for x in query.names]
                found = [int(x) for x in tx.conn.execute(select(c.id).where(*named)).scalars()]
                counted = q.where(tx.among(v.collection_id, found) if found else false())
            rows, hits.totals["version"] = _page(
                tx, q, offset, limit, once=once, paged=paged, counted=counted
            )
            hits.versions = tx.versions.records([str(row.id) for row in rows])

        if "run" in kinds and not only_versions and not query.types and not query.names:
            conds = [
                or_(
                    contains(r.name, w),
                    contains(r.run_id, w),
                    contains(r.job_type, w),
                    contains(r.group_name, w),
                )
                for w in query.words
            ]
            where = [x for x in (scoped(r.project_id), *conds) if x is not None]
            q = select(r.id).where(*where).order_by(r.created_at.desc(), r.id)
            rows, hits.totals["run"] = _page(tx, q, offset, limit)
            found = tx.runs.records(r.id.in_([int(row.id) for row in rows])) if rows else []
            hits.runs = sorted(found, key=lambda run: run.created_at or 0.0, reverse=True)
        return hits
