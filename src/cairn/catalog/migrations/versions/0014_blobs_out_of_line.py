"""Small blobs' bytes go out of line again on PostgreSQL (the TOAST table), not in their row.

Migration 0003 kept a row of up to ~8 KiB whole in its heap page (``toast_tuple_target =
8160``): a 4 KiB blob took a page of 8 KiB, so the heap of ``blobs`` was twice the blobs' bytes
(160 MB for 20,000 x 4 KiB, more than PostgreSQL's default shared buffers), and every presence
check (a commit's, in the statement that grants its blobs) read a page per blob it found.
Out of line, the heap row is the digest, size and time (~100 bytes, some 70 a page) and the
bytes are 2 KiB chunks in the TOAST table, read only when the blob is: measured, a commit's
check of 20,000 blobs cost PostgreSQL 130 -> 30 ms of CPU alone, its grant with the presence
check 430 -> 240 ms (docs/design.md, "s1 through a server, thirteenth session").
``STORAGE EXTERNAL`` (0003) stays: no compression is tried (blobs are mostly compressed
already). Rows written before stay where they are (moving them would rewrite the table under
an exclusive lock); they read the same. SQLite: nothing to do.

Revision ID: 0014_blobs_out_of_line
Revises: 0013_grants_without_fk
Create Date: 2026-12-02
"""

from alembic import op

revision = "0014_blobs_out_of_line"
down_revision = "0013_grants_without_fk"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE blobs RESET (toast_tuple_target)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE blobs SET (toast_tuple_target = 8160)")
