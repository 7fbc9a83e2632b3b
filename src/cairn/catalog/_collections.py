"""Collections (W&B's artifact collections): a named, typed sequence of versions in a project.

A collection hands out version numbers: ``lock`` locks its row inside the committing
transaction and returns ``next_index``, so numbers are dense and unique across processes and
machines (``Versions.bump_index`` moves it on). A name keeps its type for good.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import and_, bindparam, delete, select, update

from cairn.catalog import _schema as s
from cairn.catalog import _statements as st
from cairn.catalog._repository import Repository, now
from cairn.catalog._rows import collection_record, collection_row
from cairn.core import CollectionRecord
from cairn.errors import ArtifactNotFoundError, TypeConflictError, UsageError, ValidationError

_p, _c = s.projects.c, s.collections.c
# Built once (a name's every resolve runs it: building a statement costs more than running it).
_LOCATE = (
    select(_p.id, _c.id)
    .select_from(s.projects)
    .outerjoin(s.collections, and_(_c.project_id == _p.id, _c.name == bindparam("name")))
    .where(_p.entity == bindparam("entity"), _p.name == bindparam("project"))
)


class Collections(Repository):
    """The ``collections`` and ``collection_tags`` tables."""

    def lock(
        self, project_id: int, name: str, type_name: str, description: str | None
    ) -> tuple[int, int]:
        """Lock (creating it if needed) a collection for a commit: (id, next_index).

        Raises ``TypeConflictError`` when the name exists with another type.
        """
        key = {"project_id": project_id, "name": name}
        row = self.conn.execute(st.COLLECTION_LOCK, key).first()
        if row is None:
            self.conn.execute(
                st.collection_create(self.tx.dialect),
                collection_row(project_id, name, type_name, description, at=now()),
            )
            row = self.conn.execute(st.COLLECTION_LOCK, key).first()
            assert row is not None
        if row.type != type_name:
            raise TypeConflictError(
                f"artifact {name!r} already exists in this project with type {row.type!r},"
                f" not {type_name!r}; use type {row.type!r} or another name"
            )
        return int(row.id), int(row.next_index)

    def locate(self, entity: str, project: str, name: str) -> tuple[int | None, int | None]:
        """(project id, collection id) of ``entity/project/name`` in one query; None where absent."""
        params = {"entity": entity, "project": project, "name": name}
        row = self.conn.execute(_LOCATE, params).first()
        if row is None:
            return None, None
        return int(row[0]), None if row[1] is None else int(row[1])

    def id_of(self, project_id: int, name: str) -> int | None:
        cid = self.conn.execute(st.COLLECTION_ID, {"project_id": project_id, "name": name}).scalar()
        return None if cid is None else int(cid)

    def require(self, project_id: int, name: str, where: str) -> int:
        cid = self.id_of(project_id, name)
        if cid is None:
            raise ArtifactNotFoundError(f"artifact {name!r} not found in project {where}")
        return cid

    def records(
        self, project_id: int, type_name: str | None = None, name: str | None = None
    ) -> list[CollectionRecord]:
        c = s.collections.c
        where = c.project_id == project_id
        if type_name is not None:
            where = and_(where, c.type == type_name)
        if name is not None:
            where = and_(where, c.name == name)
        q = st.collection_records(where)
        rows = list(self.conn.execute(q, {"now": now()}))
        latest = self.latest_versions({int(r.id): r.latest_idx for r in rows})
        ctags = self.tag_map([int(r.id) for r in rows])
        caliases = self.tx.aliases.by_collection([int(r.id) for r in rows])
        return [collection_record(dict(r._mapping), latest, ctags, caliases) for r in rows]

    def latest_versions(self, newest: Mapping[int, int | None]) -> dict[int, tuple[int, int]]:
        """Collection id -> (index, size) of the version ``:latest`` resolves to: the one with
        the ``latest`` alias, else (an edit removed it) the newest committed one."""
        if not newest:
            return {}
        a, v = s.aliases.c, s.versions.c
        at = {"now": now()}
        q = st.latest_aliased(self.tx.among(a.collection_id, list(newest)))
        out = {int(r[0]): (int(r[1]), int(r[2])) for r in self.conn.execute(q, at)}
        rest = [(cid, idx) for cid, idx in newest.items() if cid not in out and idx is not None]
        if rest:
            q = st.alive_indexes(self.tx.among(v.collection_id, [cid for cid, _ in rest]))
            wanted = set(rest)
            for r in self.conn.execute(q, at):
                if (int(r[0]), r[1]) in wanted:
                    out[int(r[0])] = (int(r[1]), int(r[2]))
        return out

    def types(self, project_id: int) -> list[str]:
        c = s.collections.c
        q = select(c.type).where(c.project_id == project_id).distinct().order_by(c.type)
        return [r[0] for r in self.conn.execute(q)]

    # -- as W&B edits them: tags, rename, delete -------------------------------------------------

    def tag_map(self, collection_ids: Sequence[int]) -> dict[int, list[str]]:
        """Each collection's tags (W&B's collection tags, not its versions' tags), by name."""
        if not collection_ids:
            return {}
        ct = s.collection_tags.c
        q = st.collection_tags(self.tx.among(ct.collection_id, collection_ids))
        out: dict[int, list[str]] = {}
        for cid, tag in self.conn.execute(q):
            out.setdefault(int(cid), []).append(str(tag))
        return out

    def set_tags(self, collection_id: int, tags: Iterable[str]) -> None:
        ct = s.collection_tags.c
        self.conn.execute(delete(s.collection_tags).where(ct.collection_id == collection_id))
        rows = [{"collection_id": collection_id, "tag": t} for t in dict.fromkeys(tags)]
        if rows:
            self.conn.execute(s.collection_tags.insert(), rows)

    def update(
        self, collection_id: int, *, name: str | None = None, description: str | None = None
    ) -> None:
        c = s.collections.c
        values: dict[str, Any] = {"updated_at": now()}
        if name is not None:
            pid = self.conn.execute(select(c.project_id).where(c.id == collection_id)).scalar_one()
            other = self.id_of(int(pid), name)
            if other is not None and other != collection_id:
                raise ValidationError(
                    f"an artifact named {name!r} already exists in this project; choose another"
                    " name"
                )
            values["name"] = name
        if description is not None:
            values["description"] = description
        self.conn.execute(update(s.collections).where(c.id == collection_id).values(**values))

    def delete(self, collection_id: int) -> None:
        """Remove a collection, its versions and everything attached to them. Refused while
        one of its versions is linked into another collection (a registry)."""
        v = s.versions.c
        ids = select(v.id).where(v.collection_id == collection_id)
        links = self.tx.registries.links_to(ids)
        if links:
            raise UsageError(
                f"a version of this artifact is linked to {links[0]}; unlink it first"
                " (artifact.unlink() on the linked version)"
            )
        for table in (
            s.staged_entries,
            s.version_runs,
            s.tags,
            s.version_metadata,
            s.version_words,
        ):
            self.conn.execute(delete(table).where(table.c.version_id.in_(ids)))
        self.conn.execute(delete(s.aliases).where(s.aliases.c.collection_id == collection_id))
        self.conn.execute(delete(s.versions).where(v.collection_id == collection_id))
        self.conn.execute(
            delete(s.collection_tags).where(s.collection_tags.c.collection_id == collection_id)
        )
        self.conn.execute(delete(s.collections).where(s.collections.c.id == collection_id))
