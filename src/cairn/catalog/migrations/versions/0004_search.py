"""Search: an index of committed versions' metadata (one row per leaf), and look-ups by tag,
alias and creation time.

Existing versions' metadata is indexed here, in batches (no manifest is read).

Revision ID: 0004_search
Revises: 0003_blob_storage
Create Date: 2026-12-01
"""

import json

import sqlalchemy as sa
from alembic import op

from cairn.core import index_rows

revision = "0004_search"
down_revision = "0003_blob_storage"
branch_labels = None
depends_on = None

_BATCH = 2000


def upgrade() -> None:
    table = op.create_table(
        "version_metadata",
        sa.Column("version_id", sa.String(32), nullable=False),
        sa.Column("key", sa.String(256), nullable=False),
        sa.Column("text_value", sa.String(256), nullable=False),
        sa.Column("num_value", sa.Float),
        sa.PrimaryKeyConstraint("version_id", "key", name="pk_version_metadata"),
        sa.ForeignKeyConstraint(
            ["version_id"], ["versions.id"], name="fk_version_metadata_version_id_versions"
        ),
    )
    # Covering indexes: a condition's version ids are read from the index alone.
    for name, columns in (
        ("ix_version_metadata_key_num", ["key", "num_value", "version_id"]),
        ("ix_version_metadata_key_text", ["key", "text_value", "version_id"]),
        ("ix_version_metadata_text", ["text_value", "version_id"]),
    ):
        op.create_index(name, "version_metadata", columns)
    op.create_index("ix_tags_tag", "tags", ["tag", "version_id"])
    op.create_index("ix_aliases_alias", "aliases", ["alias", "version_id"])
    op.create_index("ix_versions_created_at", "versions", ["created_at"])
    conn = op.get_bind()
    versions = sa.table(
        "versions", sa.column("id", sa.String), sa.column("metadata"), sa.column("state")
    )
    q = sa.select(versions.c.id, versions.c.metadata).where(
        versions.c.state == "COMMITTED", versions.c.metadata != "{}"
    )
    rows: list[dict[str, object]] = []
    for vid, raw in conn.execute(q).fetchall():
        try:
            value = json.loads(raw)
        except ValueError:
            continue
        if isinstance(value, dict):
            rows.extend(
                {"version_id": vid, "key": k, "text_value": t, "num_value": n}
                for k, t, n in index_rows(value)
            )
        if len(rows) >= _BATCH:
            conn.execute(table.insert(), rows)
            rows = []
    if rows:
        conn.execute(table.insert(), rows)


def downgrade() -> None:
    op.drop_index("ix_versions_created_at", "versions")
    op.drop_index("ix_aliases_alias", "aliases")
    op.drop_index("ix_tags_tag", "tags")
    op.drop_table("version_metadata")
