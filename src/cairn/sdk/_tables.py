"""W&B's ``JoinedTable`` and ``PartitionedTable``: tables made of other tables in an artifact.

Both are stored as small JSON files that name the tables they are made of, as W&B does:
``<name>.joined-table.json`` (``table1``, ``table2``, ``join_key``) and
``<name>.partitioned-table.json`` (``parts_path``, a directory of ``*.table.json`` files).
``Artifact.get(name)`` reads them back with their tables loaded.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from cairn.core import ManifestEntry, normalize_entry_path
from cairn.errors import ValidationError
from cairn.sdk._objects import TABLE_SUFFIX, Table, decode_object

if TYPE_CHECKING:
    from cairn.sdk._artifact import Artifact
    from cairn.sdk._entry import ArtifactManifestEntry

JOINED_SUFFIX = ".joined-table.json"
PARTITIONED_SUFFIX = ".partitioned-table.json"


class JoinedTable:
    """Two tables of an artifact joined on ``join_key`` (a column name, or a pair: the column of
    ``table1`` and of ``table2``). ``table1``/``table2`` are ``cairn.Table`` objects (added to the
    artifact with this one) or the names of tables already in it."""

    def __init__(self, table1: Table | str, table2: Table | str, join_key: str | list[str]) -> None:
        for t in (table1, table2):
            if not isinstance(t, (Table, str)):
                raise TypeError(
                    f"a JoinedTable joins cairn.Table objects or table names, got {t!r}"
                )
        if isinstance(join_key, (list, tuple)):
            if len(join_key) != 2 or not all(isinstance(k, str) for k in join_key):
                raise ValidationError("join_key must be a column name or a pair of column names")
        elif not isinstance(join_key, str):
            raise ValidationError("join_key must be a column name or a pair of column names")
        self.table1 = table1
        self.table2 = table2
        self.join_key = join_key

    def _keys(self) -> tuple[str, str]:
        if isinstance(self.join_key, str):
            return self.join_key, self.join_key
        return self.join_key[0], self.join_key[1]

    def joined(self) -> Table:
        """The inner join of the two tables: ``table1``'s columns, then ``table2``'s other ones."""
        left, right = self.table1, self.table2
        if not isinstance(left, Table) or not isinstance(right, Table):
            raise ValidationError("the joined tables are not loaded: read the JoinedTable back")
        k1, k2 = self._keys()
        i1, i2 = left.columns.index(k1), right.columns.index(k2)
        extra = [i for i in range(len(right.columns)) if i != i2]
        index: dict[Any, list[list[Any]]] = {}
        for row in right.data:
            index.setdefault(_hashable(row[i2]), []).append(row)
        rows = [
            [*row, *(match[i] for i in extra)]
            for row in left.data
            for match in index.get(_hashable(row[i1]), [])
        ]
        return Table(columns=[*left.columns, *(right.columns[i] for i in extra)], data=rows)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JoinedTable) and (self.table1, self.table2, self.join_key) == (
            other.table1,
            other.table2,
            other.join_key,
        )

    def __repr__(self) -> str:
        return f"JoinedTable(join_key={self.join_key!r})"


class PartitionedTable:
    """A table made of the ``*.table.json`` tables under ``parts_path`` in an artifact (W&B's
    ``PartitionedTable``): read back, ``parts`` holds them in path order and iterating gives the
    rows of each in turn."""

    def __init__(self, parts_path: str) -> None:
        if not isinstance(parts_path, str) or not parts_path.strip("/"):
            raise ValidationError("parts_path must name a directory of tables in the artifact")
        self.parts_path = parts_path.strip("/")
        self.parts: list[Table] = []

    @property
    def columns(self) -> list[str]:
        return list(self.parts[0].columns) if self.parts else []

    @property
    def data(self) -> list[list[Any]]:
        return [row for part in self.parts for row in part.data]

    def iterrows(self) -> Iterator[tuple[int, list[Any]]]:
        return iter(enumerate(self.data))

    def __iter__(self) -> Iterator[list[Any]]:
        return iter(self.data)

    def __len__(self) -> int:
        return sum(len(p.data) for p in self.parts)

    def __repr__(self) -> str:
        return f"PartitionedTable(parts_path={self.parts_path!r}, parts={len(self.parts)})"


def _hashable(value: Any) -> Any:
    return repr(value) if isinstance(value, (list, dict)) else value


def table_entry(name: str) -> str:
    return name if name.endswith(TABLE_SUFFIX) else name + TABLE_SUFFIX


# -- in an artifact (Artifact.add / Artifact.get) -------------------------------------------------


def add_composite(
    art: Artifact, obj: JoinedTable | PartitionedTable, name: str, overwrite: bool
) -> ArtifactManifestEntry:
    """Add a JoinedTable (its Table objects added beside it) or a PartitionedTable, as W&B
    stores them: a JSON file naming the tables."""
    if isinstance(obj, JoinedTable):
        paths = []
        for i, table in enumerate((obj.table1, obj.table2), start=1):
            if isinstance(table, str):
                paths.append(table_entry(table))
            else:
                paths.append(art.add(table, f"{name}.table{i}", overwrite).path)
        payload: Any = {
            "_type": "joined-table",
            "table1": paths[0],
            "table2": paths[1],
            "join_key": obj.join_key,
        }
        path = name if name.endswith(JOINED_SUFFIX) else name + JOINED_SUFFIX
    else:
        payload = {"_type": "partitioned-table", "parts_path": obj.parts_path}
        path = name if name.endswith(PARTITIONED_SUFFIX) else name + PARTITIONED_SUFFIX
    data = json.dumps(payload, sort_keys=True).encode()
    staged = art._stage().stage_bytes(data)
    entry = ManifestEntry(normalize_entry_path(path), staged.digest, staged.size)
    return art._put(entry, True, None)


def get_composite(art: Artifact, name: str) -> JoinedTable | PartitionedTable | None:
    """The JoinedTable or PartitionedTable added as ``name`` (its tables read), or None."""
    for suffix in (JOINED_SUFFIX, PARTITIONED_SUFFIX):
        path = name if name.endswith(suffix) else name + suffix
        entry = art._contents.get(path)
        if entry is None:
            continue
        spec = json.loads(art._svc().read_blob(entry.digest))
        if spec.get("_type") == "joined-table":
            t1, t2 = art.get(spec["table1"]), art.get(spec["table2"])
            return JoinedTable(t1, t2, spec["join_key"])
        parts = PartitionedTable(spec["parts_path"])
        for e in art._contents.iter_prefix(parts.parts_path + "/"):
            if e.path.endswith(TABLE_SUFFIX):
                parts.parts.append(decode_object(e.path, art._svc().read_blob(e.digest)))
        return parts
    return None
