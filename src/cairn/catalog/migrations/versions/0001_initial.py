"""The first catalog schema.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None

PENDING_DISTRIBUTED = "state = 'PENDING' AND distributed_id IS NOT NULL"


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("entity", sa.String(128), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_projects"),
        sa.UniqueConstraint("entity", "name", name="uq_projects_entity"),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, autoincrement=True),
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("run_id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("group_name", sa.String(256)),
        sa.Column("job_type", sa.String(256)),
        sa.Column("config", sa.Text, nullable=False, server_default="{}"),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_runs_project_id_projects"
        ),
        sa.UniqueConstraint("project_id", "run_id", name="uq_runs_project_id"),
    )
    op.create_table(
        "collections",
        sa.Column("id", sa.Integer, autoincrement=True),
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("type", sa.String(128), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("next_index", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_collections"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_collections_project_id_projects"
        ),
        sa.UniqueConstraint("project_id", "name", name="uq_collections_project_id"),
    )
    op.create_table(
        "versions",
        sa.Column("id", sa.String(32)),
        sa.Column("collection_id", sa.Integer, nullable=False),
        sa.Column("idx", sa.Integer),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("digest", sa.String(80)),
        sa.Column("size", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("file_count", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("metadata", sa.Text, nullable=False, server_default="{}"),
        sa.Column("description", sa.Text),
        sa.Column("created_by", sa.Integer),
        sa.Column("distributed_id", sa.String(256)),
        sa.Column("base_version_id", sa.String(32)),
        sa.Column("pending_aliases", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("committed_at", sa.Float),
        sa.PrimaryKeyConstraint("id", name="pk_versions"),
        sa.ForeignKeyConstraint(
            ["collection_id"], ["collections.id"], name="fk_versions_collection_id_collections"
        ),
        sa.ForeignKeyConstraint(["created_by"], ["runs.id"], name="fk_versions_created_by_runs"),
        sa.UniqueConstraint("collection_id", "idx", name="uq_versions_collection_id"),
    )
    op.create_index("ix_versions_collection_digest", "versions", ["collection_id", "digest"])
    op.create_index(
        "uq_versions_pending_distributed",
        "versions",
        ["collection_id", "distributed_id"],
        unique=True,
        sqlite_where=sa.text(PENDING_DISTRIBUTED),
        postgresql_where=sa.text(PENDING_DISTRIBUTED),
    )
    op.create_table(
        "aliases",
        sa.Column("collection_id", sa.Integer, nullable=False),
        sa.Column("alias", sa.String(128), nullable=False),
        sa.Column("version_id", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("collection_id", "alias", name="pk_aliases"),
        sa.ForeignKeyConstraint(
            ["collection_id"], ["collections.id"], name="fk_aliases_collection_id_collections"
        ),
        sa.ForeignKeyConstraint(
            ["version_id"], ["versions.id"], name="fk_aliases_version_id_versions"
        ),
    )
    op.create_index("ix_aliases_version_id", "aliases", ["version_id"])
    op.create_table(
        "tags",
        sa.Column("version_id", sa.String(32), nullable=False),
        sa.Column("tag", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("version_id", "tag", name="pk_tags"),
        sa.ForeignKeyConstraint(
            ["version_id"], ["versions.id"], name="fk_tags_version_id_versions"
        ),
    )
    op.create_table(
        "version_runs",
        sa.Column("version_id", sa.String(32), nullable=False),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("version_id", "run_id", "role", name="pk_version_runs"),
        sa.ForeignKeyConstraint(
            ["version_id"], ["versions.id"], name="fk_version_runs_version_id_versions"
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_version_runs_run_id_runs"),
    )
    op.create_index("ix_version_runs_run_id", "version_runs", ["run_id"])
    op.create_table(
        "staged_entries",
        sa.Column("version_id", sa.String(32), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("removed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("digest", sa.Text, nullable=False),
        sa.Column("size", sa.BigInteger),
        sa.Column("ref", sa.Text),
        sa.Column("extra", sa.Text),
        sa.Column("run_id", sa.Integer),
        sa.Column("staged_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("version_id", "path", name="pk_staged_entries"),
        sa.ForeignKeyConstraint(
            ["version_id"], ["versions.id"], name="fk_staged_entries_version_id_versions"
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_staged_entries_run_id_runs"),
    )


def downgrade() -> None:
    for table in ("staged_entries", "version_runs", "tags", "aliases", "versions"):
        op.drop_table(table)
    for table in ("collections", "runs", "projects"):
        op.drop_table(table)
