"""Registries and registry links (W&B's ``Registry``, ``link_artifact``).

A registry is a project of the registry entity with a row in ``registries`` (its description,
visibility and the artifact types it accepts). A link is a version of a registry's collection
whose ``source_version_id`` names the version it links: it shares the source's content, and a
collection cannot be deleted while one of its versions has a live link (``links_to``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from cairn.catalog import _schema as s
from cairn.catalog._repository import Repository, now, to_json
from cairn.core import COMMITTED


class Registries(Repository):
    """The ``registries`` table and the ``source_version_id`` column of ``versions``."""

    def create(
        self,
        project_id: int,
        description: str | None,
        visibility: str,
        artifact_types: Sequence[str],
    ) -> None:
        self.conn.execute(
            self.tx.upsert(s.registries)
            .values(
                project_id=project_id,
                description=description,
                visibility=visibility,
                artifact_types=to_json(list(artifact_types)),
                created_at=now(),
            )
            .on_conflict_do_nothing()
        )

    def rows(self, project_name: str | None = None) -> list[Any]:
        r, p = s.registries.c, s.projects.c
        q = (
            select(p.entity, p.name, r.description, r.visibility, r.artifact_types, r.created_at)
            .join(s.projects, p.id == r.project_id)
            .order_by(p.name)
        )
        if project_name is not None:
            q = q.where(p.name == project_name)
        return list(self.conn.execute(q))

    def links_to(self, source_ids: Any) -> list[str]:
        """``entity/project/name:vN`` of the live links whose source is among ``source_ids``
        (a list or a subquery)."""
        v, c, p = s.versions.c, s.collections.c, s.projects.c
        cond = v.source_version_id.in_(source_ids)
        q = (
            select(p.entity, p.name, c.name, v.idx)
            .join(s.collections, c.id == v.collection_id)
            .join(s.projects, p.id == c.project_id)
            .where(cond, v.state == COMMITTED)
            .order_by(p.entity, p.name, c.name, v.idx)
        )
        return [f"{r[0]}/{r[1]}/{r[2]}:v{r[3]}" for r in self.conn.execute(q)]

    def links_of(self, version_id: str) -> list[str]:
        """The ids of the live links whose source is ``version_id``."""
        v = s.versions.c
        q = select(v.id).where(v.source_version_id == version_id, v.state == COMMITTED)
        return [str(r[0]) for r in self.conn.execute(q)]

    def link_of(self, collection_id: int, source_version_id: str) -> str | None:
        """The collection's live link to ``source_version_id``, if any."""
        v = s.versions.c
        q = select(v.id).where(
            v.collection_id == collection_id,
            v.source_version_id == source_version_id,
            v.state == COMMITTED,
        )
        vid = self.conn.execute(q).scalar()
        return None if vid is None else str(vid)
