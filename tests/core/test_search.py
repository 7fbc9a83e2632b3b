"""Search queries, metadata paths and the metadata diff (cairn.core._search)."""

from __future__ import annotations

import pytest

from cairn.core._search import (
    MAX_TEXT_CHARS,
    MetadataCondition,
    diff_metadata,
    flatten_metadata,
    index_rows,
    parse_query,
)
from cairn.errors import ValidationError


def test_parse_query_words_prefixes_and_metadata() -> None:
    q = parse_query(
        'mnist type:dataset tag:nightly alias:best acc>0.9 split.train<=30 src:web "two words"'
    )
    assert q.words == ("mnist", "two words")
    assert q.types == ("dataset",) and q.tags == ("nightly",) and q.aliases == ("best",)
    assert q.metadata == (
        MetadataCondition("acc", ">", "0.9", 0.9),
        MetadataCondition("split.train", "<=", "30", 30.0),
        MetadataCondition("src", "=", "web", None),
    )
    assert q.has_version_filters and not q.is_empty
    assert parse_query("  ").is_empty
    quoted = parse_query('description:"a b c" name:x')
    assert quoted.metadata == (MetadataCondition("description", "=", "a b c", None),)
    assert quoted.names == ("x",)


@pytest.mark.parametrize(
    "text",
    ["acc>high", "acc<=nan", '"unclosed', "x" * 1001, " ".join(["w"] * 17), f"{'k' * 300}:1"],
)
def test_parse_query_refuses_what_it_cannot_answer(text: str) -> None:
    with pytest.raises(ValidationError):
        parse_query(text)


def test_flatten_and_index_rows() -> None:
    meta = {"a": {"b": 1, "c": {"d": "x"}}, "e": [1, 2], "f": {}, "g": True, "h": None}
    assert flatten_metadata(meta) == {
        "a.b": 1,
        "a.c.d": "x",
        "e": [1, 2],
        "f": {},
        "g": True,
        "h": None,
    }
    rows = {k: (t, n) for k, t, n in index_rows({**meta, "long": "y" * 1000, "inf": float("inf")})}
    assert rows["a.b"] == ("1", 1.0) and rows["a.c.d"] == ("x", None)
    assert (
        rows["e"] == ("[1,2]", None) and rows["g"] == ("true", None) and rows["h"] == ("null", None)
    )
    assert rows["long"] == ("y" * MAX_TEXT_CHARS, None) and rows["inf"][1] is None
    assert all(len(k) <= 256 for k, _, _ in index_rows({"k" * 300: 1, "ok": 2}))
    # A dotted key and a nested one with the same path are one row (the later value).
    assert index_rows({"a.b": 1, "a": {"b": 2}}) == [("a.b", "2", 2.0)]


def test_diff_metadata_by_dotted_path() -> None:
    old = {"acc": 0.5, "opt": {"name": "adam", "lr": 0.1}, "gone": 1}
    new = {"acc": 0.9, "opt": {"name": "adam", "lr": 0.01, "wd": 0}, "new": "x"}
    d = diff_metadata(old, new)
    assert d.added == [("new", "x"), ("opt.wd", 0)]
    assert d.removed == [("gone", 1)]
    assert d.changed == [("acc", 0.5, 0.9), ("opt.lr", 0.1, 0.01)]
    assert not diff_metadata(old, dict(old))
