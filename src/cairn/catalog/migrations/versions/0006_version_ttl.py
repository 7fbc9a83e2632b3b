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
    with op.batch_alter_table("versions") as batch:
        batch.add_column(sa.Column("ttl_seconds", sa.Float(), nullable=True))
        batch.add_column(sa.Column("expires_at", sa.Float(), nullable=True))
        batch.create_index(op.f("ix_versions_expires_at"), ["expires_at"])


def downgrade() -> None:
    with op.batch_alter_table("versions") as batch:
        batch.drop_index(op.f("ix_versions_expires_at"))
        batch.drop_column("expires_at")
        batch.drop_column("ttl_seconds")
