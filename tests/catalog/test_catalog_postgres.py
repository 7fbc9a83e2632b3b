"""The catalog conformance suite on a real PostgreSQL server, and the migrations there."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import inspect

from cairn.catalog import Catalog, Tx
from cairn.catalog._schema import PARTIAL_INDEXES, POSTGRES_INDEXES, SQLITE_KEYS, metadata
from cairn.errors import UsageError
from cairn.testing import CatalogTests
from tests._infra import Postgres, reset_database


@pytest.fixture(scope="module")
def pg_catalog_url(postgres: Postgres) -> str:
    url = postgres.create_database("catalog_tests").replace(
        "postgresql://", "postgresql+psycopg://"
    )
    Catalog(url).dispose()  # migrates
    return url


class TestPostgresCatalog(CatalogTests):
    @pytest.fixture
    def catalog(self, pg_catalog_url: str) -> Iterator[Catalog]:
        reset_database(pg_catalog_url.replace("+psycopg", ""), keep=("alembic_version",))
        catalog = Catalog(pg_catalog_url, create=False)
        yield catalog
        catalog.dispose()


def test_migrations_match_the_schema_on_postgres(pg_catalog_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    catalog = Catalog(pg_catalog_url, create=False)
    with catalog.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
        indexes = {ix["name"] for ix in inspect(conn).get_indexes("versions")}
        staged = {ix["name"] for ix in inspect(conn).get_indexes("staged_entries")}
    catalog.dispose()
    # The partial index and PostgreSQL's own index live only in the migrations (see _schema.py),
    # SQLite's own foreign keys only on SQLite; everything else matches.
    only_migrated = {*PARTIAL_INDEXES, *POSTGRES_INDEXES}
    assert [
        d
        for d in diff
        if not (d[0] == "remove_index" and d[1].name in only_migrated)
        and not (d[0] == "add_fk" and d[1].name in SQLITE_KEYS)
    ] == []
    assert set(PARTIAL_INDEXES) <= indexes
    assert set(POSTGRES_INDEXES) <= staged


def test_a_server_refuses_an_unmigrated_database(postgres: Postgres) -> None:
    url = postgres.create_database("unmigrated").replace("postgresql://", "postgresql+psycopg://")
    with pytest.raises(UsageError, match="cairn server migrate"):
        Catalog(url, create=False)


def test_staged_changes_come_in_code_point_order_under_a_linguistic_collation(
    postgres: Postgres,
) -> None:
    """A database whose collation sorts as people read (ICU en-US: ``a`` before ``B``, ``-``
    ignored) still hands a finish its staged changes in the order manifests sort them."""
    import psycopg
    from sqlalchemy import text

    from cairn.core import PENDING, ManifestEntry

    with psycopg.connect(postgres.url + "/postgres", autocommit=True) as conn:
        conn.execute('DROP DATABASE IF EXISTS "catalog_icu"')
        conn.execute(
            "CREATE DATABASE catalog_icu TEMPLATE template0 LOCALE_PROVIDER icu"
            " ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
        )
    catalog = Catalog(
        f"{postgres.url}/catalog_icu".replace("postgresql://", "postgresql+psycopg://")
    )
    paths = ["b", "B", "a", "_x", "a-b", "ab", "a/b", "\u00e9.txt", "Z/1", "z", "10", "9"]
    entry = ManifestEntry("", "sha256:" + "1" * 64, 1)

    def stage(tx: Tx) -> str:
        pid = tx.projects.id_of("me", "p", create=True)
        assert pid is not None
        cid, _ = tx.collections.lock(pid, "dist", "dataset", None)
        vid = tx.versions.insert(
            collection_id=cid,
            state=PENDING,
            index=None,
            digest=None,
            size=0,
            file_count=0,
            metadata={},
            description=None,
            created_by=None,
            distributed_id="g",
        )
        tx.pending.stage(vid, [(p, entry._replace(path=p)) for p in sorted(paths)], None)
        return vid

    vid = catalog.write(stage)
    own_order = catalog.read(
        lambda tx: [
            r[0] for r in tx.conn.execute(text("SELECT path FROM staged_entries ORDER BY path"))
        ]
    )
    assert own_order != sorted(paths)  # the database's own order is not the manifests'
    first = catalog.read(lambda tx: tx.pending.staged_batch(vid, None, 7))
    rest = catalog.read(lambda tx: tx.pending.staged_batch(vid, first[-1][0], 7))
    assert [p for p, _ in first + rest] == sorted(paths)
    catalog.dispose()


def _sent_arrays(catalog: Catalog, values: list[str]) -> tuple[set[str], list[object]]:
    """Insert ``values`` as the digests (and user names) of ``blob_uploads`` rows and read them
    back with ``tx.among``; the values read and the parameters sent to psycopg."""
    from sqlalchemy import event, select

    from cairn.catalog import _schema as s

    sent: list[object] = []

    def seen(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if isinstance(parameters, dict):
            sent.extend(parameters.values())

    def fn(tx: Tx) -> set[str]:
        rows = [{"user_name": v, "digest": v, "created_at": 1.5} for v in values]
        tx.insert_ignore(s.blob_uploads, rows)
        bu = s.blob_uploads.c
        mine = select(bu.user_name).where(tx.among(bu.digest, values), bu.created_at == 1.5)
        ids = select(s.projects.c.id).where(tx.among(s.projects.c.id, [1, 2, 3]))
        assert list(tx.conn.execute(ids)) == []
        return {str(r[0]) for r in tx.conn.execute(mine)}

    event.listen(catalog.engine, "before_cursor_execute", seen)
    try:
        return catalog.write(fn), sent
    finally:
        event.remove(catalog.engine, "before_cursor_execute", seen)


def test_arrays_go_to_postgresql_as_one_text_parameter(pg_catalog_url: str) -> None:
    """``tx.among`` / ``tx.insert_ignore`` bind an array of digests (strings, ints, floats) as
    one text literal, not a list psycopg dumps element by element in Python; each value comes
    back as itself, commas, braces, spaces and ``NULL`` included, and values the literal's quotes
    would not keep (``"``, ``\\``) go as a list."""
    reset_database(pg_catalog_url.replace("+psycopg", ""), keep=("alembic_version",))
    catalog = Catalog(pg_catalog_url, create=False)
    digests = [f"sha256:{i:064x}" for i in range(3000)]
    got, sent = _sent_arrays(catalog, digests)
    assert got == set(digests)
    assert not [p for p in sent if isinstance(p, (list, tuple))]
    literals = [p for p in sent if isinstance(p, str) and p.startswith("{")]
    assert len(literals) == 4  # user names, digests; among(digests); among(ids)
    assert '{"' + '","'.join(digests) + '"}' in literals and "{1,2,3}" in literals
    assert 1.5 in sent  # the time every row has: one value, not an array of 3,000 (PostgreSQL
    # reads each element of an array parameter)

    odd = ["a,b", "{c}", " d ", "NULL", "", "é", "x" * 80, "a'b;--"]
    got, sent = _sent_arrays(catalog, odd)
    assert got == set(odd) and not [p for p in sent if isinstance(p, list)]
    quoted = ['q"uote', "back\\slash", "a,b"]
    got, sent = _sent_arrays(catalog, quoted)
    assert got == set(quoted) and [p for p in sent if isinstance(p, list)]

    from cairn.catalog import _schema as s

    same = [{"user_name": "u", "digest": "d", "created_at": 2.0}] * 3  # every column the same
    catalog.write(lambda tx: tx.insert_ignore(s.blob_uploads, same))
    bu = s.blob_uploads.c
    rows = catalog.read(
        lambda tx: list(tx.conn.execute(s.blob_uploads.select().where(bu.user_name == "u")))
    )
    assert [tuple(r) for r in rows] == [("u", "d", 2.0)]
    catalog.dispose()


def test_small_blobs_are_indexed_by_one_copy_and_a_race_falls_back_to_an_insert(
    pg_catalog_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL the index rows of a batch go by one binary COPY (not an INSERT per row):
    bytes kept as they are, rows there already kept. A row another request indexed between the
    look-up and the COPY fails it (a unique violation): the COPY's savepoint is rolled back and
    the batch goes by an insert that keeps the rows there, in the same transaction."""
    from sqlalchemy import select

    from cairn.catalog import _blobs
    from cairn.catalog import _schema as s
    from cairn.core import digest_bytes

    reset_database(pg_catalog_url.replace("+psycopg", ""), keep=("alembic_version",))
    catalog = Catalog(pg_catalog_url, create=False)
    data = [bytes([i]) * (100 + i) + b'\x00\\,{}"' for i in range(50)]
    rows = [(digest_bytes(d), len(d), d) for d in data]
    big = digest_bytes(b"large")
    catalog.write(lambda tx: _blobs.insert_index(tx, rows[:10]))
    looked: list[int] = []
    real = _blobs._indexed

    def racing(tx: Tx, digests: list[str]) -> set[str]:
        looked.append(len(digests))
        # The first look-up misses the ten rows a "concurrent request" indexed already.
        return set() if len(looked) == 1 else real(tx, digests)

    monkeypatch.setattr(_blobs, "_indexed", racing)
    catalog.write(lambda tx: _blobs.insert_index(tx, [*rows, (big, 9 << 20, None)]))
    assert looked == [51]  # the COPY failed; the same transaction inserted the batch
    b = s.blobs.c
    kept = catalog.read(lambda tx: list(tx.conn.execute(select(b.digest, b.size, b.data))))
    catalog.dispose()
    assert {str(d): (n, None if x is None else bytes(x)) for d, n, x in kept} == {
        **{d: (n, x) for d, n, x in rows},
        big: (9 << 20, None),
    }


def test_a_keys_uploads_go_by_one_copy_and_rows_there_already_are_kept(
    pg_catalog_url: str,
) -> None:
    """On PostgreSQL a batch's uploads (``blob_uploads`` rows) go by one binary COPY, not an
    ``INSERT ... ON CONFLICT`` (fails on the old code: the insert ran); rows the key has already
    (an upload again, or another request's) make the COPY fail, and its savepoint rolled back,
    the rows go by that insert, in the same transaction: every row kept once."""
    from sqlalchemy import event, select

    from cairn.catalog import Uploads
    from cairn.catalog import _schema as s
    from cairn.core import digest_bytes

    reset_database(pg_catalog_url.replace("+psycopg", ""), keep=("alembic_version",))
    catalog = Catalog(pg_catalog_url, create=False)
    digests = [digest_bytes(bytes([i])) for i in range(30)]
    sent: list[str] = []

    def spy(*args: object) -> None:
        sent.append(str(args[2]))

    event.listen(catalog.engine, "before_cursor_execute", spy)
    Uploads(catalog).record_uploaded("key:a", digests[:20])
    assert not [q for q in sent if "blob_uploads" in q]  # the COPY goes by psycopg itself
    Uploads(catalog).record_uploaded("key:a", digests[10:])  # ten of them there already
    assert len([q for q in sent if q.startswith("INSERT INTO blob_uploads")]) == 1
    bu = s.blob_uploads.c
    rows = catalog.read(lambda tx: list(tx.conn.execute(select(bu.user_name, bu.digest))))
    catalog.dispose()
    assert sorted((str(u), str(d)) for u, d in rows) == [("key:a", d) for d in sorted(digests)]


def test_a_commits_grants_go_by_one_copy_and_grants_there_already_are_kept(
    pg_catalog_url: str,
) -> None:
    """On PostgreSQL the grants of a commit (``BlobGrants.add_readable``: the key's read check,
    then ``project_blobs`` rows) go by one binary COPY of the readable ones not granted yet,
    not an ``INSERT ... ON CONFLICT`` (fails on the old code: the insert ran). Those the
    project has already are found by the check's statement and left out: no COPY that fails
    (an ERROR in PostgreSQL's log per commit) and no fallback; the refused are not granted."""
    from sqlalchemy import event, select

    from cairn.catalog import BlobReader, Uploads
    from cairn.catalog import _schema as s
    from cairn.core import digest_bytes

    reset_database(pg_catalog_url.replace("+psycopg", ""), keep=("alembic_version",))
    catalog = Catalog(pg_catalog_url, create=False)
    digests = sorted(digest_bytes(bytes([i])) for i in range(30))
    stranger = digest_bytes(b"never uploaded")
    Uploads(catalog).record_uploaded("key:a", digests)
    reader = BlobReader("key:a", ())
    sent: list[str] = []

    def spy(*args: object) -> None:
        sent.append(str(args[2]))

    def grant(wanted: list[str]) -> list[str]:
        def fn(tx: Tx) -> list[str]:
            project = tx.projects.id_of("e", "p", create=True)
            assert project is not None
            return tx.grants.add_readable(project, wanted, reader)

        return catalog.write(fn)

    event.listen(catalog.engine, "before_cursor_execute", spy)
    assert grant(digests[:20]) == []
    assert not [q for q in sent if "INSERT INTO project_blobs" in q]  # the old: WITH ... INSERT
    assert grant([*digests[10:], stranger]) == [stranger]  # ten granted already
    assert not [q for q in sent if "INSERT INTO project_blobs" in q]  # no fallback either
    assert grant(digests) == []  # all there: nothing to copy
    pb = s.project_blobs.c
    rows = catalog.read(lambda tx: list(tx.conn.execute(select(pb.digest))))
    catalog.dispose()
    assert sorted(str(r[0]) for r in rows) == digests
