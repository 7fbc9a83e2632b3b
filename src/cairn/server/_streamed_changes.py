"""The changes of an upsert (or a finish) read from its JSON body a change at a time.

An upsert of 50,000 changes decoded whole is ~40 MiB of Python objects (lists, strings, entries)
held at once, and freed pages the allocator keeps. Here the body is kept as its text (the bytes
the client sent, ~150 bytes a change); its other fields are decoded as usual, and ``changes``
is a ``StreamedChanges``: a collection that decodes and checks its changes each time it is
iterated, so the checks and the catalog writes of the request take them in batches. The body's
JSON is the same as before: nothing changes for a client.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator
from typing import Any

from cairn.core import Change, ManifestEntry
from cairn.errors import ValidationError
from cairn.service import iter_changes

_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")
CHUNK = 5_000  # changes decoded at a time


def _bad(what: str) -> ValidationError:
    return ValidationError(f"bad request: body: {what}")


def _skip(text: str, at: int) -> int:
    return _SPACE.match(text, at).end()  # type: ignore[union-attr]  # matches the empty string


def _value(text: str, at: int) -> tuple[Any, int]:
    try:
        return _DECODER.raw_decode(text, at)
    except json.JSONDecodeError as e:
        raise _bad(f"invalid JSON at character {e.pos}: {e.msg}") from None


def _array_items(text: str, at: int) -> Iterator[tuple[Any, int]]:
    """The items of the JSON array that starts at ``text[at]`` (``[``), each with the offset
    just past it (past its value, before the ``,`` or ``]`` that follows)."""
    at = _skip(text, at + 1)
    if text.startswith("]", at):
        return
    while True:
        item, end = _value(text, at)
        yield item, end
        at = _skip(text, end)
        if text.startswith(",", at):
            at = _skip(text, at + 1)
        elif not text.startswith("]", at):
            raise _bad(f"invalid JSON at character {at}: expecting ',' or ']'")
        else:
            return


def _array_end(text: str, at: int) -> int:
    """Just past the JSON array that starts at ``text[at]``, its items decoded one at a time."""
    last = at + 1
    for _, last in _array_items(text, at):  # noqa: B007 (the last item's end is the one)
        pass
    return _skip(text, last) + 1  # past the "]"


class StreamedChanges(Collection[Change]):
    """The changes of a request body (``text``, its array starting at ``start``), checked as
    ``changes_from_json`` checks them once, when made; then decoded again, ``CHUNK`` at a time,
    each time they are iterated: never all of them at once."""

    def __init__(self, text: str, start: int) -> None:
        self._text = text
        self._chunks: list[tuple[int, int]] = []  # where each CHUNK of the array's items is
        self._count = 0
        for _ in iter_changes(self._rows(start)):
            self._count += 1

    def _rows(self, start: int) -> Iterator[Any]:
        """The array's items, one at a time, noting where each ``CHUNK`` of them is."""
        first = end = _skip(self._text, start + 1)
        n = 0
        for item, end in _array_items(self._text, start):
            yield item
            n += 1
            if n % CHUNK == 0:
                self._chunks.append((first, end))
                first = _skip(self._text, _skip(self._text, end) + 1)  # past the ","
        if n % CHUNK:
            self._chunks.append((first, end))

    def __iter__(self) -> Iterator[Change]:
        for first, end in self._chunks:
            for path, row in json.loads(f"[{self._text[first:end]}]"):
                yield path, None if row is None else ManifestEntry.from_row(row)

    def __len__(self) -> int:
        return self._count

    def __contains__(self, change: object) -> bool:
        return any(c == change for c in self)


def streamed_body(text: str, key: str = "changes") -> tuple[dict[str, Any], StreamedChanges]:
    """A JSON object's fields, decoded, but ``key`` (an empty list there, if present), and its
    ``key`` array streamed (empty if absent). Refuses what ``json.loads`` would refuse, and a
    ``key`` that is not an array."""
    fields: dict[str, Any] = {}
    start: int | None = None
    at = _skip(text, 0)
    if not text.startswith("{", at):
        raise _bad("expected a JSON object")
    at = _skip(text, at + 1)
    more = not text.startswith("}", at)
    at = at if more else at + 1
    while more:
        name, at = _value(text, at)
        if not isinstance(name, str):
            raise _bad(f"invalid JSON at character {at}: expecting a property name")
        at = _skip(text, at)
        if not text.startswith(":", at):
            raise _bad(f"invalid JSON at character {at}: expecting ':'")
        at = _skip(text, at + 1)
        if name == key:
            if not text.startswith("[", at):
                raise _bad(f"{key} must be a list of [path, entry or null]")
            start, at = at, _array_end(text, at)
            fields[name] = []  # (present: the fields are validated as before)
        else:
            fields[name], at = _value(text, at)
        at = _skip(text, at)
        if text.startswith(",", at):
            at = _skip(text, at + 1)
        elif text.startswith("}", at):
            at, more = at + 1, False
        else:
            raise _bad(f"invalid JSON at character {at}: expecting ',' or '}}'")
    if _skip(text, at) != len(text):
        raise _bad(f"invalid JSON at character {at}: extra data")
    if start is None:
        text, start = "[]", 0
    return fields, StreamedChanges(text, start)
