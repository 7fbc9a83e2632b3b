"""Objects stored in artifacts as readable files: ``cairn.Table`` and plain JSON values."""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

from cairn._extras import missing_extra
from cairn.core import normalize_entry_path
from cairn.errors import ValidationError

TABLE_SUFFIX = ".table.json"
JSON_SUFFIX = ".json"


class Table:
    """Rows and named columns (W&B's ``wandb.Table``), stored as ``<name>.table.json``.

    Build it from ``columns`` and ``data`` (a list of rows), or from a pandas ``dataframe``;
    ``get_dataframe()`` turns it back into one when pandas is installed.
    """

    def __init__(
        self,
        columns: Sequence[str] | None = None,
        data: Iterable[Sequence[Any]] | None = None,
        rows: Iterable[Sequence[Any]] | None = None,
        dataframe: Any = None,
        allow_mixed_types: bool = False,
    ) -> None:
        if dataframe is not None:
            columns = [str(c) for c in dataframe.columns]
            data = dataframe.itertuples(index=False, name=None)
        rows_in = data if data is not None else rows
        self.columns: list[str] = list(columns) if columns is not None else []
        self.data: list[list[Any]] = []
        if len(set(self.columns)) != len(self.columns):
            raise ValidationError(f"table columns must be unique, got {self.columns}")
        for row in rows_in or []:
            self.add_data(*row)

    def add_data(self, *values: Any) -> None:
        if self.columns and len(values) != len(self.columns):
            raise ValidationError(
                f"a row of this table needs {len(self.columns)} values ({', '.join(self.columns)}),"
                f" got {len(values)}"
            )
        self.data.append([_plain(v) for v in values])

    def add_column(self, name: str, data: Sequence[Any]) -> None:
        if name in self.columns:
            raise ValidationError(f"table already has a column {name!r}")
        if self.data and len(data) != len(self.data):
            raise ValidationError(f"column {name!r} needs {len(self.data)} values, got {len(data)}")
        self.columns.append(name)
        if not self.data:
            self.data = [[_plain(v)] for v in data]
        else:
            for row, value in zip(self.data, data, strict=True):
                row.append(_plain(value))

    def get_column(self, name: str) -> list[Any]:
        try:
            i = self.columns.index(name)
        except ValueError:
            raise KeyError(f"table has no column {name!r}; columns: {self.columns}") from None
        return [row[i] for row in self.data]

    def get_dataframe(self) -> Any:
        try:
            import pandas as pd  # type: ignore[import-untyped]
        except ImportError:
            raise missing_extra("get_dataframe()", "data", "pandas") from None
        return pd.DataFrame(self.data, columns=self.columns)

    def __len__(self) -> int:
        return len(self.data)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Table) and self.columns == other.columns and self.data == other.data
        )

    def __repr__(self) -> str:
        return f"Table(columns={self.columns}, rows={len(self.data)})"

    def to_json(self) -> dict[str, Any]:
        return {
            "_type": "table",
            "columns": self.columns,
            "data": self.data,
            "ncols": len(self.columns),
            "nrows": len(self.data),
        }


def _plain(value: Any) -> Any:
    if type(value).__name__ in ("NAType", "NaTType"):
        return None  # pandas' missing values
    if hasattr(value, "item") and callable(value.item) and getattr(value, "shape", None) == ():
        value = value.item()  # numpy scalar
    elif hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float) and math.isnan(value):
        return None  # a missing value (pandas writes NaN); JSON has no NaN
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()  # also pandas.Timestamp
    return value


def encode_object(obj: Any, name: str) -> tuple[str, bytes]:
    """The entry path and bytes for an object added with ``Artifact.add``."""
    if isinstance(obj, Table):
        path = name if name.endswith(TABLE_SUFFIX) else name + TABLE_SUFFIX
        payload: Any = obj.to_json()
    else:
        path = name if name.endswith(JSON_SUFFIX) else name + JSON_SUFFIX
        payload = obj
    try:
        data = json.dumps(payload, sort_keys=True, ensure_ascii=False, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            f"cannot add {type(obj).__name__} as {name!r}: it is not JSON-serialisable ({exc});"
            " add a cairn.Table or plain lists/dicts/numbers/strings"
        ) from None
    return normalize_entry_path(path), data


def object_paths(name: str) -> list[str]:
    """The entry paths an object added as ``name`` may have."""
    if name.endswith(JSON_SUFFIX):
        return [name]
    return [name + TABLE_SUFFIX, name + JSON_SUFFIX, name]


def decode_object(path: str, data: bytes) -> Any:
    value = json.loads(data)
    if path.endswith(TABLE_SUFFIX) and isinstance(value, dict) and value.get("_type") == "table":
        return Table(columns=value.get("columns"), data=value.get("data"))
    return value
