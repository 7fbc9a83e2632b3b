"""Search words against versions' descriptions (the ``version_words`` index), on SQLite and
PostgreSQL: every query finds exactly the versions a plain reading of the rules finds, whether
its words are looked up as sets of ids (rare words) or tested row by row (common words), and
only within the projects asked for (a key's grants), counted after that scope."""

from __future__ import annotations

import pathlib
import random
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import update

from cairn.catalog import Catalog
from cairn.catalog import _schema as schema
from cairn.catalog import _search as catalog_search
from cairn.core import ManifestEntry, digest_bytes
from cairn.core._records import VersionRecord
from cairn.core._search import (
    MetadataCondition,
    index_rows,
    parse_query,
    query_parts,
    text_words,
)
from cairn.service import CommitRequest, LocalService
from cairn.storage import LocalBlobStore
from tests._infra import Postgres

VOCABULARY = ["run", "Runner", "collection", "of", "base", "baseline", "Über", "x_1", "7", "70"]
QUERIES = [
    "run",  # a prefix: run, runner (any case)
    "run collection",  # two common words
    "RUN of",
    "base",
    "baseline run",
    "über",  # case folded beyond ASCII, the same on both catalogs
    "x_1",
    "7",  # 7 and 70, not 17
    "run-7",  # a word of two parts: both must begin words of the description
    '"of base"',
    "images",  # a collection's name (substring)
    "mag",
    "gold",  # an alias
    "nightly",  # a tag
    "web",  # a metadata value
    "run tag:nightly",
    "base alias:gold",
    "type:model run",
    "source:web of",
    "--",  # no part: matches no description (only names, tags, aliases, values)
    "nothing-like-this",
    "unn",  # not a word's beginning: found nowhere
    # Several conditions: each may drive the query, be tested against its set or by probes.
    "n>=20 source:web",
    "n<10 tag:nightly",
    "source:camera alias:gold",
    "n>40 run",
    "tag:nightly source:web of",
    "n<=30 n>5 base",
    # Two filters that never hold together: their intersection, read first, drives.
    "source:web source:camera",
    "source:web source:camera run",
    "tag:nightly n>=20 n<40",
]


def _store(catalog: Catalog, blobs: str) -> LocalService:
    svc = LocalService(catalog, LocalBlobStore(blobs), location=blobs, entity="me")
    rnd = random.Random(7)
    for i in range(48):
        data = f"{i}".encode()
        svc.store_blobs([(digest_bytes(data), data)])
        words = rnd.sample(VOCABULARY, rnd.randrange(0, 5))
        svc.commit(
            CommitRequest(
                entity="me",
                project=["alpha", "beta"][i % 2],
                name=["images", "net", "base-data"][i % 3],
                type="model" if i % 3 == 1 else "dataset",
                changes=[("f", ManifestEntry("f", digest_bytes(data), len(data)))],
                description=" ".join(words) + rnd.choice(["", ".", ", again"]),
                metadata={"source": rnd.choice(["web", "camera"]), "n": i},
                tags=["nightly"] if i % 5 == 0 else [],
                aliases=["gold"] if i in (5, 30) else [],
            )
        )
    return svc


def _matches(v: VersionRecord, word: str) -> bool:
    """The rule, read plainly: a word matches a version by its collection's name (substring,
    any case), an alias, tag or metadata value equal to it, or a description with a word
    beginning with each of the word's parts."""
    if word.lower() in v.name.lower() or word in v.aliases or word in v.tags:
        return True
    if any(text == word for _, text, _ in index_rows(v.metadata)):
        return True
    parts, words = query_parts(word), text_words(v.description)
    return bool(parts) and all(any(w.startswith(p) for w in words) for p in parts)


def _every(svc: LocalService) -> list[VersionRecord]:
    every = svc.catalog.read(
        lambda tx: tx.search.find(parse_query(""), project_ids=None, kinds=("version",), limit=200)
    ).versions
    assert len(every) == 48
    return every


def _holds(leaf: tuple[str, float | None] | None, cond: MetadataCondition) -> bool:
    if leaf is None:
        return False
    text, number = leaf
    if cond.op == "=":
        return text == cond.text or (number is not None and number == cond.number)
    if number is None or cond.number is None:
        return False
    return {
        ">": number > cond.number,
        ">=": number >= cond.number,
        "<": number < cond.number,
        "<=": number <= cond.number,
    }[cond.op]


