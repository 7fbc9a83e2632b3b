from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.core import (
    INDEX_FORMAT,
    LEAF_FORMAT,
    Index,
    Leaf,
    ManifestEntry,
    PageReader,
    build_tree,
    decode_node,
    diff_trees,
    digest_bytes,
    encode_leaf,
    update_tree,
)
from cairn.errors import ManifestFormatError


class Pages(dict[str, bytes]):
    """An in-memory page store that counts writes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def put(self, digest: str, data: bytes) -> None:
        assert digest_bytes(data) == digest
        if digest not in self:
            self.writes += 1
        self[digest] = data


def entry(path: str, content: str = "x", size: int = 1) -> ManifestEntry:
    return ManifestEntry(path, digest_bytes(content.encode()), size)


def many(n: int) -> list[ManifestEntry]:
    return [entry(f"d{i // 100:03}/f{i:06}", str(i), i) for i in range(n)]


def test_empty_manifest_has_a_stable_digest() -> None:
    pages = Pages()
    root = build_tree([], pages.put)
    assert root.entry_count == 0 and root.size == 0
    assert root.digest == build_tree([], Pages().put).digest


def test_large_manifest_is_paged_and_readable() -> None:
    pages = Pages()
    entries = many(20_000)
    root = build_tree(entries, pages.put)
    reader = PageReader(pages.__getitem__)
    assert root.entry_count == 20_000 and root.size == sum(range(20_000))
    assert root.level >= 1 and len(pages) > 20
    assert reader.get(root.digest, "d050/f005000") == entries[5000]
    assert reader.get(root.digest, "d050/f005000x") is None
    assert reader.get(root.digest, "a") is None
    assert list(reader.iter_from(root.digest)) == entries
    assert [e.path for e in reader.iter_prefix(root.digest, "d007/")] == [
        e.path for e in entries[700:800]
    ]
    leaves = reader.leaves(root.digest)
    assert sum(r.entry_count for r in leaves) == 20_000


def test_same_entries_same_digest_whatever_the_history() -> None:
    pages = Pages()
    entries = many(5000)
    direct = build_tree(entries, pages.put)
    reader = PageReader(pages.__getitem__)
    half = build_tree(entries[::2], pages.put)
    grown = update_tree(reader, half.digest, [(e.path, e) for e in entries[1::2]], pages.put)
    assert grown.digest == direct.digest


def test_an_incremental_change_rewrites_few_pages() -> None:
    pages = Pages()
    entries = many(50_000)
    root = build_tree(entries, pages.put)
    reader = PageReader(pages.__getitem__)
    before = pages.writes
    changes = [
        ("d100/new", entry("d100/new")),
        ("d200/f020000", None),
        ("d300/f030000", entry("d300/f030000", "changed")),
    ]
    new = update_tree(reader, root.digest, sorted(changes), pages.put)
    assert new.entry_count == 50_000
    assert pages.writes - before <= 12  # a few leaves plus the index pages above them
    diff = diff_trees(reader, root.digest, new.digest)
    assert [e.path for e in diff.added] == ["d100/new"]
    assert [e.path for e in diff.removed] == ["d200/f020000"]
    assert [(a.path, b.digest) for a, b in diff.modified] == [
        ("d300/f030000", digest_bytes(b"changed"))
    ]


def test_unknown_or_bad_pages_are_refused() -> None:
    with pytest.raises(ManifestFormatError, match="upgrade cairn"):
        decode_node(json.dumps({"format": "cairn.manifest.leaf/9", "entries": []}).encode())
    with pytest.raises(ManifestFormatError):
        decode_node(b"not json")
    with pytest.raises(ManifestFormatError):
        decode_node(b'{"hello": 1}')
    evil = json.dumps(
        {"format": LEAF_FORMAT, "entries": [["../../etc/passwd", "sha256:" + "0" * 64, 1]]}
    )
    with pytest.raises(ManifestFormatError, match="unsafe"):
        decode_node(evil.encode())
    assert isinstance(decode_node(encode_leaf([entry("ok")])), Leaf)


def test_formats_are_named_in_pages() -> None:
    pages = Pages()
    root = build_tree(many(3000), pages.put)
    node = decode_node(pages[root.digest])
    assert isinstance(node, Index)
    assert json.loads(pages[root.digest])["format"] == INDEX_FORMAT


def test_entries_must_be_sorted_and_unique() -> None:
    with pytest.raises(ValueError, match="sorted"):
        build_tree([entry("b"), entry("a")], Pages().put)
    with pytest.raises(ValueError, match="sorted"):
        build_tree([entry("a"), entry("a")], Pages().put)


def test_references_and_extra_round_trip() -> None:
    pages = Pages()
    e = ManifestEntry("r", "sha256:" + "a" * 64, None, "file:///x", {"etag": "1"})
    root = build_tree([e], pages.put)
    assert PageReader(pages.__getitem__).get(root.digest, "r") == e


paths = st.text(alphabet="abcdef/", min_size=1, max_size=8).filter(
    lambda p: not p.startswith("/") and not p.endswith("/") and "//" not in p
)
ops = st.lists(
    st.tuples(st.sampled_from(["add", "remove", "overwrite"]), paths, st.integers(0, 3)),
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(
    initial=st.dictionaries(paths, st.integers(0, 3), max_size=80), steps=st.lists(ops, max_size=4)
)
def test_drafts_equal_building_from_scratch(
    initial: dict[str, int], steps: list[list[tuple[str, str, int]]]
) -> None:
    """Any sequence of add/remove/overwrite applied through drafts gives the manifest (and
    digest) of building the final set from scratch, and diff(a, b) applied to a gives b."""
    pages = Pages()
    reader = PageReader(pages.__getitem__)
    state = {p: entry(p, str(v)) for p, v in initial.items()}
    root = build_tree([state[p] for p in sorted(state)], pages.put)
    for step in steps:
        changes: dict[str, ManifestEntry | None] = {}
        for op, path, value in step:
            if op == "remove":
                if path in state or path in changes:
                    changes[path] = None
            else:
                changes[path] = entry(path, str(value))
        for path, new in changes.items():
            if new is None:
                state.pop(path, None)
            else:
                state[path] = new
        new_root = update_tree(reader, root.digest, sorted(changes.items()), pages.put)
        scratch = build_tree([state[p] for p in sorted(state)], Pages().put)
        assert new_root.digest == scratch.digest
        assert [e.path for e in reader.iter_from(new_root.digest)] == sorted(state)
        diff = diff_trees(reader, root.digest, new_root.digest)
        assert update_tree(reader, root.digest, diff.changes(), pages.put).digest == new_root.digest
        root = new_root


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.integers(0, 30_000), min_size=1, max_size=40, unique=True),
    st.integers(2_000, 30_000),
)
def test_diff_against_big_trees(removals: list[int], n: int) -> None:
    pages = Pages()
    reader = PageReader(pages.__getitem__)
    entries = many(n)
    a = build_tree(entries, pages.put)
    gone = {f"d{i // 100:03}/f{i:06}" for i in removals if i < n}
    b = build_tree([e for e in entries if e.path not in gone], pages.put)
    diff = diff_trees(reader, a.digest, b.digest)
    assert {e.path for e in diff.removed} == gone and not diff.added and not diff.modified


@settings(max_examples=80, deadline=None)
@given(
    initial=st.lists(st.integers(0, 2000), max_size=400, unique=True),
    steps=st.lists(
        st.lists(st.tuples(st.booleans(), st.integers(0, 2100), st.integers(0, 3)), max_size=40),
        min_size=1,
        max_size=4,
    ),
)
def test_deep_trees_update_like_scratch(
    initial: list[int], steps: list[list[tuple[bool, int, int]]]
) -> None:
    """With tiny pages (a cut every ~4 entries, every ~2 children) trees get many levels from
    few entries: incremental updates must still equal building from scratch, at every depth."""
    from cairn.core import _manifest_build as m

    saved = (m.LEAF_BITS, m.INDEX_BITS)
    m.LEAF_BITS, m.INDEX_BITS = 2, 1
    try:
        pages = Pages()
        reader = PageReader(pages.__getitem__)
        state = {f"k{i:05}": entry(f"k{i:05}", "0") for i in initial}
        root = build_tree([state[p] for p in sorted(state)], pages.put)
        for step in steps:
            changes: dict[str, ManifestEntry | None] = {}
            for add, key, value in step:
                path = f"k{key:05}"
                changes[path] = entry(path, str(value)) if add else None
            for path, new in changes.items():
                if new is None:
                    state.pop(path, None)
                else:
                    state[path] = new
            new_root = update_tree(reader, root.digest, sorted(changes.items()), pages.put)
            scratch = build_tree([state[p] for p in sorted(state)], Pages().put)
            assert (new_root.digest, new_root.level) == (scratch.digest, scratch.level)
            assert new_root.entry_count == len(state)
            root = new_root
    finally:
        m.LEAF_BITS, m.INDEX_BITS = saved


def test_incremental_updates_read_few_pages() -> None:
    pages = Pages()
    root = build_tree(many(100_000), pages.put)
    reads: list[str] = []

    def load(digest: str) -> bytes:
        reads.append(digest)
        return pages[digest]

    reader = PageReader(load)
    new = update_tree(reader, root.digest, [("d500/new", entry("d500/new"))], pages.put)
    assert new.entry_count == 100_001
    assert len(reads) <= 2 * (
        root.level + 1
    )  # the pages on one root-to-leaf path (and a neighbour)
