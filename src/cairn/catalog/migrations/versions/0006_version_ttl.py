"""Time to live of versions (W&B's ``Artifact.ttl``).

Revision ID: 0006_version_ttl
Revises: 0005_collection_tags
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_version_ttl"
down_revision = "0005_collection_tags"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy of the table: on SQLite that would drop and re-create
    # versions, which other tables' foreign keys refer to).
    op.add_column("versions", sa.Column("ttl_seconds", sa.Float(), nullable=True))
    op.add_column("versions", sa.Column("expires_at", sa.Float(), nullable=True))
    op.create_index(op.f("ix_versions_expires_at"), "versions", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_versions_expires_at"), table_name="versions")
    op.drop_column("versions", "expires_at")
    op.drop_column("versions", "ttl_seconds")
