"""The catalog's tables (SQLAlchemy Core). Changes here need a migration in ``migrations/``."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
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
    UniqueConstraint("project_id", "run_id"),
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
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("committed_at", Float),
    UniqueConstraint("collection_id", "idx"),
    Index("ix_versions_collection_digest", "collection_id", "digest"),
    # Also: a partial unique index, at most one PENDING version per (collection, distributed_id):
    # "uq_versions_pending_distributed", created by migration 0001. It is not declared here
    # because dialect options (postgresql_where) make SQLAlchemy import the PostgreSQL dialect
    # and asyncio at start-up, which every embedded-store process would pay for.
)

PARTIAL_INDEXES = ("uq_versions_pending_distributed",)

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

HEAD_REVISION = "0001_initial"
