"""Runs' history and summary (W&B's ``run.log``, ``run.summary``, ``Run.history()``).

Revision ID: 0009_run_history
Revises: 0008_search_words
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_run_history"
down_revision = "0008_search_words"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy: other tables' foreign keys refer to runs).
    op.add_column("runs", sa.Column("summary", sa.Text(), nullable=True))
    op.create_table(
        "run_history",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("row", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "step", name="pk_run_history"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_run_history_run_id_runs"),
    )


def downgrade() -> None:
    op.drop_table("run_history")
    op.drop_column("runs", "summary")
