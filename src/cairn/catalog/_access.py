"""The server's own tables: API keys, uploads under way, and which blobs a key may read.

Repositories over a ``Catalog``: the server's key ring (``cairn.server._auth``), its transfers
(``cairn.server._transfers``) and its access checks call these, never SQL of their own. A
commit records which blobs its project refers to inside its own transaction (``BlobGrants``,
``tx.grants``); ``readable_blobs`` reads them back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    and_,
    any_,
    exists,
    false,
    func,
    or_,
    select,
    true,
    union,
    union_all,
    update,
)
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import CompoundSelect, Select

from cairn.catalog import _schema as s
from cairn.catalog._repository import Repository

if TYPE_CHECKING:
    from cairn.catalog._catalog import Catalog
    from cairn.catalog._tx import Tx

ANY = "*"  # a grant pattern's wildcard (entity or project)


@dataclass(frozen=True, slots=True)
class KeyRow:
    """An API key as the catalog keeps it: never the secret, only its SHA-256."""

    id: str
    user: str
    secret_hash: str
    created_at: float
    revoked: bool
    grants: tuple[tuple[str, str, str], ...]  # (entity, project, role)


class ApiKeys:
    """The ``api_keys`` and ``api_key_grants`` tables."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def insert(
        self, key_id: str, user: str, secret_hash: str, grants: Sequence[tuple[str, str, str]]
    ) -> None:
        def fn(tx: Tx) -> None:
            tx.conn.execute(
                s.api_keys.insert().values(
                    id=key_id, user_name=user, secret_hash=secret_hash, created_at=time.time()
                )
            )
            for entity, project, role in grants:
                tx.conn.execute(
                    s.api_key_grants.insert().values(
                        key_id=key_id, entity=entity, project=project, role=role
                    )
                )

        self.catalog.write(fn)

    def revoke(self, key_id: str) -> bool:
        """Revoke an active key; False if there is none with this id."""
        k = s.api_keys.c

        def fn(tx: Tx) -> int:
            res = tx.conn.execute(
                update(s.api_keys)
                .where(k.id == key_id, k.revoked_at.is_(None))
                .values(revoked_at=time.time())
            )
            return int(res.rowcount)

        return bool(self.catalog.write(fn))

    def get(self, key_id: str) -> KeyRow | None:
        k, g = s.api_keys.c, s.api_key_grants.c

        def fn(tx: Tx) -> KeyRow | None:
            row = tx.conn.execute(select(s.api_keys).where(k.id == key_id)).first()
            if row is None:
                return None
            grants = tx.conn.execute(
                select(g.entity, g.project, g.role).where(g.key_id == key_id)
            ).all()
            return _key_row(row, [(r.entity, r.project, r.role) for r in grants])

        return self.catalog.read(fn)

    def all(self) -> list[KeyRow]:
        """Every key, oldest first."""
        k = s.api_keys.c

        def fn(tx: Tx) -> list[KeyRow]:
            grants: dict[str, list[tuple[str, str, str]]] = {}
            for r in tx.conn.execute(select(s.api_key_grants)):
                grants.setdefault(r.key_id, []).append((r.entity, r.project, r.role))
            rows = tx.conn.execute(select(s.api_keys).order_by(k.created_at))
            return [_key_row(r, grants.get(r.id, [])) for r in rows]

        return self.catalog.read(fn)


def _key_row(row: object, grants: Sequence[tuple[str, str, str]]) -> KeyRow:
    return KeyRow(
        id=str(row.id),  # type: ignore[attr-defined]
        user=str(row.user_name),  # type: ignore[attr-defined]
        secret_hash=str(row.secret_hash),  # type: ignore[attr-defined]
        created_at=float(row.created_at),  # type: ignore[attr-defined]
        revoked=row.revoked_at is not None,  # type: ignore[attr-defined]
        grants=tuple(grants),
    )


_GRANT_TYPES = {"project_id": "int4", "digest": "varchar"}


