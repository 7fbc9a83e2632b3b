"""Migration 0015: a blob's index row may name the object store key of its blob
(``object_key``; NULL: the digest's key). An existing store's rows read as before; a downgrade
is refused while a row names a key of its own (it would read as missing)."""

from __future__ import annotations

import os
import pathlib

import pytest
from alembic import command
from sqlalchemy import delete

from cairn.catalog import Catalog, CatalogBlobStore
from cairn.catalog import _schema as s
from cairn.catalog._blobs import insert_index
from cairn.catalog._migrate import _alembic_config, upgrade
from cairn.core import digest_bytes
from cairn.storage import MemoryBlobStore
from tests._infra import Postgres


def _downgrade(catalog: Catalog) -> None:
    with catalog.engine.connect() as conn:
        command.downgrade(_alembic_config(conn), "0014_blobs_out_of_line")  # type: ignore[arg-type]
        conn.commit()


def _check(catalog: Catalog) -> None:
    _downgrade(catalog)
    large = MemoryBlobStore()
    data = os.urandom(200_000)
    d = digest_bytes(data)
    large.put(d, data)
    catalog.write(lambda tx: insert_index(tx, [(d, len(data), None)]))  # an existing store's row
    upgrade(catalog)
    index = CatalogBlobStore(catalog, large)
    assert index._row(d) == (len(data), None, None) and index.get(d) == data  # as before
    other = digest_bytes(b"other")
    assert index.record_keyed(other, 5, "streamed/" + "a" * 32) == "streamed/" + "a" * 32
    assert index.record_keyed(other, 5, "streamed/" + "b" * 32) == "streamed/" + "a" * 32
    assert index._row(other) == (5, None, "streamed/" + "a" * 32)
    with pytest.raises(RuntimeError, match="keys of their own"):
        _downgrade(catalog)
    catalog.write(lambda tx: tx.conn.execute(delete(s.blobs).where(s.blobs.c.digest == other)))
    _downgrade(catalog)
    upgrade(catalog)
    assert index.get(d) == data
    catalog.dispose()


def test_an_existing_sqlite_store_reads_the_same(tmp_path: pathlib.Path) -> None:
    _check(Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}"))


def test_an_existing_postgres_store_reads_the_same(postgres: Postgres) -> None:
    url = postgres.create_database("blob_keys_migration")
    _check(Catalog(url.replace("postgresql://", "postgresql+psycopg://")))
