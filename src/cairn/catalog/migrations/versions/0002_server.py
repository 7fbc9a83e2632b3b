"""The server's tables: API keys and grants, the blob index, blob ownership, uploads in parts.

Revision ID: 0002_server
Revises: 0001_initial
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_server"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("user_name", sa.String(128), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("revoked_at", sa.Float),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
    )
    op.create_index("ix_api_keys_user_name", "api_keys", ["user_name"])
    op.create_table(
        "api_key_grants",
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("entity", sa.String(128), nullable=False),
        sa.Column("project", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("key_id", "entity", "project", name="pk_api_key_grants"),
        sa.ForeignKeyConstraint(
            ["key_id"], ["api_keys.id"], name="fk_api_key_grants_key_id_api_keys"
        ),
    )
    op.create_table(
        "blobs",
        sa.Column("digest", sa.String(80), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("stored_at", sa.Float, nullable=False),
        sa.Column("data", sa.LargeBinary),
        sa.PrimaryKeyConstraint("digest", name="pk_blobs"),
    )
    op.create_table(
        "blob_uploads",
        sa.Column("user_name", sa.String(128), nullable=False),
        sa.Column("digest", sa.String(80), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("user_name", "digest", name="pk_blob_uploads"),
    )
    op.create_table(
        "project_blobs",
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("digest", sa.String(80), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "digest", name="pk_project_blobs"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_project_blobs_project_id_projects"
        ),
    )
    op.create_index("ix_project_blobs_digest", "project_blobs", ["digest"])
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("user_name", sa.String(128), nullable=False),
        sa.Column("digest", sa.String(80), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("part_size", sa.BigInteger, nullable=False),
        sa.Column("backend_ref", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_uploads"),
    )


def downgrade() -> None:
    for table in (
        "uploads",
        "project_blobs",
        "blob_uploads",
        "blobs",
        "api_key_grants",
        "api_keys",
    ):
        op.drop_table(table)
