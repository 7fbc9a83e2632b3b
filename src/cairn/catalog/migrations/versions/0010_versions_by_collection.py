"""An index of versions by collection and creation time: a versions table and the search page
of a narrow scope (a key that may read a few projects) read a collection's newest versions
first, without reading and sorting all of them.

Revision ID: 0010_versions_by_collection
Revises: 0009_run_history
Create Date: 2026-12-01
"""

from alembic import op

revision = "0010_versions_by_collection"
down_revision = "0009_run_history"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_versions_collection_created", "versions", ["collection_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_versions_collection_created", "versions")
