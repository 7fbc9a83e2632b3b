"""A streamed upload's parts are recorded in the catalog, not as marker objects in S3.

``upload_parts``: per part S3 acknowledged, its ETag, its CRC32 and the SHA-256 of the blob up
to its end (what a resumed upload compares before reusing the part). Uploads under way when a
server is upgraded kept their records as S3 objects: the new server begins those again.

Revision ID: 0012_upload_parts
Revises: 0011_staged_order
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_upload_parts"
down_revision = "0011_staged_order"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "upload_parts",
        sa.Column("upload_id", sa.String(32), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("prefix_sha256", sa.LargeBinary, nullable=False),
        sa.Column("crc32", sa.LargeBinary, nullable=False),
        sa.Column("etag", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("upload_id", "number", name="pk_upload_parts"),
    )


def downgrade() -> None:
    op.drop_table("upload_parts")
