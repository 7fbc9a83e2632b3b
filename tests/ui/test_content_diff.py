"""Content diffs of modified files: text, CSV, cairn.Table and JSON (cairn.ui._content_diff)."""

from __future__ import annotations

import json

from cairn.core import ManifestEntry
from cairn.ui._content_diff import (
    MAX_DIFF_BYTES,
    MAX_DIFF_LINES,
    content_diff,
    diffable,
    too_large,
)


def test_text_is_a_unified_diff() -> None:
    d = content_diff("notes.txt", b"a\nb\nc\n", b"a\nB\nc\nd\n")
    assert d.kind == "text"
    assert (
        ("removed", "-b") in d.lines and ("added", "+B") in d.lines and ("added", "+d") in d.lines
    )
    assert d.lines[0] == ("file", "--- old/notes.txt") and not d.cut
    long = content_diff("x.log", b"", "".join(f"{i}\n" for i in range(1000)).encode())
    assert long.cut and len(long.lines) == MAX_DIFF_LINES


def test_csv_rows_and_columns() -> None:
    old = b"id,label\n1,cat\n2,dog\n3,cow\n"
    new = b"id,label,score\n1,cat,0.9\n2,bird,0.5\n4,emu,0.1\n"
    d = content_diff("labels.csv", old, new)
    assert d.kind == "table"
    assert d.added_columns == ["score"] and d.removed_columns == []
    kinds = [(r.kind, r.cells) for r in d.rows]
    # Row 1 has the same common values (only the new column): not listed.
    assert ("changed", [("2", "2"), ("dog", "bird"), ("", "0.5")]) in kinds
    assert ("changed", [("3", "4"), ("cow", "emu"), ("", "0.1")]) in kinds
    assert all(cells[0] != ("1", "1") for _, cells in kinds)


def test_table_rows_added_and_removed() -> None:
    def table(rows: list[list[object]]) -> bytes:
        return json.dumps({"_type": "table", "columns": ["a", "b"], "data": rows}).encode()

    d = content_diff(
        "t.table.json", table([[1, "x"], [2, "y"]]), table([[1, "x"], [2, "y"], [3, "z"]])
    )
    assert d.kind == "table" and [(r.kind, r.cells) for r in d.rows] == [
        ("added", [("", "3"), ("", "z")])
    ]
    removed = content_diff("t.table.json", table([[1, "x"], [2, "y"]]), table([[2, "y"]]))
    assert [r.kind for r in removed.rows] == ["removed"]


def test_json_is_structural() -> None:
    old = {"a": 1, "b": {"c": [1, 2]}, "gone": True}
    new = {"a": 2, "b": {"c": [1, 3, 4]}, "new": None}
    d = content_diff("x.json", json.dumps(old).encode(), json.dumps(new, indent=4).encode())
    assert d.kind == "json"
    assert d.paths == [
        ("changed", "a", "1", "2"),
        ("changed", "b.c[1]", "2", "3"),
        ("added", "b.c[2]", "", "4"),
        ("removed", "gone", "true", ""),
        ("added", "new", "", "null"),
    ]
    # Re-formatting alone changes nothing.
    assert (
        content_diff("x.json", json.dumps(old).encode(), json.dumps(old, indent=2).encode()).paths
        == []
    )


def test_binary_and_size_caps() -> None:
    assert content_diff("w.txt", b"\x00\x01", b"\x00\x02").kind == "binary"
    small = ManifestEntry("a.txt", "sha256:" + "0" * 64, 10)
    big = ManifestEntry("a.txt", "sha256:" + "1" * 64, MAX_DIFF_BYTES + 1)
    assert too_large(small, big) and not too_large(small, small)
    assert diffable(small) and not diffable(ManifestEntry("m.pt", small.digest, 1))
    assert not diffable(ManifestEntry("r.txt", small.digest, 1, "s3://b/k"))
