"""Aliases and tags of versions.

An alias names one version of its collection at a time (setting it moves it); ``latest`` is a
real alias, kept on the newest committed version unless an edit takes it off (W&B's rules; a
collection without it resolves ``latest`` to its newest version: ``Versions.resolve``). Tags
label versions, any number of them per version. (Collections' own tags: ``Collections``.)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import delete, select

from cairn.catalog import _schema as s
from cairn.catalog import _statements as st
from cairn.catalog._repository import Repository
from cairn.catalog._rows import alias_lists
from cairn.core import LATEST


class Aliases(Repository):
    """The ``aliases`` table: (collection, alias) -> version."""

    def assign(self, collection_id: int, alias: str, version_id: str) -> None:
        """Point ``alias`` at ``version_id`` (moving it from another version of the collection)."""
        self.conn.execute(
            st.alias_assign(self.tx.dialect),
            {"collection_id": collection_id, "alias": alias, "version_id": version_id},
        )

    def remove(self, collection_id: int, alias: str, version_id: str | None = None) -> bool:
        a = s.aliases.c
        stmt = delete(s.aliases).where(a.collection_id == collection_id, a.alias == alias)
        if version_id is not None:
            stmt = stmt.where(a.version_id == version_id)
        return bool(self.conn.execute(stmt).rowcount)

    def of(self, version_id: str) -> list[str]:
        a = s.aliases.c
        return [r[0] for r in self.conn.execute(select(a.alias).where(a.version_id == version_id))]

    def replace(self, collection_id: int, version_id: str, aliases: Iterable[str]) -> None:
        """Make ``aliases`` exactly the version's aliases (``latest`` included: a list without
        it takes ``latest`` off the version, as in W&B)."""
        wanted = set(aliases)
        for alias in self.of(version_id):
            if alias not in wanted:
                self.remove(collection_id, alias, version_id)
        for alias in sorted(wanted):
            self.assign(collection_id, alias, version_id)

    def move_latest(self, collection_id: int) -> None:
        """Point ``latest`` at the highest committed version (or drop it if none is left)."""
        top = self.tx.versions.newest_committed(collection_id)
        if top is None:
            self.remove(collection_id, LATEST)
        else:
            self.assign(collection_id, LATEST, str(top))

    def by_collection(self, collection_ids: Sequence[int]) -> dict[int, list[str]]:
        """Every alias in use in each collection, ``latest`` first, then by name."""
        if not collection_ids:
            return {}
        a = s.aliases.c
        q = st.collection_aliases(self.tx.among(a.collection_id, collection_ids))
        return alias_lists(self.conn.execute(q))


class Tags(Repository):
    """The ``tags`` table: a version's tags."""

    def add(self, version_id: str, tags: Iterable[str]) -> None:
        for tag in tags:
            self.conn.execute(st.tag_add(self.tx.dialect), {"version_id": version_id, "tag": tag})

    def replace(self, version_id: str, tags: Iterable[str]) -> None:
        self.conn.execute(delete(s.tags).where(s.tags.c.version_id == version_id))
        self.add(version_id, tags)
