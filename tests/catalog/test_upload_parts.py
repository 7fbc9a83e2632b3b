"""Migration 0012: a streamed upload's part records (``upload_parts``) in the catalog. An
existing catalog is upgraded with its uploads under way kept. (What the part records do is in
the conformance suite, ``cairn.testing.CatalogTests``, on SQLite and PostgreSQL.)"""

from __future__ import annotations

import pathlib

from alembic import command

from cairn.catalog import Catalog, PartRecord, UploadRow, Uploads
from cairn.catalog._migrate import _alembic_config, current_revision, upgrade
from cairn.catalog._schema import HEAD_REVISION


def test_an_existing_catalog_gains_part_records(tmp_path: pathlib.Path) -> None:
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    with catalog.engine.connect() as conn:
        command.downgrade(_alembic_config(conn), "0011_staged_order")  # type: ignore[arg-type]
        conn.commit()
    uploads = Uploads(catalog)
    # An upload under way when the server is upgraded: begun by the older server (its ref).
    up = UploadRow("u1", "key:k", "sha256:" + "ab" * 32, 30 << 20, 8 << 20, "k\nid\nstream-crc32")
    uploads.insert(up)
    upgrade(catalog)
    with catalog.engine.connect() as conn:
        assert current_revision(conn) == HEAD_REVISION
    assert uploads.get("u1") == up and uploads.parts("u1") == {}
    uploads.record_part("u1", 1, b"p" * 32, b"crc1", '"e1"')
    assert uploads.parts("u1") == {1: PartRecord(b"p" * 32, b"crc1", '"e1"')}
    catalog.dispose()
