"""One transaction of the catalog: its connection, the SQL helpers every repository shares,
and the repositories, one per concept, all working on that one connection.

``catalog.write(fn)`` / ``catalog.read(fn)`` call ``fn(tx)``; ``fn`` finds each rule under its
concept, for example ``tx.versions.resolve(collection_id, "best")`` or
``tx.aliases.move_latest(collection_id)``:

    tx.projects     Projects          _projects.py     entity/project
    tx.runs         Runs              _runs.py         runs, resumed by id
    tx.history      RunHistory        _history.py      a run's history rows and summary
    tx.collections  Collections       _collections.py  names, types, numbering, collection tags
    tx.versions     Versions          _versions.py     insert, resolve, records, search index
    tx.pending      PendingVersions   _pending.py      distributed versions and staged changes
    tx.aliases      Aliases           _aliases.py      aliases (``latest`` included)
    tx.tags         Tags              _aliases.py      version tags
    tx.ttl          Expiry            _ttl.py          time to live; ``alive()``, what queries see
    tx.lineage      Lineage           _lineage.py      runs that logged, used, wrote versions
    tx.registries   Registries        _registry.py     registries and registry links
    tx.grants       BlobGrants        _access.py       which blobs a project refers to (servers)
    tx.search       Search            _search.py       search: pages of hits for a parsed query
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, LargeBinary, func, select

from cairn.catalog._access import BlobGrants
from cairn.catalog._aliases import Aliases, Tags
from cairn.catalog._collections import Collections
from cairn.catalog._history import RunHistory
from cairn.catalog._lineage import Lineage
from cairn.catalog._pending import PendingVersions
from cairn.catalog._projects import Projects
from cairn.catalog._registry import Registries
from cairn.catalog._runs import Runs
from cairn.catalog._search import Search
from cairn.catalog._ttl import Expiry
from cairn.catalog._versions import Versions


class Tx:
    """Operations inside one transaction of the catalog, by concept (see the module's table)."""

    def __init__(self, conn: Connection, dialect: str) -> None:
        self.conn = conn
        self.dialect = dialect
        self.projects = Projects(self)
        self.runs = Runs(self)
        self.history = RunHistory(self)
        self.collections = Collections(self)
        self.versions = Versions(self)
        self.pending = PendingVersions(self)
        self.aliases = Aliases(self)
        self.tags = Tags(self)
        self.ttl = Expiry(self)
        self.lineage = Lineage(self)
        self.registries = Registries(self)
        self.grants = BlobGrants(self)
        self.search = Search(self)

    def upsert(self, table: Any) -> Any:
        """The dialect's ``INSERT`` into ``table``, which takes ``on_conflict_do_nothing()`` /
        ``on_conflict_do_update(...)``."""
        from cairn.catalog._statements import dialect_insert

        return dialect_insert(self.dialect)(table)

    def among(self, column: Any, values: Sequence[Any]) -> Any:
        """``column IN values``; on PostgreSQL one array parameter (``= ANY``), which the planner
        answers from an index, where a list of thousands of parameters is compared one by one."""
        if self.dialect == "postgresql":
            from sqlalchemy import any_

            return column == any_(pg_array(None, values, column.type))
        return column.in_(list(values))

    def insert_ignore(self, table: Any, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert rows, skipping those whose key exists; on PostgreSQL one statement for all
        (``INSERT ... SELECT unnest(...)``), not a round trip per row. A column with the same
        value in every row (a key's uploads: its name and their time) goes as that one value,
        not an array of it: PostgreSQL reads each element of an array parameter (measured: 18-25
        ms of its CPU for 20,000 digests, docs/design.md)."""
        if not rows:
            return
        cols = list(rows[0])
        binary = any(isinstance(table.c[c].type, LargeBinary) for c in cols)
        if self.dialect == "postgresql" and not binary:
            columns = [
                _column_of(f"a{i}", [r[c] for r in rows], table.c[c].type)
                for i, c in enumerate(cols)
            ]
            stmt = self.upsert(table).from_select(cols, select(*columns)).on_conflict_do_nothing()
            self.conn.execute(stmt)
            return
        # Rows with blob data: batched executemany. (An array of bytea would be escaped as
        # text element by element: measured six times slower for 8,000 blobs of 4 KiB.)
        batch = 1000 if binary else 5000
        for start in range(0, len(rows), batch):
            self.conn.execute(
                self.upsert(table).on_conflict_do_nothing(), list(rows[start : start + batch])
            )

    def copy_new(self, table: Any, types: Mapping[str, str], rows: Sequence[Sequence[Any]]) -> None:
        """Insert ``rows`` (tuples in the order of ``types``: column name -> PostgreSQL type)
        that are expected to be new; one whose key exists is skipped, as ``insert_ignore``
        does. On PostgreSQL: one binary ``COPY`` in a savepoint (the values as they are, no
        text or array to build and parse; no ``ON CONFLICT`` step per row); a row that is
        there already (another request wrote it first: a unique violation, raised as
        SQLAlchemy's ``IntegrityError``) rolls the savepoint back and the rows go by
        ``insert_ignore`` in the same transaction. Measured alone (docs/design.md): s1's 20,000
        uploads of a key in 14 batches 0.16 -> 0.10 s of PostgreSQL's CPU, a commit's 20,000
        grants 0.11-0.17 -> 0.05 s."""
        if not rows:
            return
        cols = list(types)
        if self.dialect != "postgresql":
            self.insert_ignore(table, [dict(zip(cols, r, strict=True)) for r in rows])
            return
        from sqlalchemy.exc import IntegrityError

        try:
            with self.conn.begin_nested():
                self._copy(table.name, cols, list(types.values()), rows)
        except IntegrityError:  # written meanwhile by another request: keep its rows
            self.insert_ignore(table, [dict(zip(cols, r, strict=True)) for r in rows])

    def _copy(self, name: str, cols: list[str], types: list[str], rows: Sequence[Any]) -> None:
        import psycopg
        from sqlalchemy.exc import DBAPIError

        sql = f"COPY {name} ({', '.join(cols)}) FROM STDIN (FORMAT BINARY)"
        raw: Any = self.conn.connection.dbapi_connection
        try:
            with raw.cursor() as cur, cur.copy(sql) as copy:
                copy.set_types(types)
                for row in rows:
                    copy.write_row(row)
        except psycopg.Error as exc:
            # As SQLAlchemy would raise it (the catalog's retries and messages depend on it).
            raise DBAPIError.instance(sql, None, exc, psycopg.Error) from None


def _column_of(name: str, values: Sequence[Any], element: Any) -> Any:
    """One column of ``insert_ignore``'s rows: the one value every row has (rows that would all
    be the same are one row: the insert skips repeats anyway), else ``unnest`` of the array."""
    from sqlalchemy import bindparam

    first = values[0]
    if all(type(v) is type(first) and v == first for v in values):
        return bindparam(name, first, type_=element)
    return func.unnest(pg_array(name, values, element))


def pg_array(name: str | None, values: Sequence[Any], element: Any) -> Any:
    """``values`` as one PostgreSQL array parameter of ``element``'s type. Strings, ints and
    floats go as one text literal built by a join (``'{"a","b"}'``), cast by PostgreSQL to the
    array of the column's own type (``varchar(80)[]`` for a digest: the same constant, and plan,
    as before): bound as a list, psycopg dumps it element by element in Python, which was a third
    of the CPU of a 20,000-blob commit through a server. Anything else goes as a list."""
    from sqlalchemy import bindparam, cast
    from sqlalchemy.dialects.postgresql import ARRAY
    from sqlalchemy.types import NullType

    literal = array_literal(values)
    if literal is None:
        return bindparam(name, list(values), type_=ARRAY(element))
    # NullType: no cast of the parameter itself; PostgreSQL reads the text as the array.
    return cast(bindparam(name, literal, type_=NullType()), ARRAY(element))


def array_literal(values: Sequence[Any]) -> str | None:
    """PostgreSQL's text form of an array of ``values`` (``'{"a","b"}'``, ``'{1,2}'``), or None
    when they are not all strings, or all ints, or all finite floats. Each string is quoted, and
    one holding ``"``, ``\\`` or NUL (which the quotes would not keep) gives None."""
    if not values:
        return "{}"
    try:
        plain = "".join(values)
    except TypeError:
        pass
    else:
        if '"' in plain or "\\" in plain or "\x00" in plain:
            return None
        return '{"' + '","'.join(values) + '"}'
    kind = type(values[0])
    if kind not in (int, float) or any(type(v) is not kind for v in values):
        return None
    text = ",".join(map(repr, values))
    if kind is float and ("n" in text):  # inf, nan: left to psycopg
        return None
    return "{" + text + "}"
