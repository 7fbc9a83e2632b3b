"""How each term of a search query finds versions: a word, tag, alias or metadata condition
becomes a ``Condition``, the union of sets of version ids read from covering indexes, which can
also be tested on a version row (against its set, or by an index probe); and the counts that
choose between those ways (``count_members``, ``rarely_together``). ``_search.py`` puts them
together into a page of hits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Select,
    and_,
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
from cairn.core import MAX_TEXT_CHARS, MetadataCondition, SearchQuery, prefix_end, query_parts

if TYPE_CHECKING:
    from cairn.catalog._tx import Tx


def _like(word: str) -> str:
    escaped = word.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def contains(column: Any, word: str, dialect: str = "") -> Any:
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
class Condition:
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


def version_conditions(query: SearchQuery, dialect: str) -> list[Condition]:
    """The version conditions of ``query`` (each distinct word, tag, alias, metadata condition;
    the collection filters ``type:`` and ``name:`` are plain conditions on the join)."""
    v, a, t, c = s.versions.c, s.aliases.c, s.tags.c, s.collections.c
    out = []
    for x in query.tags:
        out.append(Condition([select(t.version_id).where(t.tag == x)], [_has_tag(v.id, x)]))
    for x in query.aliases:
        out.append(Condition([select(a.version_id).where(a.alias == x)], [_has_alias(v.id, x)]))
    for cond in query.metadata:
        found = _metadata_ids(cond)
        ids = found if isinstance(found, Select) else select(found.subquery().c[0])
        out.append(Condition([ids], [_has_metadata(v.id, cond)]))
    for w in dict.fromkeys(query.words):
        cc, vv = s.collections.alias("cc"), s.versions.alias("vv")
        named = select(cc.c.id).where(contains(cc.c.name, w))
        members = [select(vv.c.id).where(vv.c.collection_id.in_(named.scalar_subquery()))]
        probes = [None, _has_alias(v.id, w), _has_tag(v.id, w), _has_value(v.id, w)]
        members += _exact_ids(w)
        described = _described_ids(w)
        if described is not None:
            members.append(described)
            probes.append(_described_row(v.id, w))
        # The first member, tested on a row, is the joined collection's name.
        out.append(Condition(members, probes, named=contains(c.name, w, dialect)))
    return out


def count_members(tx: Tx, conditions: list[Condition], extra: Any, dense: int) -> int | None:
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
# together (``rarely_together``).
SAMPLE = 250


def rarely_together(
    tx: Tx, conditions: list[Condition], dense: int
) -> tuple[list[Condition], list[str]] | None:
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
