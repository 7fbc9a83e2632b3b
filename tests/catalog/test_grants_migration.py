"""Migration 0013: a project's grants (``project_blobs``) lose their foreign key to ``projects``
(PostgreSQL checked it with a query per granted blob inside every commit); the rows an existing
store granted stay, on SQLite and PostgreSQL, and a downgrade puts the key back."""

from __future__ import annotations

import pathlib

from alembic import command
from sqlalchemy import inspect, select

from cairn.catalog import Catalog
from cairn.catalog import _schema as s
from cairn.catalog._migrate import _alembic_config, upgrade
from tests._infra import Postgres

_DIGESTS = [f"sha256:{i:064x}" for i in range(3)]


def _foreign_keys(catalog: Catalog) -> list[object]:
    with catalog.engine.connect() as conn:
        return list(inspect(conn).get_foreign_keys("project_blobs"))


def _grants(catalog: Catalog) -> list[tuple[int, str]]:
    pb = s.project_blobs.c
    q = select(pb.project_id, pb.digest).order_by(pb.digest)
    return catalog.read(lambda tx: [(int(r[0]), str(r[1])) for r in tx.conn.execute(q)])


def _check_upgrade(catalog: Catalog) -> None:
    def grant(tx):  # type: ignore[no-untyped-def]
        pid = tx.projects.id_of("me", "p", create=True)
        tx.grants.add(pid, _DIGESTS[:2])
        return pid

    pid = catalog.write(grant)
    with catalog.engine.connect() as conn:
        command.downgrade(_alembic_config(conn), "0012_upload_parts")  # type: ignore[arg-type]
        conn.commit()
    assert _foreign_keys(catalog) != []  # the old schema's key, back with the downgrade
    upgrade(catalog)
    assert _foreign_keys(catalog) == []
    assert _grants(catalog) == [(pid, d) for d in _DIGESTS[:2]]  # kept
    catalog.write(lambda tx: tx.grants.add(pid, _DIGESTS))  # and granted as before
    assert _grants(catalog) == [(pid, d) for d in _DIGESTS]
    catalog.dispose()


def test_grants_lose_their_foreign_key_on_sqlite(tmp_path: pathlib.Path) -> None:
    _check_upgrade(Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}"))


def test_grants_lose_their_foreign_key_on_postgres(postgres: Postgres) -> None:
    url = postgres.create_database("grants_migration")
    _check_upgrade(Catalog(url.replace("postgresql://", "postgresql+psycopg://")))
