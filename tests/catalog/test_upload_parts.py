"""Migration 0012: a streamed upload's part records (``upload_parts``) in the catalog. An
existing catalog is upgraded with its uploads under way kept; a part's record is replaced by a
later attempt's and goes with its upload."""

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
    up = UploadRow("u1", "key:k", "sha256:" + "ab" * 32, 30 << 20, 8 << 20, "k\nid\nstream-parts")
    uploads.insert(up)  # an upload under way when the server is upgraded
    upgrade(catalog)
    with catalog.engine.connect() as conn:
        assert current_revision(conn) == HEAD_REVISION
    assert uploads.get("u1") == up and uploads.parts("u1") == {}
    uploads.record_part("u1", 1, b"p" * 32, b"crc1", '"e1"')
    uploads.record_part("u1", 2, b"q" * 32, b"crc2", '"e2"')
    uploads.record_part("u1", 1, b"r" * 32, b"crc3", '"e3"')  # sent again: the newer record
    assert uploads.parts("u1") == {
        1: PartRecord(b"r" * 32, b"crc3", '"e3"'),
        2: PartRecord(b"q" * 32, b"crc2", '"e2"'),
    }
    uploads.delete("u1")
    assert uploads.get("u1") is None and uploads.parts("u1") == {}
    catalog.dispose()


def test_parts_recorded_after_their_upload_went_are_dropped(tmp_path: pathlib.Path) -> None:
    """A part thread may record its part after its upload was swept or completed by another
    request (or an older server forgot the upload, not its parts): nothing deletes those
    records with their upload; the sweep drops them (review of 836eccd)."""
    catalog = Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    upgrade(catalog)
    uploads = Uploads(catalog)
    for name in ("gone", "kept"):
        ref = "k\nid\nstream-parts"
        uploads.insert(UploadRow(name, "key:k", "sha256:" + "ab" * 32, 30 << 20, 8 << 20, ref))
    uploads.delete("gone")
    uploads.record_part("gone", 1, b"p" * 32, b"crc1", '"e1"')  # the late part thread
    uploads.record_part("kept", 1, b"q" * 32, b"crc2", '"e2"')
    assert uploads.parts("gone") != {}
    assert uploads.drop_orphan_parts() == 1
    assert uploads.parts("gone") == {} and uploads.parts("kept") != {}
    catalog.dispose()
