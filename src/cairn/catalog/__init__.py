"""The catalog: metadata in SQL (SQLite or PostgreSQL) through SQLAlchemy Core, with migrations."""

from cairn.catalog._access import ApiKeys, KeyRow, UploadRow, Uploads, readable_blobs
from cairn.catalog._blobs import CatalogBlobStore
from cairn.catalog._catalog import OUTAGE_SECONDS, Catalog, Tx
from cairn.catalog._migrate import script_head, upgrade
from cairn.catalog._schema import HEAD_REVISION

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
    "readable_blobs",
    "script_head",
    "upgrade",
]
