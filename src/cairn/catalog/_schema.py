"""The catalog's tables (SQLAlchemy Core). Changes here need a migration in ``migrations/``."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

projects = Table(
    "projects",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("entity", String(128), nullable=False),
    Column("name", String(128), nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("entity", "name"),
)

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("run_id", String(128), nullable=False),
    Column("name", String(256), nullable=False),
    Column("group_name", String(256)),
    Column("job_type", String(256)),
    Column("config", Text, nullable=False, server_default="{}"),
    Column("state", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("finished_at", Float),
    # W&B's run summary (migration 0009): one JSON object in W&B's history encoding (NaN and
    # infinities as JSON's NaN/Infinity tokens), the last logged values and what was set.
    Column("summary", Text),
    UniqueConstraint("project_id", "run_id"),
)

# W&B's run history (migration 0009): one row per committed step of ``run.log``, a JSON object in
# W&B's history encoding with ``_step``, ``_timestamp`` and ``_runtime``.
run_history = Table(
    "run_history",
    metadata,
    Column("run_id", Integer, ForeignKey("runs.id"), primary_key=True),
    Column("step", BigInteger, primary_key=True),
    Column("row", Text, nullable=False),
)

collections = Table(
    "collections",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project_id", Integer, ForeignKey("projects.id"), nullable=False),
    Column("name", String(128), nullable=False),
    Column("type", String(128), nullable=False),
    Column("description", Text),
    # The next version number to hand out; bumped in the committing transaction, never reused.
    Column("next_index", Integer, nullable=False, server_default="0"),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("project_id", "name"),
)

versions = Table(
    "versions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("collection_id", Integer, ForeignKey("collections.id"), nullable=False),
    Column("idx", Integer),
    Column("state", String(16), nullable=False),
    Column("digest", String(80)),
    Column("size", BigInteger, nullable=False, server_default="0"),
    Column("file_count", BigInteger, nullable=False, server_default="0"),
    Column("metadata", Text, nullable=False, server_default="{}"),
    Column("description", Text),
    Column("created_by", Integer, ForeignKey("runs.id")),
    Column("distributed_id", String(256)),
    Column("base_version_id", String(32)),
    Column("pending_aliases", Text),  # JSON list: aliases upserts asked for, set at commit
    # Counts the stagings into a pending version (migration 0011): a finish commits the manifest
    # it built only if no staging came in meanwhile.
    Column("staged_generation", Integer, nullable=False, server_default="0"),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("committed_at", Float),
    # W&B's Artifact.ttl (migration 0006): seconds from the commit, and when that runs out.
    Column("ttl_seconds", Float),
    Column("expires_at", Float, index=True),
    # A registry link (migration 0007): this version's content is the source version's.
    Column("source_version_id", String(32), index=True),
    UniqueConstraint("collection_id", "idx"),
    Index("ix_versions_collection_digest", "collection_id", "digest"),
    # Also: a partial unique index, at most one PENDING version per (collection, distributed_id):
    # "uq_versions_pending_distributed", created by migration 0001. It is not declared here
    # because dialect options (postgresql_where) make SQLAlchemy import the PostgreSQL dialect
    # and asyncio at start-up, which every embedded-store process would pay for.
)

PARTIAL_INDEXES = ("uq_versions_pending_distributed",)
# PostgreSQL only (migration 0011): staged changes in code point order (the "C" collation), the
# order of manifests, whatever the database's collation; SQLite's primary key index has it.
POSTGRES_INDEXES = ("ix_staged_entries_path_c",)

aliases = Table(
    "aliases",
    metadata,
    Column("collection_id", Integer, ForeignKey("collections.id"), primary_key=True),
    Column("alias", String(128), primary_key=True),
    Column("version_id", String(32), ForeignKey("versions.id"), nullable=False, index=True),
)

tags = Table(
    "tags",
    metadata,
    Column("version_id", String(32), ForeignKey("versions.id"), primary_key=True),
    Column("tag", String(128), primary_key=True),
)

# Lineage: role is "input" (the run used the version), "output" (the run committed it) or
# "writer" (the run upserted entries into it).
version_runs = Table(
    "version_runs",
    metadata,
    Column("version_id", String(32), ForeignKey("versions.id"), primary_key=True),
    Column("run_id", Integer, ForeignKey("runs.id"), primary_key=True, index=True),
    Column("role", String(16), primary_key=True),
    Column("created_at", Float, nullable=False),
)

# Changes staged into PENDING distributed versions; the latest upsert of a path wins. A row with
# removed=1 takes the path out of the version's base (for distributed drafts).
staged_entries = Table(
    "staged_entries",
    metadata,
    Column("version_id", String(32), ForeignKey("versions.id"), primary_key=True),
    Column("path", Text, primary_key=True),
    Column("removed", Integer, nullable=False, server_default="0"),
    Column("digest", Text, nullable=False),
    Column("size", BigInteger),
    Column("ref", Text),
    Column("extra", Text),
    Column("run_id", Integer, ForeignKey("runs.id")),
    Column("staged_at", Float, nullable=False),
)

# The metadata of committed versions, one row per leaf (nested keys flattened to dotted paths, see
# ``cairn.core._search.index_rows``), so search answers ``key:value`` and ``key>n`` from an index
# on both SQLite and PostgreSQL instead of reading JSON. Written in the transaction that commits
# a version or changes its metadata (migration 0004).
version_metadata = Table(
    "version_metadata",
    metadata,
    Column("version_id", String(32), ForeignKey("versions.id"), primary_key=True),
    Column("key", String(256), primary_key=True),
    Column("text_value", String(256), nullable=False),
    Column("num_value", Float),
    # Covering (the version id is in each index): a condition's ids are read from the index.
    Index("ix_version_metadata_key_num", "key", "num_value", "version_id"),
    Index("ix_version_metadata_key_text", "key", "text_value", "version_id"),
    Index("ix_version_metadata_text", "text_value", "version_id"),
)

# The words of committed versions' descriptions (``cairn.core._search.text_words``: lower-cased,
# one row per distinct word), so a search word is a prefix range of this primary key, read the
# same way on SQLite and PostgreSQL (``C`` collation there: code point order, like SQLite's
# BINARY) instead of a ``LIKE`` scan of every description. Written in the transaction that
# commits a version or changes its description (migration 0008; existing versions indexed by it).
_WORD_TYPE = String(64).with_variant(String(64, collation="C"), "postgresql")
version_words = Table(
    "version_words",
    metadata,
    Column("word", _WORD_TYPE, primary_key=True),
    Column("version_id", String(32), ForeignKey("versions.id"), primary_key=True),
    Index("ix_version_words_version_id", "version_id", "word"),
)

# Look-ups by value for search (migration 0004): which versions carry a tag, an alias.
Index("ix_tags_tag", tags.c.tag, tags.c.version_id)
Index("ix_aliases_alias", aliases.c.alias, aliases.c.version_id)
Index("ix_versions_created_at", versions.c.created_at)
# A versions table and a narrow scope's page in creation order, a collection at a time
# (migration 0010).
Index("ix_versions_collection_created", versions.c.collection_id, versions.c.created_at)

# -- the server's tables (migration 0002) ------------------------------------------------------

# API keys: a public id, the SHA-256 of the secret part (keys are random 256-bit secrets, so a fast
# hash is enough), the user they act as, and when they were revoked.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_name", String(128), nullable=False, index=True),
    Column("secret_hash", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float),
)

# What a key may do: role read/write/admin on one project (entity, project), on every project of
# an entity (project "*"), or on everything (entity "*" and project "*": a server admin).
api_key_grants = Table(
    "api_key_grants",
    metadata,
    Column("key_id", String(32), ForeignKey("api_keys.id"), primary_key=True),
    Column("entity", String(128), primary_key=True),
    Column("project", String(128), primary_key=True),
    Column("role", String(16), nullable=False),
)

# The blob index of a server whose large blobs live in an object store: one row per stored blob;
# blobs under the small limit keep their bytes here (``data``), larger ones are in the object store
# (``data`` NULL). Presence checks are one query instead of a HEAD request per blob.
blobs = Table(
    "blobs",
    metadata,
    Column("digest", String(80), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("stored_at", Float, nullable=False),
    Column("data", LargeBinary),
    # A large blob's object store key, relative to the store's prefix, when it is not the
    # digest's (migration 0015: a blob streamed to S3 before its digest was known, at
    # ``streamed/<upload id>``); NULL: the digest's key. Read by ``CatalogBlobStore`` for every
    # read of the blob.
    Column("object_key", Text),
)
Index(
    "ix_blobs_object_key",
    blobs.c.object_key,
    postgresql_where=blobs.c.object_key.is_not(None),
    sqlite_where=blobs.c.object_key.is_not(None),
)

# Blobs a key uploaded and the server verified: the key may use them in a commit (and sees them
# as present) before any project refers to them. ``user_name`` holds ``key:<key id>`` (the column
# kept its first name; rows of older servers, by user name, simply stop counting).
blob_uploads = Table(
    "blob_uploads",
    metadata,
    Column("user_name", String(128), primary_key=True),
    Column("digest", String(80), primary_key=True),
    Column("created_at", Float, nullable=False),
)

# Blobs a project's versions (files and manifest pages) refer to: a key reads a blob only if a
# project it may read holds it, or the key itself uploaded it. ``project_id`` has a foreign key
# on SQLite only (migration 0013): a commit inserts a row per blob its version names, and
# PostgreSQL's check of the key cost a query per row (SQLite's is an index probe); the id comes
# from the commit's own transaction, and projects are never deleted.
project_blobs = Table(
    "project_blobs",
    metadata,
    Column("project_id", Integer, primary_key=True, autoincrement=False),
    Column("digest", String(80), primary_key=True, index=True),
    ForeignKeyConstraint(["project_id"], ["projects.id"]).ddl_if(dialect="sqlite"),
)
# Foreign keys on SQLite only (migration 0013; see ``project_blobs``).
SQLITE_KEYS = ("fk_project_blobs_project_id_projects",)

# Uploads in parts that are under way (so another server, or the same after a restart, can take
# them up): who, which blob, the part size, and the backend's handle.
uploads = Table(
    "uploads",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_name", String(128), nullable=False),
    Column("digest", String(80), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("part_size", BigInteger, nullable=False),
    Column("backend_ref", Text, nullable=False, server_default=""),
    Column("created_at", Float, nullable=False),
    # When a stream last sent a part (migration 0015; NULL: none is on it): a live stream's
    # upload is never taken up by another.
    Column("active_at", Float),
)

# The parts of a streamed upload that S3 acknowledged (migration 0012): the part's ETag, its
# CRC32 and the SHA-256 of the blob's bytes up to its end, so an attempt that sends the same
# bytes again reuses the part. Deleted with the upload's row.
upload_parts = Table(
    "upload_parts",
    metadata,
    Column("upload_id", String(32), primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("prefix_sha256", LargeBinary, nullable=False),
    Column("crc32", LargeBinary, nullable=False),
    Column("etag", String(128), nullable=False),
)

# -- W&B parity (migration 0005) ----------------------------------------------------------------

# Tags on a collection (W&B's ArtifactCollection.tags), validated as version tags are.
collection_tags = Table(
    "collection_tags",
    metadata,
    Column("collection_id", Integer, ForeignKey("collections.id"), primary_key=True),
    Column("tag", String(128), primary_key=True),
)

# A registry (W&B's Registry): the project wandb-registry-<name> of the registry entity.
registries = Table(
    "registries",
    metadata,
    Column("project_id", Integer, ForeignKey("projects.id"), primary_key=True),
    Column("description", Text),
    Column("visibility", String(32), nullable=False),
    Column("artifact_types", Text, nullable=False, server_default="[]"),  # JSON list; [] = any
    Column("created_at", Float, nullable=False),
)

HEAD_REVISION = "0015_blob_object_keys"
