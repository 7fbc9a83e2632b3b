"""A project's grants (``project_blobs``) are no longer checked against ``projects`` by a foreign key.

A commit grants its project every blob its version names: one ``project_blobs`` row per blob
(20,000 for a first log of 20,000 files), and PostgreSQL checked each row's project with a
trigger query (``SELECT 1 FROM projects ... FOR KEY SHARE``, one per row) inside the commit's
transaction: 30-40% of the grants' insert (measured, docs/design.md). The project id always
comes from the same transaction (``projects.id_of(create=True)``) and projects are never
deleted, so the check guarded nothing. SQLite (the embedded store keeps no grants): the table is
rebuilt without it, as SQLite drops a constraint.

Revision ID: 0013_grants_without_fk
Revises: 0012_upload_parts
Create Date: 2026-12-02
"""

from alembic import op

revision = "0013_grants_without_fk"
down_revision = "0012_upload_parts"
branch_labels = None
depends_on = None

_FK = "fk_project_blobs_project_id_projects"


def upgrade() -> None:
    with op.batch_alter_table("project_blobs") as batch:
        batch.drop_constraint(_FK, type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("project_blobs") as batch:
        batch.create_foreign_key(_FK, "projects", ["project_id"], ["id"])
