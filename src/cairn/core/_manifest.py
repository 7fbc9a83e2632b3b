"""Paged manifests: a version's entries as a content-defined tree of pages.

The format is specified in ``docs/design.md`` ("Manifest"); this module (entries, pages and their
encoding) and its four companions are its only implementation: ``_manifest_build`` (cut points,
``TreeBuilder``), ``_manifest_read`` (``PageReader``), ``_manifest_update`` (``update_tree``) and
``_manifest_diff`` (``diff_trees``). In short: entries sorted by path are cut into *leaf pages* after every entry whose path hash has
its top ``LEAF_BITS`` bits zero; references to pages are cut the same way into *index pages*, level
by level, until one page remains: the root. Every page is stored as a blob named by its digest, and
the root's digest is the version digest. Because the cut points depend only on the entries, equal
entry sets give equal pages and an equal root digest, whatever history built them.

Nothing here does I/O. Functions that read pages take ``load(digest) -> bytes``; functions that
write take ``put(digest, data)``; the caller decides where pages live and caches them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeAlias

from cairn.core._names import entry_path_problem
from cairn.errors import ManifestFormatError

LEAF_FORMAT = "cairn.manifest.leaf/1"
INDEX_FORMAT = "cairn.manifest.index/1"

Json: TypeAlias = Any
Load: TypeAlias = Callable[[str], bytes]
Put: TypeAlias = Callable[[str, bytes], None]


class ManifestEntry(NamedTuple):
    """One file of a version: where it goes (``path``) and what it is.

    ``digest`` is the content digest for stored files and checksummed references; for a reference
    recorded without a checksum it is the URI itself (as in W&B). ``ref`` is the URI of a reference
    (None for content kept in the store). ``extra`` holds JSON facts that pin a reference (ETag,
    version id) or user data; it is part of the entry's identity.
    """

    path: str
    digest: str
    size: int | None = None
    ref: str | None = None
    extra: Mapping[str, Json] | None = None

    def to_row(self) -> list[Json]:
        row: list[Json] = [self.path, self.digest, self.size]
        if self.ref is not None or self.extra:
            row.append(self.ref)
        if self.extra:
            row.append(dict(self.extra))
        return row

    @staticmethod
    def from_row(row: Json) -> ManifestEntry:
        if not isinstance(row, list) or not 3 <= len(row) <= 5:
            raise ManifestFormatError(f"malformed manifest entry {row!r}")
        path, digest, size = row[0], row[1], row[2]
        ref = row[3] if len(row) > 3 else None
        extra = row[4] if len(row) > 4 else None
        if not isinstance(path, str) or not isinstance(digest, str):
            raise ManifestFormatError(f"malformed manifest entry {row!r}")
        if size is not None and (not isinstance(size, int) or size < 0):
            raise ManifestFormatError(f"malformed size in manifest entry {row!r}")
        if ref is not None and not isinstance(ref, str):
            raise ManifestFormatError(f"malformed reference in manifest entry {row!r}")
        if extra is not None and not isinstance(extra, dict):
            raise ManifestFormatError(f"malformed extra in manifest entry {row!r}")
        return ManifestEntry(path, digest, size, ref, extra or None)

    def same_content(self, other: ManifestEntry) -> bool:
        return (
            self.digest == other.digest
            and self.size == other.size
            and self.ref == other.ref
            and (self.extra or None) == (other.extra or None)
        )


class PageRef(NamedTuple):
    """A reference to a page: its first path, digest, and the entries and bytes below it."""

    first_path: str
    digest: str
    entry_count: int
    size: int
    level: int  # 0 for a leaf page


@dataclass(frozen=True, slots=True)
class Leaf:
    entries: tuple[ManifestEntry, ...]

    @property
    def level(self) -> int:
        return 0


@dataclass(frozen=True, slots=True)
class Index:
    level: int
    children: tuple[PageRef, ...]


Node: TypeAlias = Leaf | Index
Change: TypeAlias = tuple[str, ManifestEntry | None]  # (path, new entry) or (path, None) to remove


# -- encoding ---------------------------------------------------------------------------------


def _dumps(obj: Json) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def encode_leaf(entries: Sequence[ManifestEntry]) -> bytes:
    rows = [
        [e.path, e.digest, e.size] if e.ref is None and not e.extra else e.to_row() for e in entries
    ]
    return _dumps({"format": LEAF_FORMAT, "entries": rows})


def encode_index(level: int, children: Sequence[PageRef]) -> bytes:
    rows = [[c.first_path, c.digest, c.entry_count, c.size] for c in children]
    return _dumps({"format": INDEX_FORMAT, "level": level, "children": rows})


def decode_node(data: bytes, *, check_paths: bool = True) -> Node:
    """Decode a page. Unknown formats and paths that could escape a directory are refused."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestFormatError(f"manifest page is not valid JSON: {exc}") from None
    fmt = doc.get("format") if isinstance(doc, dict) else None
    if fmt == LEAF_FORMAT:
        entries = tuple(ManifestEntry.from_row(r) for r in doc.get("entries", ()))
        if check_paths:
            for e in entries:
                problem = entry_path_problem(e.path)
                if problem is not None:
                    raise ManifestFormatError(
                        f"manifest refused: entry path {e.path[:200]!r} is unsafe ({problem})"
                    )
        return Leaf(entries)
    if fmt == INDEX_FORMAT:
        level = doc.get("level")
        rows = doc.get("children")
        if not isinstance(level, int) or level < 1 or not isinstance(rows, list) or not rows:
            raise ManifestFormatError("malformed manifest index page")
        children = []
        for r in rows:
            if not (isinstance(r, list) and len(r) == 4 and isinstance(r[0], str)):
                raise ManifestFormatError(f"malformed manifest index row {r!r}")
            children.append(PageRef(r[0], r[1], int(r[2]), int(r[3]), level - 1))
        return Index(level, tuple(children))
    if isinstance(fmt, str) and fmt.startswith("cairn.manifest."):
        raise ManifestFormatError(
            f"manifest page format {fmt!r} is not known to this version of cairn; upgrade cairn"
        )
    raise ManifestFormatError("blob is not a cairn manifest page")
