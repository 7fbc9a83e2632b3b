"""The catalog: metadata in SQL (SQLite or PostgreSQL) through SQLAlchemy Core, with migrations."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cairn._lazy import lazy_exports

# Loaded on first use (cairn._lazy): the read-only listing with sqlite3 (``quick_collections``)
# must not load SQLAlchemy.
if TYPE_CHECKING:
    from cairn.catalog._access import ApiKeys, KeyRow, UploadRow, Uploads, readable_blobs
    from cairn.catalog._blobs import CatalogBlobStore
    from cairn.catalog._catalog import OUTAGE_SECONDS, Catalog
    from cairn.catalog._migrate import script_head, upgrade
    from cairn.catalog._quick import quick_collections
    from cairn.catalog._schema import HEAD_REVISION
    from cairn.catalog._tx import Tx

__all__ = [
    "HEAD_REVISION",
    "OUTAGE_SECONDS",
    "ApiKeys",
    "Catalog",
    "CatalogBlobStore",
    "KeyRow",
    "Tx",
    "UploadRow",
    "Uploads",
    "quick_collections",
    "readable_blobs",
    "script_head",
    "upgrade",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "._access": ["ApiKeys", "KeyRow", "UploadRow", "Uploads", "readable_blobs"],
        "._blobs": ["CatalogBlobStore"],
        "._catalog": ["OUTAGE_SECONDS", "Catalog"],
        "._migrate": ["script_head", "upgrade"],
        "._quick": ["quick_collections"],
        "._schema": ["HEAD_REVISION"],
        "._tx": ["Tx"],
    },
)
