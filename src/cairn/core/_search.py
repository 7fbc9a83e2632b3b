"""Search queries and metadata paths: parsing ``tag:best accuracy>0.9 mnist``, flattening nested
metadata to dotted paths, and the difference between two versions' metadata.

Pure: the catalog turns a parsed ``SearchQuery`` into SQL; the UI shows ``MetadataDiff``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cairn.errors import ValidationError

MAX_QUERY_CHARS = 1000
MAX_TERMS = 16
MAX_KEY_CHARS = 256  # metadata paths longer than this are not indexed
MAX_TEXT_CHARS = 256  # text values are indexed by their first 256 characters
MAX_INDEXED_LEAVES = 1000  # per version: a huge metadata dict is searchable by its first leaves
MAX_WORD_CHARS = 64  # description words are indexed (and looked up) by their first 64 characters
MAX_INDEXED_WORDS = 1000  # per version: a huge description is searchable by its first words
# A search counts each kind of hit up to this (and past the page asked for): a larger total is a
# lower bound, shown "1,000+" (counting a common word's 100,000 versions would cost a read of each).
COUNT_CAP = 1000

_WORD = re.compile(r"\w+")

# ``key>=3``, ``key<0.5``, ``key:value``; a key is a dotted metadata path.
_COMPARISON = re.compile(r"^([^\s:<>=]+?)(>=|<=|>|<|:)(.+)$")
PREFIXES = ("type", "tag", "alias", "name")


@dataclass(frozen=True, slots=True)
class MetadataCondition:
    """``key op value`` on a version's flattened metadata; ``op`` is ``=``, ``>``, ``>=``, ``<``
    or ``<=``. ``number`` is the value as a number when it reads as one."""

    key: str
    op: str
    text: str
    number: float | None


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A parsed query: free ``words`` (all must match, in any searchable field) and filters."""

    words: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    metadata: tuple[MetadataCondition, ...] = ()

    @property
    def has_version_filters(self) -> bool:
        """Whether only versions can match (tags, aliases and metadata belong to versions)."""
        return bool(self.tags or self.aliases or self.metadata)

    @property
    def is_empty(self) -> bool:
        return not (
            self.words or self.types or self.tags or self.aliases or self.names or self.metadata
        )


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _tokens(text: str) -> list[str]:
    """Words separated by white space; double quotes keep spaces (``description:"a b"``)."""
    out: list[str] = []
    current = ""
    quoted = False
    started = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
            started = True
        elif ch.isspace() and not quoted:
            if started:
                out.append(current)
            current, started = "", False
        else:
            current += ch
            started = True
    if quoted:
        raise ValidationError('the search has an unclosed quote ("); close it or remove it')
    if started:
        out.append(current)
    return [t for t in out if t]


def parse_query(text: str) -> SearchQuery:
    """Parse a search box's text. ``type:``, ``tag:``, ``alias:`` and ``name:`` filter on those
    fields; ``key:value``, ``key>n``, ``key>=n``, ``key<n``, ``key<=n`` on metadata (a dotted
    path such as ``split.train``); anything else is a word matched against names, descriptions,
    aliases, tags and metadata values."""
    if len(text) > MAX_QUERY_CHARS:
        raise ValidationError(f"the search is longer than {MAX_QUERY_CHARS} characters; shorten it")
    tokens = _tokens(text)
    if len(tokens) > MAX_TERMS:
        raise ValidationError(f"the search has more than {MAX_TERMS} terms; use fewer")
    words: list[str] = []
    found: dict[str, list[str]] = {p: [] for p in PREFIXES}
    conditions: list[MetadataCondition] = []
    for token in tokens:
        match = _COMPARISON.match(token)
        if match is None:
            words.append(token)
            continue
        key, op, value = match.groups()
        if op == ":" and key in found:
            found[key].append(value)
            continue
        if len(key) > MAX_KEY_CHARS:
            raise ValidationError(f"metadata key {key[:40]!r}... is too long to search")
        number = _number(value)
        if op != ":" and number is None:
            raise ValidationError(f"{token!r}: {op} compares numbers; {value!r} is not a number")
        conditions.append(MetadataCondition(key, "=" if op == ":" else op, value, number))
    return SearchQuery(
        words=tuple(words),
        types=tuple(found["type"]),
        tags=tuple(found["tag"]),
        aliases=tuple(found["alias"]),
        names=tuple(found["name"]),
        metadata=tuple(conditions),
    )


