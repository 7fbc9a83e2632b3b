"""Migration 0013: a project's grants (``project_blobs``) lose their foreign key to ``projects``
on PostgreSQL (which checked it with a query per granted blob inside every commit) and keep it
on SQLite; the rows an existing store granted stay, and a downgrade puts the key back (on
PostgreSQL after deleting the grants of projects that are gone)."""

from __future__ import annotations

import pathlib

import pytest
from alembic import command
from sqlalchemy import insert, inspect, select

from cairn.catalog import Catalog
from cairn.catalog import _schema as s
from cairn.catalog._migrate import _alembic_config, upgrade
from cairn.errors import ConflictError
from tests._infra import Postgres

_DIGESTS = [f"sha256:{i:064x}" for i in range(3)]


def _foreign_keys(catalog: Catalog) -> list[object]:
    with catalog.engine.connect() as conn:
        return list(inspect(conn).get_foreign_keys("project_blobs"))


def _grants(catalog: Catalog) -> list[tuple[int, str]]:
    pb = s.project_blobs.c
    q = select(pb.project_id, pb.digest).order_by(pb.digest)
    return catalog.read(lambda tx: [(int(r[0]), str(r[1])) for r in tx.conn.execute(q)])


def _downgrade(catalog: Catalog) -> None:
    with catalog.engine.connect() as conn:
        command.downgrade(_alembic_config(conn), "0012_upload_parts")  # type: ignore[arg-type]
        conn.commit()


def _orphan(catalog: Catalog) -> None:
    """A grant of a project that is not there (deleted by hand)."""
    catalog.write(
        lambda tx: tx.conn.execute(insert(s.project_blobs).values(project_id=424242, digest="x"))
    )


def _check_upgrade(catalog: Catalog, keyed: bool) -> int:
    def grant(tx):  # type: ignore[no-untyped-def]
        pid = tx.projects.id_of("me", "p", create=True)
        tx.grants.add(pid, _DIGESTS[:2])
        return pid

    pid = catalog.write(grant)
    _downgrade(catalog)
    assert _foreign_keys(catalog) != []  # the old schema's key, back with the downgrade
    upgrade(catalog)
    assert (_foreign_keys(catalog) != []) == keyed
    assert _grants(catalog) == [(pid, d) for d in _DIGESTS[:2]]  # kept
    catalog.write(lambda tx: tx.grants.add(pid, _DIGESTS))  # and granted as before
    assert _grants(catalog) == [(pid, d) for d in _DIGESTS]
    return int(pid)


def test_grants_keep_their_foreign_key_on_sqlite(tmp_path: pathlib.Path) -> None:
    # SQLite's check is an index probe: the key stays, and refuses a grant of a project that is
    # not there (one deleted by hand, whose id SQLite gives the next project made).
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    _check_upgrade(catalog, keyed=True)
    with pytest.raises(ConflictError):
        _orphan(catalog)
    catalog.dispose()


def test_grants_lose_their_foreign_key_on_postgres(postgres: Postgres) -> None:
    url = postgres.create_database("grants_migration")
    catalog = Catalog(url.replace("postgresql://", "postgresql+psycopg://"))
    pid = _check_upgrade(catalog, keyed=False)
    _orphan(catalog)  # no key: taken; a downgrade deletes it before putting the key back
    _downgrade(catalog)
    assert _foreign_keys(catalog) != []
    assert _grants(catalog) == [(pid, d) for d in _DIGESTS]
    catalog.dispose()
