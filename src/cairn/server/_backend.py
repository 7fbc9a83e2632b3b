"""What a server runs on: its catalog, blob store and service, opened from two URLs."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

from cairn._extras import require
from cairn.catalog import Catalog, CatalogBlobStore, upgrade
from cairn.server._auth import KeyRing
from cairn.server._config import ServerConfig
from cairn.server._transfers import ObjectStore, Transfers
from cairn.service import LocalService, maintenance_lock_for_catalog
from cairn.storage import BlobStore, LocalBlobStore


def catalog_url(db: str) -> str:
    """Accept ``postgresql://`` (psycopg 3 is the driver) and plain SQLite paths too."""
    if db.startswith(("postgres://", "postgresql://")):
        require("a PostgreSQL catalog", "server", "psycopg")
        return "postgresql+psycopg://" + db.split("://", 1)[1]
    if "://" not in db:
        return "sqlite:///" + os.path.abspath(db)
    return db


def migrate(db: str) -> None:
    """Bring the catalog's schema to this version's (``cairn server migrate``)."""
    catalog = Catalog(catalog_url(db), create=True)
    upgrade(catalog)
    catalog.dispose()


@dataclass
class Backend:
    catalog: Catalog
    blobs: BlobStore
    # The catalog's index over an s3:// store (``blobs`` is then this one), which stores a batch
    # of small blobs and records them in the catalog's transaction; None: a local store.
    catalog_blobs: CatalogBlobStore | None
    service: LocalService
    keys: KeyRing
    transfers: Transfers
    config: ServerConfig

    @classmethod
    def open(cls, config: ServerConfig) -> Backend:
        catalog = Catalog(catalog_url(config.db), create=False)
        # The one place that knows which kind of store a URL opens (the rest asks the store).
        blobs: BlobStore
        object_store = None
        index: CatalogBlobStore | None = None
        if config.store.startswith("s3://"):
            from cairn.storage import S3BlobStore

            s3 = S3BlobStore.from_url(
                config.store, endpoint=config.s3_endpoint, region=config.s3_region
            )
            index = CatalogBlobStore(catalog, s3)
            object_store = ObjectStore(s3, index)
            blobs = index
            spool = os.path.join(tempfile.gettempdir(), "cairn-uploads")
        else:
            local = LocalBlobStore(config.store.removeprefix("file://"))
            blobs = local
            spool = os.path.join(local.root, "tmp", "uploads")  # same file system: moved in
        service = LocalService(
            catalog,
            blobs,
            location=config.store,
            entity="server",
            track_blob_owners=True,
            # An S3 store's blobs are rows of the catalog's index: a commit checks they are
            # there in the statement that grants them (``Store.presence_in_grant``).
            indexed_by_catalog=index is not None,
            # Shared with every server process and `cairn gc --db/--store`: see _maintenance_lock.py.
            maintenance_lock=maintenance_lock_for_catalog(catalog),
        )
        return cls(
            catalog=catalog,
            blobs=blobs,
            catalog_blobs=index,
            service=service,
            keys=KeyRing(catalog, config.admin_key),
            transfers=Transfers(
                catalog,
                blobs,
                spool,
                object_store=object_store,
                part_size=config.part_size,
                upload_max_age=config.upload_max_age,
            ),
            config=config,
        )

    def close(self) -> None:
        self.service.close()