@dataclass(frozen=True, slots=True)
class BlobReader:
    """Who reads blobs on a server: one key, which may read the blobs it uploaded (``owner``,
    its ``key:<id>``) and those a project matching one of ``projects`` refers to (``(entity,
    project)`` patterns, ``*`` for any). ``readable_blobs`` and ``BlobGrants.add_readable``
    apply it, both through ``_readable``."""

    owner: str
    projects: tuple[tuple[str, str], ...]


class BlobGrants(Repository):
    """The ``project_blobs`` table: which blobs each project's versions refer to (servers)."""

    def add(self, project_id: int, digests: Iterable[str]) -> None:
        """Record that the project's versions refer to these blobs (so its readers may read them)."""
        rows = [{"project_id": project_id, "digest": d} for d in sorted(set(digests))]
        self.tx.insert_ignore(s.project_blobs, rows)

    def add_readable(
        self,
        project_id: int,
        digests: Iterable[str],
        reader: BlobReader,
        *,
        indexed: bool = False,
    ) -> list[str]:
        """``add`` those of ``digests`` that ``reader`` may read; return the others, for which
        nothing is granted (a commit that names any commits nothing: its transaction is rolled
        back). ``indexed``: also refuse those without a row in ``blobs`` (a store whose index
        is this catalog: the presence check is the same statement, not one of its own before
        the transaction). On PostgreSQL the key's read check is one statement per ``_BATCH``
        digests, the digests one array parameter, and the readable ones are granted by one
        ``COPY`` of those the project lacks (the check's statement finds the others; the insert
        with ``ON CONFLICT`` is the way only when a commit beside this one granted some
        meanwhile): 20,000 grants alone cost PostgreSQL 0.05 s by ``COPY``, 0.11-0.17 s by
        that insert (docs/design.md). In key order, as every
        insert here: the indexes' pages are then visited in order (measured: 20,000 grants cost
        PostgreSQL 0.30-0.32 s of CPU sorted, 0.37 s not)."""
        wanted = sorted(set(digests))
        refused: list[str] = []
        for start in range(0, len(wanted), _batch(self.tx.dialect)):
            chunk = wanted[start : start + _batch(self.tx.dialect)]
            if self.tx.dialect == "postgresql":
                refused += self._add_readable_pg(project_id, chunk, reader, indexed)
                continue
            usable = _usable(_readable(self.tx, reader, _among(self.tx, chunk)), indexed)
            found = {str(r[0]) for r in self.conn.execute(usable)}
            self.add(project_id, [d for d in chunk if d in found])
            refused += [d for d in chunk if d not in found]
        return refused

    def _add_readable_pg(
        self, project_id: int, chunk: list[str], reader: BlobReader, indexed: bool
    ) -> list[str]:
        # One statement: WITH ok AS (<the usable ones>) the asked ones not in ok (refused),
        # and those the project has already (kept as they are). The others (``chunk`` is
        # sorted) go by one COPY (``copy_new``: the insert with ON CONFLICT DO NOTHING only if
        # a commit beside this one granted some meanwhile). ``chunk`` is one parameter, read
        # once however often named.
        digests = _digest_array(chunk)
        ok = _usable(_readable(self.tx, reader, lambda col: col == any_(digests)), indexed)
        ok_cte = ok.cte("ok")
        asked = select(func.unnest(digests).label("d")).subquery()
        pb = s.project_blobs.c
        refused_q = select(asked.c.d, true().label("refused")).where(
            ~exists().where(ok_cte.c.digest == asked.c.d)
        )
        had_q = select(pb.digest, false()).where(
            pb.project_id == project_id, pb.digest == any_(digests)
        )
        refused: list[str] = []
        skip: set[str] = set()
        for d, no in self.conn.execute(union_all(refused_q, had_q)):
            if no:
                refused.append(str(d))
            else:
                skip.add(str(d))
        skip.update(refused)
        rows = [(project_id, d) for d in chunk if d not in skip]
        self.tx.copy_new(s.project_blobs, _GRANT_TYPES, rows)
        return refused


