"""Registry links (W&B's ``link_artifact``) and registries.

A link is a version of another collection (its own number and aliases) whose content is a
source version's: ``versions.source_version_id`` names the source. A registry is a project named
``wandb-registry-<name>`` with a description, a visibility and the artifact types it accepts.

Revision ID: 0007_registry_links
Revises: 0006_version_ttl
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_registry_links"
down_revision = "0006_version_ttl"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("versions", sa.Column("source_version_id", sa.String(length=32), nullable=True))
    op.create_index(op.f("ix_versions_source_version_id"), "versions", ["source_version_id"])
    op.create_table(
        "registries",
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("visibility", sa.String(length=32), nullable=False),
        sa.Column("artifact_types", sa.Text(), nullable=False, server_default="[]"),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_registries_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_registries")),
    )


def downgrade() -> None:
    op.drop_table("registries")
    op.drop_index(op.f("ix_versions_source_version_id"), table_name="versions")
    op.drop_column("versions", "source_version_id")