def _expected(every: list[VersionRecord], query: str, projects: set[str] | None) -> list[str]:
    q = parse_query(query)
    out = []
    for v in every:  # newest first, as search orders them
        if projects is not None and v.project not in projects:
            continue
        if q.tags and not set(q.tags) <= set(v.tags):
            continue
        if q.aliases and not set(q.aliases) <= set(v.aliases):
            continue
        if q.types and v.type not in q.types:
            continue
        if q.names and v.name not in q.names:
            continue
        leaves = {k: (t, n) for k, t, n in index_rows(v.metadata)}
        if not all(_holds(leaves.get(m.key), m) for m in q.metadata):
            continue
        if all(_matches(v, w) for w in q.words):
            out.append(v.id)
    return out


def _found(
    svc: LocalService,
    query: str,
    dense: int,
    scope: list[int] | None,
    collection_id: int | None = None,
    offset: int = 0,
    limit: int = 200,
) -> Any:
    hits = svc.catalog.read(
        lambda tx: tx.search.find(
            parse_query(query),
            project_ids=scope,
            collection_id=collection_id,
            kinds=("version",),
            offset=offset,
            limit=limit,
            dense=dense,
        )
    )
    return [v.id for v in hits.versions], hits.totals["version"]


# Each way to read a query: every condition tested by probes (0); mixed (with 48 versions, a
# condition that may find fewer than 2 drives, fewer than 8 is a set, others are probes); the
# rarest drives and the others are sets (10**9).
DENSE = (0, 8, 10**9)


def _check(svc: LocalService) -> None:
    alpha = svc.catalog.read(lambda tx: tx.projects.ids_of([("me", "alpha")]))
    every = _every(svc)
    for query in QUERIES:
        for projects, scope in ((None, None), ({"alpha"}, alpha)):
            want = _expected(every, query, projects)
            for dense in DENSE:
                ids, total = _found(svc, query, dense, scope)
                assert (ids, total) == (want, len(want)), (query, projects, dense)
    # A collection's versions table: the same, within that collection.
    images = next(v.collection_id for v in every if v.name == "images")
    members = {v.id for v in every if v.collection_id == images}
    for query in QUERIES:
        want = [i for i in _expected(every, query, None) if i in members]
        for dense in DENSE:
            assert _found(svc, query, dense, None, images) == (want, len(want)), (query, dense)
    # The rules are not vacuous here: common words match most versions, rare ones a few.
    assert len(_expected(every, "run", None)) > 10
    assert 0 < len(_expected(every, "x_1 7", None)) < 10
    assert _expected(every, "unn", None) == []
    # A version whose TTL ran out is found no more, whichever way a query is read; one whose
    # TTL runs out later still is.
    gone, kept = _expected(every, "run", None)[:2]
    now = time.time()

    def expire(tx: Any) -> None:
        v = schema.versions.c
        tx.conn.execute(update(schema.versions).where(v.id == gone).values(expires_at=now - 1))
        tx.conn.execute(update(schema.versions).where(v.id == kept).values(expires_at=now + 3600))

    svc.catalog.write(expire)
    collection = next(v.collection_id for v in every if v.id == gone)
    for query in ("run", "source:web", "n>=0", "images run"):
        for dense in DENSE:
            for scope in (None, collection):
                ids, _ = _found(svc, query, dense, None, scope)
                assert gone not in ids, (query, dense, scope)
        if query == "run":
            assert kept in _found(svc, query, 0, None)[0]


def _sqlite(where: pathlib.Path) -> LocalService:
    catalog = Catalog(f"sqlite:///{where / 'catalog.sqlite'}")
    return LocalService(
        catalog, LocalBlobStore(str(where / "blobs")), location=str(where / "blobs"), entity="me"
    )


@pytest.fixture(scope="module")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """``_store``'s 48 commits on SQLite, made once for the module; each test gets a copy."""
    where = tmp_path_factory.mktemp("search-words")
    catalog = Catalog(f"sqlite:///{where / 'catalog.sqlite'}")
    _store(catalog, str(where / "blobs")).close()
    return where


@pytest.fixture
def sqlite_store(sqlite_template: pathlib.Path, tmp_path: pathlib.Path) -> Iterator[LocalService]:
    shutil.copytree(sqlite_template, tmp_path / "copy")
    svc = _sqlite(tmp_path / "copy")
    yield svc
    svc.close()


