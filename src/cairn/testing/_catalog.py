"""CatalogTests: what the catalog must do on every SQL engine it supports."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from cairn.catalog import (
    HEAD_REVISION,
    ApiKeys,
    BlobReader,
    Catalog,
    PartRecord,
    Tx,
    UploadRow,
    Uploads,
    readable_blobs,
)
from cairn.core import (
    COMMITTED,
    LATEST,
    PENDING,
    Change,
    ManifestEntry,
    RunRecord,
    digest_from_raw,
)
from cairn.errors import TypeConflictError, UsageError


def _commit(tx: Tx, project: str, name: str, digest: str, type_name: str = "dataset") -> str:
    pid = tx.projects.id_of("me", project, create=True)
    assert pid is not None
    cid, idx = tx.collections.lock(pid, name, type_name, None)
    vid = tx.versions.insert(
        collection_id=cid,
        state=COMMITTED,
        index=idx,
        digest=digest,
        size=1,
        file_count=1,
        metadata={"k": [1, 2]},
        description="d",
        created_by=None,
    )
    tx.aliases.assign(cid, LATEST, vid)
    return vid


class CatalogTests:
    """Provide a ``catalog`` fixture returning an empty Catalog."""

    def test_schema_is_at_head(self, catalog: Catalog) -> None:
        from sqlalchemy import text

        with catalog.engine.connect() as conn:
            assert (
                conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
                == HEAD_REVISION
            )

    def test_versions_are_dense_and_resolvable(self, catalog: Catalog) -> None:
        def commit_n(i: int) -> Callable[[Tx], str]:
            return lambda tx: _commit(tx, "p", "ds", f"d{i}")

        ids = [catalog.write(commit_n(i)) for i in range(3)]
        recs = catalog.read(lambda tx: tx.versions.records(ids))
        assert [r.index for r in recs] == [0, 1, 2]
        assert recs[0].metadata == {"k": [1, 2]}

        def resolve(label: str | None) -> str | None:
            def fn(tx: Tx) -> str | None:
                pid = tx.projects.id_of("me", "p", create=False)
                assert pid is not None
                cid = tx.collections.id_of(pid, "ds")
                assert cid is not None
                return tx.versions.resolve(cid, label)

            return catalog.read(fn)

        assert resolve(None) == ids[2]
        assert resolve("latest") == ids[2]
        assert resolve("v1") == ids[1]
        assert resolve("v9") is None
        assert resolve("nope") is None

    def test_only_canonical_version_labels_name_versions(self, catalog: Catalog) -> None:
        """``v01`` is not a version label (core's rule): it names an alias, never v1. Aliases
        like it are refused now; a store may hold one from before."""
        ids = [catalog.write(lambda tx: _commit(tx, "p", "ds", "d0"))]
        ids.append(catalog.write(lambda tx: _commit(tx, "p", "ds", "d1")))

        def fn(tx: Tx) -> tuple[str | None, ...]:
            cid = tx.collections.id_of(tx.projects.id_of("me", "p", create=False) or 0, "ds")
            assert cid is not None
            tx.aliases.assign(cid, "v01", ids[0])
            return tuple(tx.versions.resolve(cid, label) for label in ("v01", "v1", "v001", "v+1"))

        assert catalog.write(fn) == (ids[0], ids[1], None, None)

    def test_type_conflict(self, catalog: Catalog) -> None:
        catalog.write(lambda tx: _commit(tx, "p", "model1", "d", "model"))
        with pytest.raises(TypeConflictError, match="'model'"):
            catalog.write(lambda tx: _commit(tx, "p", "model1", "d2", "dataset"))

    def test_aliases_move_and_latest_follows_deletes(self, catalog: Catalog) -> None:
        a = catalog.write(lambda tx: _commit(tx, "p", "ds", "da"))
        b = catalog.write(lambda tx: _commit(tx, "p", "ds", "db"))

        def alias(tx: Tx) -> None:
            rec = tx.versions.record(a)
            tx.aliases.assign(rec.collection_id, "best", a)
            tx.aliases.assign(rec.collection_id, "best", b)  # moves

        catalog.write(alias)
        rb = catalog.read(lambda tx: tx.versions.record(b))
        assert set(rb.aliases) == {"best", LATEST}
        assert catalog.read(lambda tx: tx.versions.record(a)).aliases == ()

        def delete_b(tx: Tx) -> None:
            for al in ("best", LATEST):
                tx.aliases.remove(rb.collection_id, al, b)
            tx.versions.set_state(b, "DELETED")
            tx.aliases.move_latest(rb.collection_id)

        catalog.write(delete_b)
        assert catalog.read(lambda tx: tx.versions.record(a)).aliases == (LATEST,)

    def test_concurrent_commits_get_unique_dense_numbers(self, catalog: Catalog) -> None:
        errors: list[BaseException] = []

        def work(n: int) -> None:
            try:
                for i in range(5):
                    digest = f"{n}-{i}"
                    catalog.write(lambda tx: _commit(tx, "p", "shared", digest))  # noqa: B023
            except BaseException as exc:  # noqa: BLE001 - collected and re-raised below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        indexes = catalog.read(
            lambda tx: [
                r.index
                for r in tx.versions.records(
                    tx.versions.ids(
                        tx.collections.id_of(
                            tx.projects.id_of("me", "p", create=False) or 0, "shared"
                        )
                        or 0
                    )
                )
            ]
        )
        assert sorted(i for i in indexes if i is not None) == list(range(20))

    def test_staged_changes_last_upsert_wins_and_pending_can_be_dropped(
        self, catalog: Catalog
    ) -> None:
        def stage(tx: Tx) -> str:
            pid = tx.projects.id_of("me", "p", create=True)
            assert pid is not None
            cid, _ = tx.collections.lock(pid, "dist", "dataset", None)
            return tx.pending.find(cid, "g1") or tx.versions.insert(
                collection_id=cid,
                state=PENDING,
                index=None,
                digest=None,
                size=0,
                file_count=0,
                metadata={},
                description=None,
                created_by=None,
                distributed_id="g1",
            )

        vid = catalog.write(stage)
        e1 = ManifestEntry("a.txt", digest_from_raw(b"\x11" * 32), 1)
        e2 = ManifestEntry("a.txt", digest_from_raw(b"\x22" * 32), 2)
        catalog.write(lambda tx: tx.pending.stage(vid, [("a.txt", e1)], None))
        catalog.write(lambda tx: tx.pending.stage(vid, [("a.txt", e2), ("b.txt", None)], None))
        staged = catalog.read(lambda tx: tx.pending.staged(vid))
        assert staged == [("a.txt", e2), ("b.txt", None)]
        assert catalog.write(stage) == vid  # one pending version per distributed id
        catalog.write(lambda tx: tx.pending.drop(vid))
        assert catalog.read(lambda tx: tx.pending.staged(vid)) == []
        done = catalog.write(lambda tx: _commit(tx, "p", "other", "x"))
        with pytest.raises(UsageError):
            catalog.write(lambda tx: tx.pending.drop(done))

    def test_staged_changes_are_read_in_code_point_order_a_batch_at_a_time(
        self, catalog: Catalog
    ) -> None:
        """As manifests sort paths (Python's ``str`` order), whatever the database's collation:
        upper case before lower, ``-`` before letters, accents after ``z``."""

        def pending(tx: Tx) -> str:
            pid = tx.projects.id_of("me", "p", create=True)
            assert pid is not None
            cid, _ = tx.collections.lock(pid, "dist", "dataset", None)
            return tx.versions.insert(
                collection_id=cid,
                state=PENDING,
                index=None,
                digest=None,
                size=0,
                file_count=0,
                metadata={},
                description=None,
                created_by=None,
                distributed_id="g1",
            )

        vid = catalog.write(pending)
        paths = ["b", "B", "a", "_x", "a-b", "ab", "a/b", "\u00e9.txt", "Z/1", "z", "10", "9"]
        entry = ManifestEntry("", digest_from_raw(b"\x11" * 32), 1)
        assert catalog.read(lambda tx: tx.pending.staged_generation(vid)) == 0
        for part in (paths[:5], paths[5:], []):
            changes = [(p, entry._replace(path=p)) for p in sorted(part)]
            catalog.write(lambda tx: tx.pending.stage(vid, changes, None))  # noqa: B023
        assert (
            catalog.read(lambda tx: tx.pending.staged_generation(vid)) == 2
        )  # nothing staged: no step
        read: list[str] = []
        after: str | None = None
        while True:
            batch = catalog.read(lambda tx: tx.pending.staged_batch(vid, after, 5))  # noqa: B023
            read += [p for p, _ in batch]
            if len(batch) < 5:
                break
            after = batch[-1][0]
        assert read == sorted(paths)
        assert [p for p, _ in catalog.read(lambda tx: tx.pending.staged(vid))] == sorted(paths)

    def test_staged_digests_come_a_batch_at_a_time_from_every_pending_version(
        self, catalog: Catalog
    ) -> None:
        """gc keeps what is staged: every stored blob a staged change names, of every pending
        version, read in batches (here of 3 rows); removals and references name none."""

        def pending(name: str) -> Callable[[Tx], str]:
            def fn(tx: Tx) -> str:
                pid = tx.projects.id_of("me", "p", create=True)
                assert pid is not None
                cid, _ = tx.collections.lock(pid, name, "dataset", None)
                return tx.versions.insert(
                    collection_id=cid,
                    state=PENDING,
                    index=None,
                    digest=None,
                    size=0,
                    file_count=0,
                    metadata={},
                    description=None,
                    created_by=None,
                    distributed_id="g1",
                )

            return fn

        def digest(i: int) -> str:
            return digest_from_raw(i.to_bytes(32, "big"))

        expected = []
        for n, name in enumerate(("one", "two")):
            vid = catalog.write(pending(name))
            changes: list[Change] = []
            for i in range(8):
                path = f"d/{i:02}-{n}"
                expected.append(digest(10 * n + i))
                changes.append((path, ManifestEntry(path, digest(10 * n + i), 1)))
            changes.append(("gone", None))
            ref = ManifestEntry("ref", digest(99), 1, ref="s3://bucket/ref")
            changes.append(("ref", ref))
            catalog.write(lambda tx: tx.pending.stage(vid, changes, None))  # noqa: B023
        found = catalog.read(lambda tx: list(tx.pending.staged_digests(batch=3)))
        assert sorted(found) == sorted(expected)

    def test_runs_and_lineage(self, catalog: Catalog) -> None:
        def fn(tx: Tx) -> tuple[str, int]:
            pid = tx.projects.id_of("me", "p", create=True)
            assert pid is not None
            pk = tx.runs.insert(
                pid,
                RunRecord(id="r1", entity="me", project="p", name="run one", config={"lr": 0.1}),
            )
            vid = _commit(tx, "p", "ds", "d")
            tx.lineage.add(vid, pk, "input")
            tx.lineage.add(vid, pk, "input")  # twice is once
            return vid, pk

        vid, pk = catalog.write(fn)
        users = catalog.read(lambda tx: tx.lineage.runs_of(vid, "input"))
        assert [(u.id, u.config) for u in users] == [("r1", {"lr": 0.1})]
        assert catalog.read(lambda tx: tx.lineage.versions_of(pk, "input")) == [vid]

    # -- the server's tables (cairn.catalog._access) --

    def test_api_keys_keep_hashes_grants_and_revocation(self, catalog: Catalog) -> None:
        keys = ApiKeys(catalog)
        keys.insert("k1", "alice", "h1", [("alice", "*", "write"), ("bob", "p", "read")])
        keys.insert("k2", "bob", "h2", [])
        got = keys.get("k1")
        assert got is not None and got.user == "alice" and got.secret_hash == "h1"
        assert sorted(got.grants) == [("alice", "*", "write"), ("bob", "p", "read")]
        assert not got.revoked and keys.get("nope") is None
        assert keys.revoke("k1") and not keys.revoke("k1")  # only an active key is revoked
        listed = {k.id: k for k in keys.all()}
        assert listed["k1"].revoked and not listed["k2"].revoked and listed["k2"].grants == ()

    def test_uploads_under_way_and_who_uploaded_what(self, catalog: Catalog) -> None:
        uploads = Uploads(catalog)
        d1, d2 = digest_from_raw(b"\x11" * 32), digest_from_raw(b"\x22" * 32)
        up = UploadRow("u1", "key:a", d1, 100, 10, "ref")
        uploads.insert(up)
        assert uploads.get("u1") == up and uploads.get("u2") is None
        assert uploads.latest_for("key:a", d1, 100) == up
        assert uploads.latest_for("key:b", d1, 100) is None
        assert uploads.ids() == {"u1"}
        assert uploads.begun_before(0.0) == [] and uploads.begun_before(4e9) == [up]
        uploads.delete("u1")
        assert uploads.ids() == set()
        uploads.record_uploaded("key:a", [d1, d1])
        uploads.record_uploaded("key:a", [d1])  # again: no error
        assert readable_blobs(catalog, "key:a", [], [d1, d2]) == {d1}
        assert readable_blobs(catalog, "key:b", [("*", "*")], [d1, d2]) == set()

    def test_a_grant_checked_against_the_blob_index_refuses_what_it_lacks(
        self, catalog: Catalog
    ) -> None:
        """``add_readable(indexed=True)``: a server whose catalog indexes its blobs (S3) checks
        a key's blobs are there in the statement that grants them; an uploaded blob whose index
        row is gone (swept) is refused as an unreadable one is, and not granted."""
        d1, d2, d3 = (digest_from_raw(bytes([n]) * 32) for n in (0x41, 0x42, 0x43))
        Uploads(catalog).record_uploaded("key:a", [d1, d2], index=[(d1, 3, b"abc")])
        reader = BlobReader("key:a", ())

        def grant(indexed: bool) -> list[str]:
            def fn(tx: Tx) -> list[str]:
                pid = tx.projects.id_of("e", "p" if indexed else "q", create=True)
                assert pid is not None
                return tx.grants.add_readable(pid, [d3, d2, d1, d1], reader, indexed=indexed)

            return catalog.write(fn)

        assert grant(indexed=False) == [d3]  # d2's upload is recorded: readable
        assert grant(indexed=True) == [d2, d3]  # but not in the index
        assert readable_blobs(catalog, "key:b", [("e", "q")], [d1, d2, d3]) == {d1, d2}
        assert readable_blobs(catalog, "key:b", [("e", "p")], [d1, d2, d3]) == {d1}

    def test_a_streamed_uploads_parts_are_recorded_replaced_and_go_with_it(
        self, catalog: Catalog
    ) -> None:
        uploads = Uploads(catalog)
        d = digest_from_raw(b"\x33" * 32)
        for name in ("u1", "u2"):
            uploads.insert(UploadRow(name, "key:a", d, 30 << 20, 8 << 20, "k\nid\nstream-parts"))
        assert uploads.parts("u1") == {}
        uploads.record_part("u1", 1, b"p" * 32, b"crc1", '"e1"')
        uploads.record_part("u1", 2, b"q" * 32, b"crc2", '"e2"')
        uploads.record_part("u1", 1, b"r" * 32, b"crc3", '"e3"')  # sent again: the newer record
        uploads.record_part("u2", 1, b"s" * 32, b"crc4", '"e4"')
        assert uploads.parts("u1") == {
            1: PartRecord(b"r" * 32, b"crc3", '"e3"'),
            2: PartRecord(b"q" * 32, b"crc2", '"e2"'),
        }
        uploads.delete("u1")  # its parts go with it, another upload's stay
        assert uploads.get("u1") is None and uploads.parts("u1") == {}
        assert uploads.parts("u2") == {1: PartRecord(b"s" * 32, b"crc4", '"e4"')}
        # A part's thread that records after its upload went (swept, completed by another
        # request, or dropped by a naming): nothing is recorded; what no upload owns (an
        # older server's records) the sweep drops.
        uploads.record_part("u1", 3, b"t" * 32, b"crc5", '"e5"')
        assert uploads.parts("u1") == {}
        from sqlalchemy import text

        orphan = text(
            "INSERT INTO upload_parts (upload_id, number, prefix_sha256, crc32, etag)"
            " VALUES ('u1', 3, :p, :c, 'e')"
        )
        catalog.write(lambda tx: tx.conn.execute(orphan, {"p": b"t", "c": b"c"}))
        assert uploads.drop_orphan_parts() == 1
        assert uploads.parts("u1") == {} and len(uploads.parts("u2")) == 1

    def test_an_upload_begun_before_its_digest_is_named_once(self, catalog: Catalog) -> None:
        """Its ``digest`` is ``''`` until named: then the digest and the backend's reference
        are written in, once; taking up an earlier upload of the blob moves that upload's part
        records to it and removes its row, in the same transaction."""
        uploads = Uploads(catalog)
        d = digest_from_raw(b"\x34" * 32)
        ref = "k\nid1\nstream-parts"
        uploads.insert(UploadRow("early", "key:a", d, 30 << 20, 8 << 20, ref))
        uploads.record_part("early", 1, b"p" * 32, b"crc1", '"e1"')
        for name in ("new", "other"):
            uploads.insert(UploadRow(name, "key:a", "", 30 << 20, 8 << 20, "unnamed-stream"))
        assert uploads.latest_for("key:a", d, 30 << 20) == uploads.get("early")
        assert uploads.name("new", d, ref, taking_up="early")
        assert uploads.get("early") is None and uploads.parts("early") == {}
        assert uploads.get("new") == UploadRow("new", "key:a", d, 30 << 20, 8 << 20, ref)
        assert uploads.parts("new") == {1: PartRecord(b"p" * 32, b"crc1", '"e1"')}
        assert not uploads.name("new", d, "k\nid2\nstream-parts")  # named already: unchanged
        assert uploads.get("new") == UploadRow("new", "key:a", d, 30 << 20, 8 << 20, ref)
        assert not uploads.name("gone", d, "k\nid3\nstream-parts")
        # Two namings taking up one earlier upload (the same key logging one file twice at
        # once): only the first takes it; the second changes nothing (review S1: both were
        # named with its ref, two streams fed one S3 multipart upload).
        uploads.insert(UploadRow("early2", "key:a", d, 30 << 20, 8 << 20, ref))
        uploads.insert(UploadRow("third", "key:a", "", 30 << 20, 8 << 20, "unnamed-stream"))
        assert uploads.name("third", d, ref, taking_up="early2")
        assert not uploads.name("other", d, ref, taking_up="early2")
        assert uploads.get("other") == UploadRow(
            "other", "key:a", "", 30 << 20, 8 << 20, "unnamed-stream"
        )
        assert not uploads.name("gone", d, ref, taking_up="new")  # not named: "new" stays
        assert uploads.get("new") is not None
        uploads.delete("third")
        assert uploads.name("other", d, "k\nid4\nstream-parts")  # nothing to take up
        assert uploads.parts("other") == {}
        uploads.delete("new")
        uploads.delete("other")
