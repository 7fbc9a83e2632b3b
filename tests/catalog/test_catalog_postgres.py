"""The catalog conformance suite on a real PostgreSQL server, and the migrations there."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import inspect

from cairn.catalog import Catalog
from cairn.catalog._schema import PARTIAL_INDEXES, metadata
from cairn.errors import UsageError
from cairn.testing import CatalogTests
from tests._infra import Postgres, reset_database


@pytest.fixture(scope="module")
def pg_catalog_url(postgres: Postgres) -> str:
    url = postgres.create_database("catalog_tests").replace(
        "postgresql://", "postgresql+psycopg://"
    )
    Catalog(url).dispose()  # migrates
    return url


class TestPostgresCatalog(CatalogTests):
    @pytest.fixture
    def catalog(self, pg_catalog_url: str) -> Iterator[Catalog]:
        reset_database(pg_catalog_url.replace("+psycopg", ""), keep=("alembic_version",))
        catalog = Catalog(pg_catalog_url, create=False)
        yield catalog
        catalog.dispose()


def test_migrations_match_the_schema_on_postgres(pg_catalog_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    catalog = Catalog(pg_catalog_url, create=False)
    with catalog.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
        indexes = {ix["name"] for ix in inspect(conn).get_indexes("versions")}
    catalog.dispose()
    # The partial index lives only in the migration (see _schema.py); everything else matches.
    assert [d for d in diff if not (d[0] == "remove_index" and d[1].name in PARTIAL_INDEXES)] == []
    assert set(PARTIAL_INDEXES) <= indexes


def test_a_server_refuses_an_unmigrated_database(postgres: Postgres) -> None:
    url = postgres.create_database("unmigrated").replace("postgresql://", "postgresql+psycopg://")
    with pytest.raises(UsageError, match="cairn server migrate"):
        Catalog(url, create=False)
