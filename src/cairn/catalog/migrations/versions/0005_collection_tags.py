"""Tags on artifact collections (W&B's ``ArtifactCollection.tags``).

Revision ID: 0005_collection_tags
Revises: 0004_search
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_collection_tags"
down_revision = "0004_search"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "collection_tags",
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["collections.id"],
            name=op.f("fk_collection_tags_collection_id_collections"),
        ),
        sa.PrimaryKeyConstraint("collection_id", "tag", name=op.f("pk_collection_tags")),
    )


def downgrade() -> None:
    op.drop_table("collection_tags")
