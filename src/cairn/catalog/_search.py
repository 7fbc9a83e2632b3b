"""Search in the catalog: projects, collections, committed versions and runs that match a parsed
query, a page at a time, answered from indexes (no manifest is read).

Words match case-insensitively as substrings of names (and collections' descriptions), as word
prefixes of versions' descriptions (the ``version_words`` index), and exactly against aliases,
tags and metadata values; filters (``type:``, ``tag:``, ``alias:``, ``name:``, metadata
conditions) must all hold. Tags, aliases and metadata belong to versions, so a query with them
finds only versions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, and_, exists, false, func, intersect, or_, select, union

from cairn.catalog import _schema as s
from cairn.core import (
    MAX_TEXT_CHARS,
    CollectionRecord,
    MetadataCondition,
    RunRecord,
    SearchQuery,
    VersionRecord,
    prefix_end,
    query_parts,
)

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


def _word_range(column: Any, part: str) -> Any:
    """``column`` begins with ``part`` (a range of the index, see ``prefix_end``)."""
    end = prefix_end(part)
    return column >= part if end is None else and_(column >= part, column < end)


def _described_ids(word: str) -> Any:
    """The ids of versions whose description has a word beginning with each part of ``word``
    (read from the ``version_words`` primary key), or None when ``word`` has no part."""
    parts = query_parts(word)
    if not parts:
        return None
    vw = s.version_words.c
    sets = [select(vw.version_id).where(_word_range(vw.word, p)) for p in parts]
    if len(sets) == 1:
        return sets[0]
    # (SQLite takes no parenthesised compound inside a compound: the intersection is wrapped.)
    return select(intersect(*sets).subquery().c[0])


def _described_row(version_id: Any, word: str) -> Any:
    """The version ``version_id`` has a description with words beginning with each part of
    ``word`` (an index probe per part)."""
    ww = s.version_words.alias("ww")
    return and_(
        *(
            exists().where(ww.c.version_id == version_id, _word_range(ww.c.word, p))
            for p in query_parts(word)
        )
    )


def _exact_ids(word: str) -> list[Any]:
    """The ids of versions with an alias, a tag or a metadata value equal to ``word``."""
    a, t, m = s.aliases.c, s.tags.c, s.version_metadata.c
    return [
        select(a.version_id).where(a.alias == word),
        select(t.version_id).where(t.tag == word),
        select(m.version_id).where(m.text_value == word[:MAX_TEXT_CHARS]),
    ]


DENSE = 20_000  # a word that may match more versions than this is tested row by row


def _word_sets(tx: Any, words: Sequence[str], dense: int) -> list[tuple[str, int, list[Any]]]:
    """Each distinct word, how many versions it may match at most (each part of its set counted
    from its index, up to ``dense``), and the parts of its set; rarest first."""
    out = []
    for w in dict.fromkeys(words):
        cc, vv = s.collections.alias("cc"), s.versions.alias("vv")
        named = select(cc.c.id).where(_contains(cc.c.name, w))
        members = [
            select(vv.c.id).where(vv.c.collection_id.in_(named.scalar_subquery())),
            *_exact_ids(w),
        ]
        described = _described_ids(w)
        if described is not None:
            members.append(described)
        capped = [
            select(func.count()).select_from(x.limit(max(dense, 1)).subquery()).scalar_subquery()
            for x in members
        ]
        estimate = int(tx.conn.execute(select(sum(capped[1:], capped[0]))).scalar_one())
        out.append((w, estimate, members))
    return sorted(out, key=lambda x: x[1])


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
    dense: int = DENSE,
) -> CatalogHits:
    """A page (``offset``, ``limit``) of each kind of hit, within ``project_ids`` (None: all).
    A word that may match ``dense`` versions or more is tested row by row (tests pass 0 and a
    huge number to check that both ways find the same)."""
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
        a, t = s.aliases.c, s.tags.c
        conds = [tx.alive()]  # committed and not expired (TTL)
        if collection_id is not None:
            conds.append(v.collection_id == collection_id)
        conds += [c.type == x for x in query.types] + [c.name == x for x in query.names]
        # Tags, aliases and metadata conditions are sets of version ids read from covering
        # indexes and intersected before any version row is read.
        id_sets: list[Any] = [select(t.version_id).where(t.tag == x) for x in query.tags]
        id_sets += [select(a.version_id).where(a.alias == x) for x in query.aliases]
        id_sets += [_metadata_ids(x) for x in query.metadata]
        # Each word is the versions of collections whose name has it, those with an alias, tag
        # or metadata value equal to it, and those whose description has words beginning with
        # each of its parts: all read from indexes, no version row. The rarest word (if it is
        # rare enough, see ``_word_sets``) is a set of ids like the filters; the others are
        # tested by index probes on the rows it leaves, or, when every word is common, on the
        # rows met in the page's order (the first 10,001 that match are soon found).
        words = _word_sets(tx, query.words, dense)
        driving = words[0][0] if words and words[0][1] < dense else None
        for w, _, members in words:
            if w == driving:
                id_sets.append(union(*members))
                continue
            described = _described_ids(w)
            conds.append(
                or_(
                    _contains(c.name, w, tx.dialect),
                    *(v.id.in_(x) for x in _exact_ids(w)),
                    *([] if described is None else [_described_row(v.id, w)]),
                )
            )
        if id_sets:
            # (SQLite takes no parenthesised compound inside a compound: unions are wrapped.)
            parts = [x if isinstance(x, Select) else select(x.subquery().c[0]) for x in id_sets]
            ids = parts[0] if len(parts) == 1 else intersect(*parts)
            if tx.dialect == "postgresql":
                # Computed first: PostgreSQL misjudges how many ids a range of num_value leaves
                # (its statistics mix every key) and would probe the index once per version.
                found = ids.cte("found").prefix_with("MATERIALIZED")
                conds.append(v.id.in_(select(found.c[0])))
            else:
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
