"""Projects: ``entity/project``, created on first use."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from cairn.catalog import _schema as s
from cairn.catalog import _statements as st
from cairn.catalog._repository import Repository, now


class Projects(Repository):
    """The ``projects`` table."""

    def id_of(self, entity: str, name: str, *, create: bool) -> int | None:
        """The project's id; with ``create``, made if missing (two writers make one row)."""
        q, key = st.PROJECT_ID, {"entity": entity, "name": name}
        pid = self.conn.execute(q, key).scalar()
        if pid is None and create:
            row = {"entity": entity, "name": name, "created_at": now()}
            self.conn.execute(st.project_create(self.tx.dialect), row)
            pid = self.conn.execute(q, key).scalar()
        return None if pid is None else int(pid)

    def names(self, entity: str | None = None) -> list[tuple[str, str]]:
        """(entity, name) of every project (of ``entity``), in order."""
        q = select(s.projects.c.entity, s.projects.c.name).order_by(
            s.projects.c.entity, s.projects.c.name
        )
        if entity is not None:
            q = q.where(s.projects.c.entity == entity)
        return [(r[0], r[1]) for r in self.conn.execute(q)]

    def ids_of(self, projects: Sequence[tuple[str, str]]) -> list[int]:
        """The ids of those (entity, name) projects that exist."""
        if not projects:
            return []
        p = s.projects.c
        wanted = set(projects)
        entities = sorted({e for e, _ in projects})
        q = select(p.id, p.entity, p.name).where(self.tx.among(p.entity, entities))
        return [int(row.id) for row in self.conn.execute(q) if (row.entity, row.name) in wanted]
