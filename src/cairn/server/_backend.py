"""What a server runs on: its catalog, blob store and service, opened from two URLs."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

from cairn._extras import require
from cairn.catalog import Catalog, CatalogBlobStore, upgrade
from cairn.errors import UsageError
from cairn.server._auth import KeyRing
from cairn.server._transfers import PART_SIZE, UPLOAD_MAX_AGE, ObjectStore, Transfers
from cairn.service import DEFAULT_GRACE_SECONDS, LocalService, maintenance_lock_for_catalog
from cairn.storage import BlobStore, LocalBlobStore

MAX_JSON_BYTES = 256 << 20  # a commit of a million entries is about 130 MB of JSON
MAX_BATCH_BYTES = 64 << 20  # one request of small blobs, or one part
GC_INTERVAL = 3600.0  # the collector of expired versions looks once an hour
SWEEP_INTERVAL = 3600.0  # how often each server process sweeps killed writers' leftovers


@dataclass(frozen=True, slots=True)
class ServerConfig:
    db: str
    store: str
    admin_key: str | None = None
    max_json_bytes: int = MAX_JSON_BYTES
    max_batch_bytes: int = MAX_BATCH_BYTES
    part_size: int = PART_SIZE
    upload_max_age: float = UPLOAD_MAX_AGE
    # The collector of expired (TTL) versions (``_collector.py``): seconds between passes (0:
    # off) and the grace period of the garbage collection it runs.
    gc_interval: float = GC_INTERVAL
    gc_grace: float = DEFAULT_GRACE_SECONDS
    sweep_interval: float = SWEEP_INTERVAL

    @classmethod
    def from_env(cls, db: str | None = None, store: str | None = None) -> ServerConfig:
        db = db or os.environ.get("CAIRN_SERVER_DB")
        store = store or os.environ.get("CAIRN_SERVER_STORE")
        if not db or not store:
            raise UsageError(
                "cairn server needs --db (or CAIRN_SERVER_DB) and --store (or CAIRN_SERVER_STORE)"
            )
        part = os.environ.get("CAIRN_SERVER_PART_SIZE")
        part_size = int(part) if part and part.isdigit() else PART_SIZE
        if not 5 << 20 <= part_size <= MAX_BATCH_BYTES:
            raise UsageError("CAIRN_SERVER_PART_SIZE must be between 5 MiB and 64 MiB (in bytes)")
        age = os.environ.get("CAIRN_SERVER_UPLOAD_MAX_AGE")
        try:
            upload_max_age = float(age) if age else UPLOAD_MAX_AGE
        except ValueError:
            upload_max_age = -1.0
        if not 0 <= upload_max_age < 1e9:
            raise UsageError("CAIRN_SERVER_UPLOAD_MAX_AGE must be a number of seconds (>= 0)")
        return cls(
            db=db,
            store=store,
            admin_key=os.environ.get("CAIRN_ADMIN_KEY") or None,
            part_size=part_size,
            upload_max_age=upload_max_age,
            gc_interval=_seconds("CAIRN_SERVER_GC_INTERVAL", GC_INTERVAL),
            gc_grace=_seconds("CAIRN_SERVER_GC_GRACE", DEFAULT_GRACE_SECONDS),
            sweep_interval=_seconds("CAIRN_SERVER_SWEEP_INTERVAL", SWEEP_INTERVAL),
        )


def _seconds(var: str, default: float) -> float:
    text = os.environ.get(var)
    try:
        value = float(text) if text else default
    except ValueError:
        value = -1.0
    if not 0 <= value < 1e9:
        raise UsageError(f"{var} must be a number of seconds (>= 0)")
    return value


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
        if config.store.startswith("s3://"):
            from cairn.storage import S3BlobStore

            s3 = S3BlobStore.from_url(config.store)
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
            # Shared with every server process and `cairn gc --db/--store`: see _maintenance_lock.py.
            maintenance_lock=maintenance_lock_for_catalog(catalog),
        )
        return cls(
            catalog=catalog,
            blobs=blobs,
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
