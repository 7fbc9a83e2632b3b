"""A large blob's object may live at a key of its own, named by its index row.

``blobs.object_key``: the object store key (relative to the store's prefix) of a large blob
streamed to an S3 store before its digest was known (``streamed/<upload id>``: its parts went to
S3 as they came, while the client hashed), or NULL: the blob's own key (``sha256/ab/cdef...``),
as every row an existing store wrote. So an upgraded store reads every blob as before; only
blobs stored from now on by such an upload name another key. A partial index finds the rows
that name one (the sweep asks which keys under ``streamed/`` a row names).
``uploads.active_at``: when a stream last sent a part of the upload (NULL: no stream is on it),
so an upload whose stream is alive is never taken up by another. See docs/design.md
("Blobs on S3: small ones in the catalog", "Transfers").

Revision ID: 0015_blob_object_keys
Revises: 0014_blobs_out_of_line
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_blob_object_keys"
down_revision = "0014_blobs_out_of_line"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("blobs", sa.Column("object_key", sa.Text(), nullable=True))
    op.create_index(
        "ix_blobs_object_key",
        "blobs",
        ["object_key"],
        postgresql_where=sa.text("object_key IS NOT NULL"),
        sqlite_where=sa.text("object_key IS NOT NULL"),
    )
    op.add_column("uploads", sa.Column("active_at", sa.Float(), nullable=True))


def downgrade() -> None:
    # Rows that name a key of their own would read as missing after this: refuse to lose them.
    bind = op.get_bind()
    keyed = bind.execute(sa.text("SELECT count(*) FROM blobs WHERE object_key IS NOT NULL"))
    if int(keyed.scalar_one()):
        raise RuntimeError(
            "blobs are stored at keys of their own (object_key): this store cannot go back"
            " to 0014_blobs_out_of_line without losing them"
        )
    op.drop_index("ix_blobs_object_key", "blobs")
    with op.batch_alter_table("blobs") as batch:
        batch.drop_column("object_key")
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("active_at")
