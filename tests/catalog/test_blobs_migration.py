"""Migration 0014: an S3 store's small blobs (rows of ``blobs``) go out of line on PostgreSQL
(its TOAST table) instead of whole in their heap page; the rows an existing store wrote stay
where they are and read the same, and a downgrade keeps them inline again."""

from __future__ import annotations

import os
import pathlib

from alembic import command
from sqlalchemy import select, text

from cairn.catalog import Catalog
from cairn.catalog import _schema as s
from cairn.catalog._blobs import insert_index
from cairn.catalog._migrate import _alembic_config, upgrade
from cairn.core import digest_bytes
from tests._infra import Postgres


def _downgrade(catalog: Catalog) -> None:
    with catalog.engine.connect() as conn:
        command.downgrade(_alembic_config(conn), "0013_grants_without_fk")  # type: ignore[arg-type]
        conn.commit()


def _store(catalog: Catalog, data: bytes) -> str:
    digest = digest_bytes(data)
    catalog.write(lambda tx: insert_index(tx, [(digest, len(data), data)]))
    return digest


def _read(catalog: Catalog, digest: str) -> bytes:
    b = s.blobs.c
    q = select(b.data).where(b.digest == digest)
    return bytes(catalog.read(lambda tx: tx.conn.execute(q).scalar_one()))


def _out_of_line_chunks(catalog: Catalog) -> int:
    """Rows of the TOAST table of ``blobs`` (the 2 KiB chunks of bytes kept out of line)."""

    def fn(tx):  # type: ignore[no-untyped-def]
        toast = tx.conn.execute(
            text("SELECT reltoastrelid::regclass::text FROM pg_class WHERE relname = 'blobs'")
        ).scalar_one()
        return int(tx.conn.execute(text(f"SELECT count(*) FROM {toast}")).scalar_one())

    return int(catalog.read(fn))


def test_small_blobs_go_out_of_line_on_postgres(postgres: Postgres) -> None:
    url = postgres.create_database("blobs_migration")
    catalog = Catalog(url.replace("postgresql://", "postgresql+psycopg://"))
    _downgrade(catalog)
    before = _store(catalog, os.urandom(4096))  # an existing store's row: inline
    assert _out_of_line_chunks(catalog) == 0
    upgrade(catalog)
    after_data = os.urandom(4096)
    after = _store(catalog, after_data)
    chunks = _out_of_line_chunks(catalog)
    assert chunks >= 2  # the new row's bytes: chunks of about 2 KiB
    assert len(_read(catalog, before)) == 4096 and _read(catalog, after) == after_data
    _downgrade(catalog)  # inline again for rows written from now on; the others read the same
    again = _store(catalog, os.urandom(4096))
    assert _out_of_line_chunks(catalog) == chunks and len(_read(catalog, again)) == 4096
    assert _read(catalog, after) == after_data
    catalog.dispose()


def test_nothing_changes_on_sqlite(tmp_path: pathlib.Path) -> None:
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    _downgrade(catalog)
    upgrade(catalog)
    data = os.urandom(4096)
    assert _read(catalog, _store(catalog, data)) == data
    catalog.dispose()
