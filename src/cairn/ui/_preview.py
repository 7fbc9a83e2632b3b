"""What a file's page shows of its content: an image, a table, CSV rows, JSON or text."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any

from cairn.core import ManifestEntry

TABLE_SUFFIX = ".table.json"  # what cairn.Table writes (cairn.sdk._objects)
MAX_TEXT_BYTES = 512 * 1024  # files above this are not read for a preview
MAX_TABLE_BYTES = 8 * 1024 * 1024
MAX_ROWS = 200
IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".bmp": "image/bmp",
}
# Magic numbers: an image is served inline only when its bytes say it is one (never SVG or HTML,
# which can carry script).
_MAGIC = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
    "image/bmp": (b"BM",),
}
MAX_IMAGE_BYTES = 32 * 1024 * 1024


@dataclass
class Preview:
    kind: str  # image, table, json, text, empty, reference, too_large, binary
    text: str = ""
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    total_rows: int = 0
    note: str = ""


def extension(path: str) -> str:
    name = path.rsplit("/", 1)[-1].lower()
    if name.endswith(TABLE_SUFFIX):
        return TABLE_SUFFIX
    dot = name.rfind(".")
    return name[dot:] if dot > 0 else ""


def image_type(path: str) -> str | None:
    return IMAGE_TYPES.get(extension(path))


def sniff_image(data: bytes, declared: str) -> bool:
    """Whether ``data`` starts like an image of the type its name declares."""
    return any(data.startswith(m) for m in _MAGIC.get(declared, ()))


def needs_content(entry: ManifestEntry) -> bool:
    """Whether a preview of ``entry`` reads its content (and it is small enough to)."""
    if entry.ref is not None or entry.size is None or image_type(entry.path):
        return False
    limit = MAX_TABLE_BYTES if extension(entry.path) in (TABLE_SUFFIX, ".json") else MAX_TEXT_BYTES
    return 0 < entry.size <= limit


def preview(entry: ManifestEntry, data: bytes | None) -> Preview:
    """The preview of ``entry``; ``data`` is its content when ``needs_content`` said so."""
    if entry.ref is not None:
        return Preview("reference", note="a reference: the content lives outside the store")
    if image_type(entry.path):
        if entry.size is not None and entry.size <= MAX_IMAGE_BYTES:
            return Preview("image")
        return Preview("too_large", note="image too large to show")
    if entry.size == 0:
        return Preview("empty")
    if data is None:
        return Preview("too_large", note="too large to preview; download it")
    ext = extension(entry.path)
    if ext == TABLE_SUFFIX:
        table = _table(data)
        if table is not None:
            return table
    if ext == ".json":
        try:
            value = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            pass
        else:
            return Preview("json", text=_cap(json.dumps(value, indent=2, ensure_ascii=False)))
    text = _text(data)
    if text is None:
        return Preview("binary", note="binary content; download it")
    if ext in (".csv", ".tsv"):
        return _csv(text, "\t" if ext == ".tsv" else ",")
    return Preview("text", text=text)


def _cap(text: str) -> str:
    if len(text) > MAX_TEXT_BYTES:
        return text[:MAX_TEXT_BYTES] + "\n… (cut)"
    return text


def _text(data: bytes) -> str | None:
    if b"\x00" in data[:8192]:
        return None
    try:
        return _cap(data.decode("utf-8"))
    except UnicodeDecodeError:
        return None


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def table_json(data: bytes) -> tuple[list[Any], list[Any]] | None:
    """A W&B table file's columns and rows (``{"_type": "table", "columns": [...], "data":
    [...]}``), as stored; None when ``data`` is not one."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict) or doc.get("_type") != "table":
        return None
    columns, rows = doc.get("columns"), doc.get("data")
    if not isinstance(columns, list) or not isinstance(rows, list):
        return None
    return columns, rows


def _table(data: bytes) -> Preview | None:
    table = table_json(data)
    if table is None:
        return None
    columns, rows = table
    shown = [[_cell(v) for v in row] for row in rows[:MAX_ROWS] if isinstance(row, list)]
    return Preview("table", columns=[_cell(c) for c in columns], rows=shown, total_rows=len(rows))


def _csv(text: str, delimiter: str) -> Preview:
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    rows: list[list[str]] = []
    total = 0
    try:
        for row in reader:
            total += 1
            if len(rows) <= MAX_ROWS:
                rows.append(row)
    except csv.Error:
        return Preview("text", text=text)
    if not rows:
        return Preview("empty")
    return Preview("table", columns=rows[0], rows=rows[1:], total_rows=total - 1)