@pytest.mark.slow  # long: dealt out first (tests/conftest.py)
def test_words_find_the_same_versions_both_ways_on_sqlite(sqlite_store: LocalService) -> None:
    _check(sqlite_store)


@pytest.mark.slow  # long: dealt out first (tests/conftest.py)
def test_words_find_the_same_versions_both_ways_on_postgres(
    postgres: Postgres, tmp_path: pathlib.Path
) -> None:
    url = postgres.create_database("search_words").replace("postgresql://", "postgresql+psycopg://")
    svc = _store(Catalog(url), str(tmp_path / "blobs"))
    _check(svc)
    svc.close()


def test_pages_of_a_scope_and_rare_combinations_are_read_the_fast_ways(
    sqlite_store: LocalService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scope of a few collections has its pages read per collection (the first rows of each
    in the page's order, merged), and filters that rarely hold together are driven by their
    intersection; both find exactly what a plain reading finds, page by page, in both orders."""
    svc = sqlite_store
    every = _every(svc)
    alpha = svc.catalog.read(lambda tx: tx.projects.ids_of([("me", "alpha")]))
    used = {"per_collection": 0, "together": 0}
    per_collection, together = catalog_search._per_collection_page, catalog_search.rarely_together

    def counted_page(*args: Any, **kwargs: Any) -> Any:
        used["per_collection"] += 1
        return per_collection(*args, **kwargs)

    def counted_together(*args: Any, **kwargs: Any) -> Any:
        found = together(*args, **kwargs)
        used["together"] += found is not None
        return found

    monkeypatch.setattr(catalog_search, "_per_collection_page", counted_page)
    monkeypatch.setattr(catalog_search, "rarely_together", counted_together)
    for query in ("", "run of", "tag:nightly", "source:web source:camera"):
        want = _expected(every, query, {"alpha"})
        for descending in (True, False):
            ordered = want if descending else want[::-1]
            for dense in DENSE:
                for offset in range(0, len(want) + 4, 4):
                    hits = svc.catalog.read(
                        lambda tx, q=query, offset=offset, dense=dense, descending=descending: (
                            tx.search.find(
                                parse_query(q),
                                project_ids=alpha,
                                kinds=("version",),
                                descending=descending,
                                offset=offset,
                                limit=4,
                                dense=dense,
                            )
                        )
                    )
                    got = [v.id for v in hits.versions]
                    assert got == ordered[offset : offset + 4], (query, descending, dense, offset)
                    assert hits.totals["version"] == len(want), (query, dense, offset)
    assert used["per_collection"] > 0  # (the ways being checked are the ways taken)
    for query in ("source:web source:camera", "tag:nightly n>=20 n<40"):
        for dense in (8, 10**9):
            assert _found(svc, query, dense, None)[0] == _expected(every, query, None)
    assert used["together"] > 0


def test_a_changed_description_is_what_is_found(sqlite_store: LocalService) -> None:
    svc = sqlite_store
    target = _found(svc, "x_1", 0, None)[0][0]
    svc.update_version(target, description="renamed entirely")
    for dense in DENSE:
        assert target in _found(svc, "renamed", dense, None)[0]
        assert target not in _found(svc, "x_1", dense, None)[0]


def test_totals_are_counted_up_to_the_cap(
    sqlite_store: LocalService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past ``COUNT_CAP`` (1,000; 5 here) a total is a lower bound, one more than the cap or
    than the page asked for, whichever is more, whichever way the query is read."""
    every = _every(sqlite_store)
    monkeypatch.setattr(catalog_search, "COUNT_CAP", 5)
    # (type: and name: are counted another way than their page is read on SQLite.)
    for query in ("run", "source:web", "n>=3", "images", "type:dataset", "name:images"):
        want = _expected(every, query, None)
        assert len(want) > 12, query
        for dense in DENSE:
            assert _found(sqlite_store, query, dense, None, limit=3) == (want[:3], 6), query
            page = _found(sqlite_store, query, dense, None, offset=6, limit=4)
            assert page == (want[6:10], 11), (query, dense)
            last = _found(sqlite_store, query, dense, None, offset=len(want) - 2, limit=4)
            assert last == (want[-2:], len(want)), (query, dense)
