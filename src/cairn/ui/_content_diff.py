"""What changed inside a modified file: unified lines for text, rows and columns for CSV and
``cairn.Table`` files, changed paths for JSON. Sizes are capped: beyond ``MAX_DIFF_BYTES`` a
file is "too large to diff" (its sizes and digests still say it changed)."""

from __future__ import annotations

import csv
import difflib
import io
import json
from dataclasses import dataclass, field
from typing import Any

from cairn.core import ManifestEntry, leaf_text
from cairn.ui._preview import TABLE_SUFFIX, extension, table_json

MAX_DIFF_BYTES = 1024 * 1024  # each side
MAX_DIFF_LINES = 400  # lines of a unified diff shown
MAX_DIFF_ROWS = 200  # changed rows of a table shown
MAX_DIFF_PATHS = 300  # changed JSON paths shown
MAX_DIFFED_FILES = 20  # modified files diffed on one page
TEXT_EXTENSIONS = {
    ".txt", ".md", ".rst", ".py", ".yaml", ".yml", ".toml", ".cfg", ".ini", ".log", ".sh",
    ".html", ".xml", ".js", ".css", ".sql", ".r", ".jsonl", ".ndjson", ".tex", "",
}  # fmt: skip


@dataclass
class RowChange:
    """A row of a table diff: ``added``, ``removed`` or ``changed`` (``cells`` pairs old/new)."""

    kind: str
    cells: list[tuple[str, str]]


@dataclass
class ContentDiff:
    """The diff of one modified file; ``kind`` is text, table, json, too_large or binary."""

    path: str
    kind: str
    lines: list[tuple[str, str]] = field(default_factory=list)  # (css class, line)
    columns: list[str] = field(default_factory=list)
    added_columns: list[str] = field(default_factory=list)
    removed_columns: list[str] = field(default_factory=list)
    rows: list[RowChange] = field(default_factory=list)
    paths: list[tuple[str, str, str, str]] = field(default_factory=list)  # kind, path, old, new
    cut: bool = False
    note: str = ""


def diffable(entry: ManifestEntry) -> bool:
    """Whether a file's content diff is worth trying (text, CSV, JSON, Table; not references)."""
    if entry.ref is not None:
        return False
    ext = extension(entry.path)
    return ext in (TABLE_SUFFIX, ".json", ".csv", ".tsv") or ext in TEXT_EXTENSIONS


def too_large(old: ManifestEntry, new: ManifestEntry) -> bool:
    return max(old.size or 0, new.size or 0) > MAX_DIFF_BYTES


def content_diff(path: str, old: bytes, new: bytes) -> ContentDiff:
    """The diff of two versions of the file at ``path`` (each at most ``MAX_DIFF_BYTES``)."""
    ext = extension(path)
    if ext == TABLE_SUFFIX:
        a, b = _table(old), _table(new)
        if a is not None and b is not None:
            return _table_diff(path, a, b)
    if ext == ".json":
        try:
            va, vb = json.loads(old), json.loads(new)
        except (ValueError, UnicodeDecodeError):
            pass
        else:
            return _json_diff(path, va, vb)
    ta, tb = _text(old), _text(new)
    if ta is None or tb is None:
        return ContentDiff(path, "binary", note="binary content: no line diff")
    if ext in (".csv", ".tsv"):
        delimiter = "\t" if ext == ".tsv" else ","
        try:
            ra = list(csv.reader(io.StringIO(ta), delimiter=delimiter))
            rb = list(csv.reader(io.StringIO(tb), delimiter=delimiter))
        except csv.Error:
            pass
        else:
            if ra and rb:
                return _table_diff(path, (ra[0], ra[1:]), (rb[0], rb[1:]))
    return _text_diff(path, ta, tb)


