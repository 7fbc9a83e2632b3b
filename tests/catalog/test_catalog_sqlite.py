from __future__ import annotations

import pathlib
import shutil

import pytest
from sqlalchemy import inspect

from cairn.catalog import HEAD_REVISION, Catalog, script_head
from cairn.catalog._schema import PARTIAL_INDEXES, metadata
from cairn.errors import UsageError
from cairn.testing import CatalogTests


class TestSqliteCatalog(CatalogTests):
    @pytest.fixture
    def catalog(self, tmp_path: pathlib.Path, store_template: pathlib.Path) -> Catalog:
        # A copy of a catalog migrated once (the tests below run the migrations on a new one).
        shutil.copy(store_template / "catalog.sqlite", tmp_path / "catalog.sqlite")
        return Catalog(f"sqlite:///{tmp_path}/catalog.sqlite")


def test_head_revision_constant_matches_migrations() -> None:
    assert script_head() == HEAD_REVISION


def test_migrations_match_the_schema(tmp_path: pathlib.Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    catalog = Catalog(f"sqlite:///{tmp_path}/c.sqlite")
    with catalog.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
        indexes = {ix["name"] for ix in inspect(conn).get_indexes("versions")}
    # The partial index lives only in the migration (see _schema.py); everything else matches.
    assert [d for d in diff if not (d[0] == "remove_index" and d[1].name in PARTIAL_INDEXES)] == []
    assert set(PARTIAL_INDEXES) <= indexes


def test_a_server_catalog_is_not_migrated_silently(tmp_path: pathlib.Path) -> None:
    with pytest.raises(UsageError, match="cairn server migrate"):
        Catalog(f"sqlite:///{tmp_path}/new.sqlite", create=False)


def test_newer_schema_is_refused(tmp_path: pathlib.Path) -> None:
    from sqlalchemy import text

    catalog = Catalog(f"sqlite:///{tmp_path}/c.sqlite")
    with catalog.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    with pytest.raises(UsageError, match="newer cairn"):
        Catalog(f"sqlite:///{tmp_path}/c.sqlite")
