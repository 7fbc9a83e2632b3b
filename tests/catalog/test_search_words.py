"""Search words against versions' descriptions (the ``version_words`` index), on SQLite and
PostgreSQL: every query finds exactly the versions a plain reading of the rules finds, whether
its words are looked up as sets of ids (rare words) or tested row by row (common words), and
only within the projects asked for (a key's grants), counted after that scope."""

from __future__ import annotations

import pathlib
import random
from collections.abc import Iterator
from typing import Any

import pytest

from cairn.catalog import Catalog
from cairn.catalog import _search as catalog_search
from cairn.core import ManifestEntry, digest_bytes
from cairn.core._records import VersionRecord
from cairn.core._search import index_rows, parse_query, query_parts, text_words
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
        lambda tx: catalog_search.search(
            tx, parse_query(""), project_ids=None, kinds=("version",), limit=200
        )
    ).versions
    assert len(every) == 48
    return every


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
        leaves = {k: t for k, t, _ in index_rows(v.metadata)}
        if any(leaves.get(m.key) != m.text for m in q.metadata):
            continue
        if all(_matches(v, w) for w in q.words):
            out.append(v.id)
    return out


def _found(svc: LocalService, query: str, dense: int, scope: list[int] | None) -> Any:
    hits = svc.catalog.read(
        lambda tx: catalog_search.search(
            tx, parse_query(query), project_ids=scope, kinds=("version",), limit=200, dense=dense
        )
    )
    return [v.id for v in hits.versions], hits.totals["version"]


def _check(svc: LocalService) -> None:
    alpha = svc.catalog.read(lambda tx: catalog_search.project_ids(tx, [("me", "alpha")]))
    every = _every(svc)
    for query in QUERIES:
        for projects, scope in ((None, None), ({"alpha"}, alpha)):
            want = _expected(every, query, projects)
            for dense in (0, 10**9):  # every word tested row by row; every word a set of ids
                ids, total = _found(svc, query, dense, scope)
                assert (ids, total) == (want, len(want)), (query, projects, dense)
    # The rules are not vacuous here: common words match most versions, rare ones a few.
    assert len(_expected(every, "run", None)) > 10
    assert 0 < len(_expected(every, "x_1 7", None)) < 10
    assert _expected(every, "unn", None) == []


@pytest.fixture
def sqlite_store(tmp_path: pathlib.Path) -> Iterator[LocalService]:
    svc = _store(Catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}"), str(tmp_path / "blobs"))
    yield svc
    svc.close()


def test_words_find_the_same_versions_both_ways_on_sqlite(sqlite_store: LocalService) -> None:
    _check(sqlite_store)


def test_words_find_the_same_versions_both_ways_on_postgres(
    postgres: Postgres, tmp_path: pathlib.Path
) -> None:
    url = postgres.create_database("search_words").replace("postgresql://", "postgresql+psycopg://")
    svc = _store(Catalog(url), str(tmp_path / "blobs"))
    _check(svc)
    svc.close()


def test_a_changed_description_is_what_is_found(sqlite_store: LocalService) -> None:
    svc = sqlite_store
    target = _found(svc, "x_1", 0, None)[0][0]
    svc.update_version(target, description="renamed entirely")
    for dense in (0, 10**9):
        assert target in _found(svc, "renamed", dense, None)[0]
        assert target not in _found(svc, "x_1", dense, None)[0]