_BATCH = 20_000


def _batch(dialect: str) -> int:
    """Digests checked per statement: SQLite takes at most 32,766 parameters (each digest is
    two in ``_readable``); PostgreSQL gets each list as one array parameter."""
    return _BATCH if dialect == "postgresql" else 2000


def _project_filter(
    patterns: Sequence[tuple[str, str]],
    entity_col: ColumnElement[str],
    name_col: ColumnElement[str],
) -> ColumnElement[bool]:
    """A SQL condition: the project (entity, name) matches one of ``patterns`` (``*``: any)."""
    terms: list[ColumnElement[bool]] = []
    for entity, project in patterns:
        conds: list[ColumnElement[bool]] = []
        if entity != ANY:
            conds.append(entity_col == entity)
        if project != ANY:
            conds.append(name_col == project)
        terms.append(and_(*conds) if conds else true())
    if not terms:
        return false()
    return or_(*terms)


Among = Callable[[ColumnElement[str]], ColumnElement[bool]]


def _among(tx: Tx, chunk: Sequence[str]) -> Among:
    """``column IN chunk``, for each column compared with ``chunk``: on PostgreSQL the same
    array parameter every time (sent, and read by PostgreSQL, once: 18-25 ms of its CPU for
    20,000 digests each time it is read, docs/design.md)."""
    if tx.dialect != "postgresql":
        return lambda col: tx.among(col, chunk)
    digests = _digest_array(chunk)
    return lambda col: col == any_(digests)


def _digest_array(chunk: Sequence[str]) -> Any:
    """``chunk`` as one PostgreSQL array parameter of digests (``pg_array``)."""
    from cairn.catalog._tx import pg_array

    return pg_array(None, chunk, s.blobs.c.digest.type)


def _readable(tx: Tx, reader: BlobReader, among: Among) -> CompoundSelect[tuple[str]]:
    """The rule, written once: those of the digests ``among`` tests (``_among``) that
    ``reader.owner`` uploaded or that a project matching one of ``reader.projects`` refers to
    (one SELECT of ``digest``)."""
    bu, pb, p = s.blob_uploads.c, s.project_blobs.c, s.projects.c
    readable = select(p.id).where(_project_filter(reader.projects, p.entity, p.name))
    mine = select(bu.digest).where(bu.user_name == reader.owner, among(bu.digest))
    theirs = select(pb.digest).where(
        among(pb.digest), pb.project_id.in_(readable.scalar_subquery())
    )
    return union(mine, theirs)


def _usable(
    readable: CompoundSelect[tuple[str]], indexed: bool
) -> Select[tuple[str]] | CompoundSelect[tuple[str]]:
    """``readable`` (``_readable``), and with ``indexed`` only those with a row in ``blobs``
    (the blob index of a store kept in this catalog: an S3 store's)."""
    if not indexed:
        return readable
    them = readable.subquery()
    b = s.blobs.c
    return select(them.c.digest).where(exists().where(b.digest == them.c.digest))


def readable_blobs(
    catalog: Catalog, owner: str, projects: Sequence[tuple[str, str]], digests: Sequence[str]
) -> set[str]:
    """Those of ``digests`` that ``owner`` uploaded or that a project matching one of
    ``projects`` (``(entity, project)`` patterns, ``*`` for any) refers to."""
    reader = BlobReader(owner, tuple(projects))

    def chunk_of(chunk: list[str]) -> list[str]:
        return catalog.read_single(
            lambda tx: [
                str(r[0]) for r in tx.conn.execute(_readable(tx, reader, _among(tx, chunk)))
            ]
        )

    found: set[str] = set()
    wanted = list(dict.fromkeys(digests))
    batch = _batch(catalog.dialect)
    for start in range(0, len(wanted), batch):
        found.update(chunk_of(wanted[start : start + batch]))
    return found