# -- metadata paths ---------------------------------------------------------------------------


def flatten_metadata(value: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings become dotted paths (``{"a": {"b": 1}}`` -> ``{"a.b": 1}``); lists and
    scalars are leaves. An empty mapping is a leaf of its own (``{}``)."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        path = f"{prefix}{key}"
        if isinstance(item, Mapping) and item:
            out.update(flatten_metadata(item, path + "."))
        else:
            out[path] = item
    return out


def leaf_text(value: Any) -> str:
    """How a metadata leaf reads: strings as they are, everything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def index_rows(metadata: Mapping[str, Any]) -> list[tuple[str, str, float | None]]:
    """(path, text, number) of each leaf, as the catalog's metadata index stores them: text cut
    to ``MAX_TEXT_CHARS``; numbers (not booleans) also as a float, so ``key>n`` compares them."""
    rows: list[tuple[str, str, float | None]] = []
    # flatten_metadata keeps one value per path: {"a.b": 1, "a": {"b": 2}} gives one "a.b".
    for key, value in flatten_metadata(metadata).items():
        if len(key) > MAX_KEY_CHARS:
            continue
        number = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value) if math.isfinite(value) else None
        rows.append((key, leaf_text(value)[:MAX_TEXT_CHARS], number))
        if len(rows) >= MAX_INDEXED_LEAVES:
            break
    return rows


def text_words(text: str | None) -> list[str]:
    """The distinct words of a description as the catalog's word index stores them: runs of
    letters, digits and ``_``, lower-cased, cut to ``MAX_WORD_CHARS``, the first
    ``MAX_INDEXED_WORDS``. A search word (``query_parts``) matches a description that has a word
    beginning with each of its parts."""
    out: dict[str, None] = {}
    for match in _WORD.finditer((text or "").lower()):
        out[match.group()[:MAX_WORD_CHARS]] = None
        if len(out) >= MAX_INDEXED_WORDS:
            break
    return list(out)


def query_parts(word: str) -> list[str]:
    """The parts of a search word that are looked up in the word index: ``images-07`` has two
    (``images``, ``07``); ``--`` has none (it then matches no description)."""
    return list(dict.fromkeys(m.group()[:MAX_WORD_CHARS] for m in _WORD.finditer(word.lower())))


def prefix_end(prefix: str) -> str | None:
    """The least string above every string that begins with ``prefix`` (code point order), so a
    prefix is a range ``prefix <= w < prefix_end(prefix)`` an index answers on SQLite and
    PostgreSQL alike; None when there is none (a prefix of U+10FFFF only)."""
    chars = list(prefix)
    while chars:
        last = ord(chars.pop()) + 1
        if 0xD800 <= last <= 0xDFFF:  # surrogates are not characters
            last = 0xE000
        if last <= 0x10FFFF:
            return "".join(chars) + chr(last)
    return None


@dataclass(frozen=True, slots=True)
class MetadataDiff:
    """Metadata paths added, removed and changed from an old version to a new one."""

    added: list[tuple[str, Any]] = field(default_factory=list)
    removed: list[tuple[str, Any]] = field(default_factory=list)
    changed: list[tuple[str, Any, Any]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)


def diff_metadata(old: Mapping[str, Any], new: Mapping[str, Any]) -> MetadataDiff:
    """The difference of two metadata dicts, path by path (nested values flattened)."""
    a, b = flatten_metadata(old), flatten_metadata(new)
    return MetadataDiff(
        added=[(k, b[k]) for k in sorted(b.keys() - a.keys())],
        removed=[(k, a[k]) for k in sorted(a.keys() - b.keys())],
        changed=[
            (k, a[k], b[k])
            for k in sorted(a.keys() & b.keys())
            if leaf_text(a[k]) != leaf_text(b[k])
        ],
    )
