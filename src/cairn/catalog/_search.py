"""Search in the catalog: projects, collections, committed versions and runs that match a parsed
query, a page at a time, answered from indexes (no manifest is read).

Words match case-insensitively as substrings of names (and collections' descriptions), as word
prefixes of versions' descriptions (the ``version_words`` index), and exactly against aliases,
tags and metadata values; filters (``type:``, ``tag:``, ``alias:``, ``name:``, metadata
conditions) must all hold. Tags, aliases and metadata belong to versions, so a query with them
finds only versions.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Select,
    and_,
    false,
    func,
    intersect,
    literal,
    literal_column,
    or_,
    select,
    union,
    union_all,
)

from cairn.catalog import _schema as s
from cairn.catalog._ttl import alive
from cairn.core import (
    COMMITTED,
    COUNT_CAP,
    MAX_TEXT_CHARS,
    CollectionRecord,
    MetadataCondition,
    RunRecord,
    SearchQuery,
    VersionRecord,
    prefix_end,
    query_parts,
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
        # (Ids may repeat: each is a set tested by ``IN``, or counted as an estimate.)
        return union_all(
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


def _probe(table: Any, *where: Any) -> Any:
    """A row of ``table`` meets ``where`` (correlated to the version row being tested): an
    index probe per row tested. A scalar subquery with ``LIMIT 1`` rather than ``EXISTS``:
    PostgreSQL would read an ``EXISTS`` in an ``OR`` as a hash of every row that meets it (the
    110,000 versions of a common word) built before the first row is tested, though the rows
    tested stop at a page and a capped count."""
    return (
        select(literal(1)).select_from(table).where(*where).limit(1).scalar_subquery().is_not(None)
    )


def _described_row(version_id: Any, word: str) -> Any:
    """The version ``version_id`` has a description with words beginning with each part of
    ``word`` (an index probe per part)."""
    ww = s.version_words.alias("ww")
    return and_(
        *(
            _probe(ww, ww.c.version_id == version_id, _word_range(ww.c.word, p))
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


def _has_tag(version_id: Any, tag: str) -> Any:
    tt = s.tags.alias("tt")
    return _probe(tt, tt.c.version_id == version_id, tt.c.tag == tag)


def _has_alias(version_id: Any, alias: str) -> Any:
    aa = s.aliases.alias("aa")
    return _probe(aa, aa.c.version_id == version_id, aa.c.alias == alias)


def _has_metadata(version_id: Any, cond: MetadataCondition) -> Any:
    """The version's metadata leaf ``cond.key`` satisfies the condition (a probe of the
    ``(version, key)`` primary key)."""
    mm = s.version_metadata.alias("mm")
    m = mm.c
    if cond.op == "=":
        test = m.text_value == cond.text[:MAX_TEXT_CHARS]
        if cond.number is not None:
            test = or_(test, m.num_value == cond.number)
    else:
        assert cond.number is not None
        test = {
            ">": m.num_value > cond.number,
            ">=": m.num_value >= cond.number,
            "<": m.num_value < cond.number,
            "<=": m.num_value <= cond.number,
        }[cond.op]
    return _probe(mm, m.version_id == version_id, m.key == cond.key, test)


def _has_value(version_id: Any, word: str) -> Any:
    """Some metadata leaf of the version is ``word`` (its few leaves read by primary key)."""
    mm = s.version_metadata.alias("mv")
    return _probe(mm, mm.c.version_id == version_id, mm.c.text_value == word[:MAX_TEXT_CHARS])


@dataclass
class _Condition:
    """One filter or word of a query on versions: the union of ``members``' sets of version ids
    (each read from a covering index) and, for a word, the versions of collections whose name
    has it (``named``: a test of the joined collection row). Each member can also be tested on
    a version row, against its set (``v.id IN (...)``: the set built once, a hash on
    PostgreSQL, a temporary index on SQLite) or by an index probe by the row's id (no set
    built): ``probes`` (one per member)."""

    members: list[Any]
    probes: list[Any]
    named: Any = None
    counts: list[int] = field(default_factory=list)  # each member's size, capped at ``dense``

    @property
    def estimate(self) -> int:
        """How many versions it may find (capped counts; 0 when not counted)."""
        return sum(self.counts)

    def ids(self) -> Any:
        """Its versions' ids, a select (the union of its members')."""
        return self.members[0] if len(self.members) == 1 else union(*self.members)

    def test(self, dense: int, dialect: str, *, few: bool) -> Any:
        """Its test on a version row. When ``few`` rows are read (those of a small set or
        collection), index probes. Otherwise sets for the members that may find fewer than
        ``dense`` versions (each built once), and probes for the others: those match many rows
        (``run`` in "run 5 of ...", ``source:web``), so few rows are read before the page and
        the count, and building their sets would cost more. (Two common conditions that
        rarely hold together, like ``source:web source:camera``, read every version.)"""
        counts = self.counts or [dense] * len(self.members)
        # SQLite would read the rows through the set (an id look-up per member, then a sort of
        # them all) rather than read the page's order: ``id || ''`` is not an indexed column.
        key: Any = s.versions.c.id
        if dialect == "sqlite":
            key = key.concat("")
        sets, probes = [], []
        for member, probe, n in zip(self.members, self.probes, counts, strict=True):
            if probe is None:  # a word's collections: ``named`` tests the joined row
                continue
            if few or n >= dense:
                probes.append(probe)
            elif self.named is None and dialect == "postgresql":
                # ``OR false`` keeps the test a hash of the set built once (a hashed SubPlan):
                # a plain ``IN`` becomes a join that PostgreSQL, misjudging how many ids a
                # metadata condition has (its statistics mix every key), would read whole and
                # sort for a page of 20 (0.4 s for ``lr:0.1 source:web`` on 110,000 versions).
                sets.append(or_(key.in_(member), literal_column("false")))
            else:
                sets.append(key.in_(member))
        tests = [x for x in (self.named, *sets, *probes) if x is not None]
        return tests[0] if len(tests) == 1 else or_(*tests)


def _conditions(query: SearchQuery, dialect: str) -> list[_Condition]:
    """The version conditions of ``query`` (each distinct word, tag, alias, metadata condition;
    the collection filters ``type:`` and ``name:`` are plain conditions on the join)."""
    v, a, t, c = s.versions.c, s.aliases.c, s.tags.c, s.collections.c
    out = []
    for x in query.tags:
        out.append(_Condition([select(t.version_id).where(t.tag == x)], [_has_tag(v.id, x)]))
    for x in query.aliases:
        out.append(_Condition([select(a.version_id).where(a.alias == x)], [_has_alias(v.id, x)]))
    for cond in query.metadata:
        found = _metadata_ids(cond)
        ids = found if isinstance(found, Select) else select(found.subquery().c[0])
        out.append(_Condition([ids], [_has_metadata(v.id, cond)]))
    for w in dict.fromkeys(query.words):
        cc, vv = s.collections.alias("cc"), s.versions.alias("vv")
        named = select(cc.c.id).where(_contains(cc.c.name, w))
        members = [select(vv.c.id).where(vv.c.collection_id.in_(named.scalar_subquery()))]
        probes = [None, _has_alias(v.id, w), _has_tag(v.id, w), _has_value(v.id, w)]
        members += _exact_ids(w)
        described = _described_ids(w)
        if described is not None:
            members.append(described)
            probes.append(_described_row(v.id, w))
        # The first member, tested on a row, is the joined collection's name.
        out.append(_Condition(members, probes, named=_contains(c.name, w, dialect)))
    return out


def _estimate(tx: Tx, conditions: list[_Condition], extra: Any, dense: int) -> int | None:
    """Count each condition's members (each read from its index and capped at ``dense``: a few
    milliseconds) in one query; return ``extra``'s count (a select of ids, or None) the same
    way, capped at ``dense // 4`` (all that is asked of it is whether it is fewer)."""
    if dense <= 0 or not conditions:
        return None

    def capped(x: Any, cap: int = dense) -> Any:
        return select(func.count()).select_from(x.limit(cap).subquery()).scalar_subquery()

    columns = [capped(x) for cond in conditions for x in cond.members]
    if extra is not None:
        columns.append(capped(extra, max(1, dense // 4)))
    row = list(tx.conn.execute(select(*columns)).one())
    for cond in conditions:
        cond.counts = [int(n) for n in row[: len(cond.members)]]
        del row[: len(cond.members)]
    return int(row[0]) if extra is not None else None


# How many ids of a filter are tested against the others to judge whether they often hold
# together (``_rarely_together``).
SAMPLE = 250


def _rarely_together(
    tx: Tx, conditions: list[_Condition], dense: int
) -> tuple[list[_Condition], list[str]] | None:
    """When two or more filters (tags, aliases, metadata conditions), none of them rare, may
    rarely hold together (``source:web source:camera``: no version has both), those filters
    and the ids of the versions that meet them all (an ``INTERSECT`` of their indexes: on
    SQLite a merge of index ranges in id order, on PostgreSQL a hash), if they are fewer than
    ``dense // 4``; else None. Without it such a query reads every version in the page's
    order, testing each, to find none. Whether they may rarely hold together is judged first
    on the first ``SAMPLE`` ids of the rarest (its others tested by index probes, a
    millisecond): the intersection is read only if the share of those that meet them all,
    times the rarest's estimate, is under ``dense // 4``."""
    filters = sorted(
        (x for x in conditions if x.named is None and len(x.members) == 1 and x.counts),
        key=lambda x: x.estimate,
    )
    if len(filters) < 2:
        return None
    first, rest = filters[0], filters[1:]
    v = s.versions.c
    sample = select(first.ids().subquery().c[0]).limit(SAMPLE)
    tested = select(func.count()).where(v.id.in_(sample), *(x.probes[0] for x in rest))
    hits = int(tx.conn.execute(tested.select_from(s.versions)).scalar_one())
    if hits * first.estimate >= (dense // 4) * SAMPLE:
        return None
    both: Any = intersect(*(x.members[0] for x in filters))
    if tx.dialect == "sqlite":
        # In id order, each part read in its index's order: a merge that stops at the limit
        # (without it SQLite builds a temporary index of the first part, 4x the time).
        both = both.order_by(literal_column("1"))
    found = list(tx.conn.execute(select(both.subquery().c[0]).limit(dense // 4)).scalars())
    if len(found) >= dense // 4:
        return None
    return filters, found


# A word's part that may match this many versions or more is tested by probes, and a condition
# that may match fewer than a quarter of it drives the query (see ``search``).
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


def search(
    tx: Tx,
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
        # Each tag, alias, metadata condition and word can be read three ways (``_Condition``).
        # How many versions each may find is counted first from its indexes (up to ``dense``,
        # a few milliseconds). The rarest, if it may find fewer than ``dense // 4``, is the set
        # of ids that drives the query: its rows are read and sorted (a few thousand at most),
        # the other conditions probed on each. When the collection asked for (or the scope) has
        # fewer versions than that, its rows are read and every condition probed. Otherwise the
        # rows are read in the page's order until the page and the capped count are found, each
        # condition tested as ``_Condition.test`` says; for a scope of a few collections, the
        # page is read per collection (see ``_per_collection``).
        conditions = _conditions(query, tx.dialect)
        in_scope = _estimate(
            tx, conditions, None if own is None else select(v.id).where(own), dense
        )
        rarest = min(conditions, key=lambda x: x.estimate, default=None)
        drivers: list[_Condition] = []  # the conditions whose ids drive the query
        ids = None
        if rarest is not None and rarest.counts and rarest.estimate < dense // 4:
            drivers, ids = [rarest], rarest.ids()
        few = bool(drivers)
        if in_scope is not None and in_scope < min(
            dense // 4, rarest.estimate if rarest else dense
        ):
            drivers, ids, few = [], None, True
        once = ids is not None
        if not few and (together := _rarely_together(tx, conditions, dense)) is not None:
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
        found = tx.runs.records(r.id.in_([int(row.id) for row in rows])) if rows else []
        hits.runs = sorted(found, key=lambda run: run.created_at or 0.0, reverse=True)
    return hits


def project_ids(tx: Tx, projects: Sequence[tuple[str, str]]) -> list[int]:
    """The ids of those (entity, name) projects that exist."""
    if not projects:
        return []
    p = s.projects.c
    wanted = set(projects)
    entities = sorted({e for e, _ in projects})
    q = select(p.id, p.entity, p.name).where(tx.among(p.entity, entities))
    return [int(row.id) for row in tx.conn.execute(q) if (row.entity, row.name) in wanted]
