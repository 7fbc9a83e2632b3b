"""Search: an index of the words of committed versions' descriptions, so a search word is a
range of an index on SQLite and PostgreSQL alike instead of a scan of every description.

Existing versions' descriptions are indexed here, in batches (no manifest is read).

Revision ID: 0008_search_words
Revises: 0007_registry_links
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from cairn.core import text_words

revision = "0008_search_words"
down_revision = "0007_registry_links"
branch_labels = None
depends_on = None

_BATCH = 5000


def upgrade() -> None:
    word = sa.String(64).with_variant(sa.String(64, collation="C"), "postgresql")
    table = op.create_table(
        "version_words",
        sa.Column("word", word, nullable=False),
        sa.Column("version_id", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("word", "version_id", name="pk_version_words"),
        sa.ForeignKeyConstraint(
            ["version_id"], ["versions.id"], name="fk_version_words_version_id_versions"
        ),
    )
    op.create_index("ix_version_words_version_id", "version_words", ["version_id", "word"])
    conn = op.get_bind()
    versions = sa.table(
        "versions", sa.column("id", sa.String), sa.column("description"), sa.column("state")
    )
    q = sa.select(versions.c.id, versions.c.description).where(
        versions.c.state == "COMMITTED", versions.c.description.is_not(None)
    )
    rows: list[dict[str, object]] = []
    for vid, description in conn.execute(q).fetchall():
        rows.extend({"word": w, "version_id": vid} for w in text_words(description))
        if len(rows) >= _BATCH:
            conn.execute(table.insert(), rows)
            rows = []
    if rows:
        conn.execute(table.insert(), rows)


def downgrade() -> None:
    op.drop_index("ix_version_words_version_id", "version_words")
    op.drop_table("version_words")
