"""Migration 0004 indexes the metadata of versions committed before it, on SQLite and
PostgreSQL; a downgrade drops the index again."""

from __future__ import annotations

import pathlib

from alembic import command

from cairn.catalog import Catalog
from cairn.catalog._migrate import _alembic_config, upgrade
from cairn.core import ManifestEntry, digest_bytes
from cairn.service import CommitRequest, LocalService, SearchRequest
from cairn.storage import LocalBlobStore
from tests._infra import Postgres


def _fill_then_downgrade(catalog: Catalog, blobs: str) -> LocalService:
    svc = LocalService(catalog, LocalBlobStore(blobs), location=blobs, entity="me")
    data = b"x"
    svc.store_blobs([(digest_bytes(data), data)])
    for i in range(3):
        entry = ManifestEntry(f"f{i}", digest_bytes(data), 1)
        svc.commit(
            CommitRequest(
                entity="me",
                project="p",
                name="ds",
                type="dataset",
                changes=[(entry.path, entry)],
                metadata={"acc": i / 2, "opt": {"name": f"o{i}"}},
            )
        )
    with catalog.engine.connect() as conn:
        command.downgrade(_alembic_config(conn), "0003_blob_storage")  # type: ignore[arg-type]
        conn.commit()
    return svc


def _found(svc: LocalService, query: str) -> list[str]:
    return [v.version for v in svc.search(SearchRequest(query=query)).versions]


def _check(catalog: Catalog, svc: LocalService) -> None:
    upgrade(catalog)
    assert _found(svc, "acc>=0.5") == ["v2", "v1"]
    assert _found(svc, "opt.name:o0") == ["v0"]


def test_existing_versions_are_indexed_on_sqlite(tmp_path: pathlib.Path) -> None:
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    svc = _fill_then_downgrade(catalog, str(tmp_path / "blobs"))
    _check(catalog, svc)
    svc.close()


def test_existing_versions_are_indexed_on_postgres(
    postgres: Postgres, tmp_path: pathlib.Path
) -> None:
    url = postgres.create_database("search_migration").replace(
        "postgresql://", "postgresql+psycopg://"
    )
    catalog = Catalog(url)
    svc = _fill_then_downgrade(catalog, str(tmp_path / "blobs"))
    _check(catalog, svc)
    svc.close()


def _versions_indexes(catalog: Catalog) -> set[str]:
    from sqlalchemy import inspect

    with catalog.engine.connect() as conn:
        return {ix["name"] for ix in inspect(conn).get_indexes("versions")}


def _down_and_up_again(catalog: Catalog, blobs: str) -> None:
    """Migration 0010: the versions-by-collection index goes with a downgrade to 0009 and comes
    back with the upgrade, and search reads a narrow scope's pages the same with and without it
    (without: at head with only that index dropped, since later migrations add columns that
    the code of head reads)."""
    from sqlalchemy import text

    svc = _fill_then_downgrade(catalog, blobs)  # (at 0003 now: upgraded to head, then 0010 off)
    upgrade(catalog)
    assert "ix_versions_collection_created" in _versions_indexes(catalog)
    with catalog.engine.connect() as conn:
        command.downgrade(_alembic_config(conn), "0009_run_history")  # type: ignore[arg-type]
        conn.commit()
    assert "ix_versions_collection_created" not in _versions_indexes(catalog)
    upgrade(catalog)
    assert "ix_versions_collection_created" in _versions_indexes(catalog)
    after = _found(svc, "acc>=0")
    with catalog.engine.connect() as conn:
        conn.execute(text("DROP INDEX ix_versions_collection_created"))
        conn.commit()
    assert "ix_versions_collection_created" not in _versions_indexes(catalog)
    assert _found(svc, "acc>=0") == after == ["v2", "v1", "v0"]
    svc.close()


def test_versions_by_collection_index_comes_and_goes_on_sqlite(tmp_path: pathlib.Path) -> None:
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    _down_and_up_again(catalog, str(tmp_path / "blobs"))


def test_versions_by_collection_index_comes_and_goes_on_postgres(
    postgres: Postgres, tmp_path: pathlib.Path
) -> None:
    url = postgres.create_database("collection_index_migration").replace(
        "postgresql://", "postgresql+psycopg://"
    )
    _down_and_up_again(Catalog(url), str(tmp_path / "blobs"))
