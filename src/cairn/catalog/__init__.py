"""The catalog: metadata in SQL (SQLite or PostgreSQL) through SQLAlchemy Core, with migrations."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cairn._lazy import lazy_exports

# Loaded on first use (cairn._lazy): the read-only listing with sqlite3 (``quick_collections``)
# and the embedded store's catalog until a transaction needs more than sqlite3 (a re-log does
# not: ``EmbeddedCatalog``) must not load SQLAlchemy.
if TYPE_CHECKING:
    from cairn.catalog._access import ApiKeys, BlobReader, KeyRow, readable_blobs
    from cairn.catalog._blobs import CatalogBlobStore
    from cairn.catalog._catalog import OUTAGE_SECONDS, Catalog
    from cairn.catalog._embedded import EmbeddedCatalog, open_embedded_catalog
    from cairn.catalog._migrate import script_head, upgrade
    from cairn.catalog._quick import quick_collections
    from cairn.catalog._schema import HEAD_REVISION
    from cairn.catalog._tx import Tx
    from cairn.catalog._uploads import PartRecord, UploadRow, Uploads

__all__ = [
    "HEAD_REVISION",
    "OUTAGE_SECONDS",
    "ApiKeys",
    "BlobReader",
    "Catalog",
    "CatalogBlobStore",
    "EmbeddedCatalog",
    "KeyRow",
    "PartRecord",
    "Tx",
    "UploadRow",
    "Uploads",
    "open_embedded_catalog",
    "quick_collections",
    "readable_blobs",
    "script_head",
    "upgrade",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "._access": ["ApiKeys", "BlobReader", "KeyRow", "readable_blobs"],
        "._blobs": ["CatalogBlobStore"],
        "._catalog": ["OUTAGE_SECONDS", "Catalog"],
        "._embedded": ["EmbeddedCatalog", "open_embedded_catalog"],
        "._migrate": ["script_head", "upgrade"],
        "._quick": ["quick_collections"],
        "._schema": ["HEAD_REVISION"],
        "._tx": ["Tx"],
        "._uploads": ["PartRecord", "UploadRow", "Uploads"],
    },
)
