"""Directory listings over paged manifests: exact, paged, and reading few pages."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cairn.core import ManifestEntry, PageReader, build_tree, digest_bytes
from cairn.ui._tree import TreeItem, directory_end, list_directory

DIGEST = digest_bytes(b"x")


def tree(paths: list[str]) -> tuple[PageReader, str]:
    pages: dict[str, bytes] = {}
    entries = [ManifestEntry(p, DIGEST, len(p)) for p in sorted(set(paths))]
    root = build_tree(entries, pages.__setitem__)
    return PageReader(pages.__getitem__), root.digest


def brute_force(paths: list[str], prefix: str) -> list[tuple[str, bool, int, int]]:
    """(name, is_dir, size, files) of each child of ``prefix``, from every path."""
    out: list[tuple[str, bool, int, int]] = []
    for p in sorted(set(paths)):
        if not p.startswith(prefix):
            continue
        rest = p[len(prefix) :]
        name, is_dir = (rest.split("/", 1)[0], True) if "/" in rest else (rest, False)
        if out and out[-1][0] == name and out[-1][1] and is_dir:
            _, _, size, files = out[-1]
            out[-1] = (name, True, size + len(p), files + 1)
        else:
            out.append((name, is_dir, len(p), 1))
    return out


def all_pages(
    reader: PageReader, root: str, prefix: str, limit: int, max_pages: int
) -> Iterator[TreeItem]:
    start = ""
    for _ in range(10_000):
        page = list_directory(reader, root, prefix, start=start, limit=limit, max_pages=max_pages)
        assert len(page.items) <= limit
        yield from page.items
        if page.next_start is None:
            return
        assert page.items, "a page that is not the last must make progress"
        start = page.next_start
    raise AssertionError("listing never ended")


@contextlib.contextmanager
def tiny_pages() -> Iterator[None]:
    """Cut pages every ~8 entries and index pages every ~2 children: deep trees, few entries."""
    from cairn.core import _manifest_build as m

    saved = (m.LEAF_BITS, m.INDEX_BITS)
    m.LEAF_BITS, m.INDEX_BITS = 3, 1
    try:
        yield
    finally:
        m.LEAF_BITS, m.INDEX_BITS = saved


names = st.sampled_from(["a", "b", "a.b", "a-", "ab", "c", "é", "z0"])
paths_strategy = st.lists(
    st.lists(names, min_size=1, max_size=4).map("/".join), min_size=40, max_size=300
)


@pytest.mark.slow  # long: dealt out first (tests/conftest.py)
@settings(max_examples=120, deadline=None)
@given(
    paths=paths_strategy,
    prefix_parts=st.lists(names, max_size=2),
    limit=st.integers(1, 7),
    max_pages=st.integers(1, 6),
)
def test_listing_equals_brute_force_in_every_page_size(
    paths: list[str], prefix_parts: list[str], limit: int, max_pages: int
) -> None:
    # Paths like "a" and "a/b" may both exist: "a" is then listed as a file and as a directory.
    with tiny_pages():
        reader, root = tree(paths)
    prefix = "/".join(prefix_parts) + "/" if prefix_parts else ""
    expected = brute_force(paths, prefix)
    got = [
        (i.name, i.is_dir, i.size, i.files)
        for i in all_pages(reader, root, prefix, limit, max_pages)
    ]
    assert got == expected
    one_page = list_directory(reader, root, prefix, limit=10_000, max_pages=10_000)
    assert [(i.name, i.is_dir, i.size, i.files) for i in one_page.items] == expected
    assert one_page.next_start is None


def test_items_carry_paths_and_entries() -> None:
    reader, root = tree(["a/x.txt", "a/y/z.txt", "b.txt"])
    root_items = list_directory(reader, root).items
    assert [(i.path, i.is_dir) for i in root_items] == [("a/", True), ("b.txt", False)]
    assert root_items[1].entry is not None and root_items[1].entry.path == "b.txt"
    sub = list_directory(reader, root, "a/").items
    assert [(i.name, i.path) for i in sub] == [("x.txt", "a/x.txt"), ("y", "a/y/")]
    with pytest.raises(ValueError):
        list_directory(reader, root, "a")


def test_big_directories_are_counted_from_index_pages() -> None:
    """20 directories of 5,000 files: the root listing reads the pages holding a boundary
    between two directories (and index pages), not the ~200 leaves."""
    paths = [f"d{d:02}/f{i:05}.bin" for d in range(20) for i in range(5000)]
    reader, root = tree(paths)
    leaves = len(reader.leaves(root))
    listing = list_directory(reader, root)
    assert [i.name for i in listing.items] == [f"d{d:02}" for d in range(20)]
    assert all(i.files == 5000 and i.is_dir for i in listing.items)
    assert sum(i.size for i in listing.items) == sum(len(p) for p in paths)
    assert leaves > 150
    assert listing.pages_read < 50, (listing.pages_read, leaves)
    sub = list_directory(reader, root, "d07/", limit=500)
    assert len(sub.items) == 500 and sub.next_start == "d07/f00500.bin"
    assert sub.pages_read < 10


def test_a_page_ends_after_its_read_budget_and_resumes() -> None:
    paths = [f"d{d:04}/f{i}.bin" for d in range(300) for i in range(250)]
    reader, root = tree(paths)
    first = list_directory(reader, root, max_pages=20)
    assert first.pages_read <= 21
    assert 5 < len(first.items) < 300
    assert first.next_start == f"d{len(first.items):04}/"
    assert all(i.files == 250 for i in first.items)
    rest = list(all_pages(reader, root, "", 500, 20))
    assert [i.name for i in rest] == [f"d{d:04}" for d in range(300)]
    assert all(i.files == 250 for i in rest)


def test_directory_end() -> None:
    assert directory_end("") is None
    assert directory_end("a/") == "a0"
    assert all(p < "a0" for p in ("a/", "a/zzz", "a/\U0010ffff"))
