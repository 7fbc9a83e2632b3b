"""A project's grants (``project_blobs``) are no longer checked against ``projects`` by a foreign key.

A commit grants its project every blob its version names: one ``project_blobs`` row per blob
(20,000 for a first log of 20,000 files), and PostgreSQL checked each row's project with a
trigger query (``SELECT 1 FROM projects ... FOR KEY SHARE``, one per row) inside the commit's
transaction: 30-40% of the grants' insert (measured, docs/design.md). The project id always
comes from the same transaction (``projects.id_of(create=True)``) and projects are never
deleted, so the check guarded nothing. SQLite (a server's SQLite catalog; the embedded store
keeps no grants) keeps the key: there its check is a probe of ``projects``' primary key, not a
query, and it refuses a grant whose project was deleted by hand (whose id SQLite gives the next
project made, which would inherit the grants). A downgrade on PostgreSQL first deletes the grants
of projects that are gone, then puts the key back.

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
    if op.get_bind().dialect.name == "sqlite":
        return  # an index probe there: the key stays
    op.drop_constraint(_FK, "project_blobs", type_="foreignkey")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    op.execute(
        "DELETE FROM project_blobs WHERE NOT EXISTS"
        " (SELECT 1 FROM projects WHERE projects.id = project_blobs.project_id)"
    )
    op.create_foreign_key(_FK, "project_blobs", "projects", ["project_id"], ["id"])