def _text(data: bytes) -> str | None:
    if b"\x00" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _text_diff(path: str, old: str, new: str) -> ContentDiff:
    out = ContentDiff(path, "text")
    lines = difflib.unified_diff(
        old.splitlines(), new.splitlines(), "old/" + path, "new/" + path, n=3, lineterm=""
    )
    for i, line in enumerate(lines):
        if i >= MAX_DIFF_LINES:
            out.cut = True
            break
        if line.startswith(("---", "+++")):
            css = "file"
        elif line.startswith("@@"):
            css = "hunk"
        else:
            css = {"+": "added", "-": "removed"}.get(line[:1], "same")
        out.lines.append((css, line))
    return out


Table = tuple[list[str], list[list[str]]]


def _cell(value: Any) -> str:
    return "" if value is None else leaf_text(value)


def _table(data: bytes) -> Table | None:
    table = table_json(data)
    if table is None:
        return None
    columns, rows = table
    return [_cell(c) for c in columns], [[_cell(v) for v in r] for r in rows if isinstance(r, list)]


def _table_diff(path: str, old: Table, new: Table) -> ContentDiff:
    """Rows matched in order (difflib on whole rows over the columns both sides have); a run of
    removed rows facing a run of added rows of the same length is a run of changed rows, with
    the changed cells marked."""
    (cols_a, rows_a), (cols_b, rows_b) = old, new
    common = [c for c in cols_b if c in cols_a]
    out = ContentDiff(
        path,
        "table",
        columns=list(cols_b) + [c for c in cols_a if c not in cols_b],
        added_columns=[c for c in cols_b if c not in cols_a],
        removed_columns=[c for c in cols_a if c not in cols_b],
    )
    ia, ib = {c: i for i, c in enumerate(cols_a)}, {c: i for i, c in enumerate(cols_b)}

    def get(row: list[str], index: dict[str, int], col: str) -> str:
        i = index.get(col)
        return row[i] if i is not None and i < len(row) else ""

    def key(row: list[str], index: dict[str, int]) -> tuple[str, ...]:
        return tuple(get(row, index, c) for c in common)

    def emit(kind: str, a: list[str] | None, b: list[str] | None) -> None:
        if len(out.rows) >= MAX_DIFF_ROWS:
            out.cut = True
            return
        cells = [
            (get(a, ia, c) if a is not None else "", get(b, ib, c) if b is not None else "")
            for c in out.columns
        ]
        out.rows.append(RowChange(kind, cells))

    matcher = difflib.SequenceMatcher(
        None, [key(r, ia) for r in rows_a], [key(r, ib) for r in rows_b], autojunk=False
    )
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        if op == "equal":  # same values in the common columns (new columns are listed above)
            continue
        if op == "replace" and a1 - a0 == b1 - b0:
            for a, b in zip(rows_a[a0:a1], rows_b[b0:b1], strict=True):
                emit("changed", a, b)
            continue
        for a in rows_a[a0:a1]:
            emit("removed", a, None)
        for b in rows_b[b0:b1]:
            emit("added", None, b)
    return out


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif isinstance(value, list) and value:
        for i, v in enumerate(value):
            _flatten(v, f"{prefix}[{i}]", out)
    else:
        out[prefix or "(root)"] = value


def _json_diff(path: str, old: Any, new: Any) -> ContentDiff:
    """A structural diff: the JSON paths (``a.b[2].c``) added, removed or changed."""
    a: dict[str, Any] = {}
    b: dict[str, Any] = {}
    _flatten(old, "", a)
    _flatten(new, "", b)
    out = ContentDiff(path, "json")
    for k in sorted(a.keys() | b.keys()):
        if len(out.paths) >= MAX_DIFF_PATHS:
            out.cut = True
            break
        if k not in a:
            out.paths.append(("added", k, "", leaf_text(b[k])))
        elif k not in b:
            out.paths.append(("removed", k, leaf_text(a[k]), ""))
        elif leaf_text(a[k]) != leaf_text(b[k]):
            out.paths.append(("changed", k, leaf_text(a[k]), leaf_text(b[k])))
    return out
