"""A distributed finish reads staged changes in path order, a batch at a time.

``versions.staged_generation`` counts the stagings into a pending version, so a finish knows
whether the changes it built its manifest from are still those staged (one number compared,
however many changes). On PostgreSQL, an index in code point order ("C" collation, the order of
manifests) lets each batch be read from an index, whatever the database's own collation; SQLite
compares text in that order already (its primary key index serves).

Revision ID: 0011_staged_order
Revises: 0010_versions_by_collection
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_staged_order"
down_revision = "0010_versions_by_collection"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy: other tables' foreign keys refer to versions).
    op.add_column(
        "versions",
        sa.Column("staged_generation", sa.Integer(), nullable=False, server_default="0"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            'CREATE INDEX ix_staged_entries_path_c ON staged_entries (version_id, path COLLATE "C")'
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_staged_entries_path_c", table_name="staged_entries")
    op.drop_column("versions", "staged_generation")
