"""ServiceTests: the Service protocol's behaviour, for the embedded store and for a server."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import pytest

from cairn.core import LATEST, ManifestEntry, RunRecord, TreeBuilder, digest_bytes, encode_leaf
from cairn.errors import (
    ArtifactNotFoundError,
    ConflictError,
    DigestMismatchError,
    NotFoundError,
    TypeConflictError,
    UsageError,
    ValidationError,
)
from cairn.service import (
    CommitRequest,
    FinishRequest,
    ImportRequest,
    SearchRequest,
    Service,
    StageRequest,
)
from cairn.storage import SMALL_LIMIT


def _blob(service: Service, data: bytes, path: str) -> ManifestEntry:
    d = digest_bytes(data)
    service.store_blobs([(d, data)])
    return ManifestEntry(path, d, len(data))


def _commit(service: Service, entries: list[ManifestEntry], **kw: object) -> CommitRequest:
    return CommitRequest(
        entity="me",
        project="proj",
        name=str(kw.pop("name", "ds")),
        type=str(kw.pop("type", "dataset")),
        changes=sorted(((e.path, e) for e in entries), key=lambda c: c[0]),
        **kw,  # type: ignore[arg-type]
    )


def _pages(entries: list[ManifestEntry]) -> tuple[str, list[tuple[str, bytes]]]:
    pages: list[tuple[str, bytes]] = []
    root = TreeBuilder(lambda d, data: pages.append((d, data)))
    root.extend(entries)
    return root.finish().digest, pages


class ServiceTests:
    """Provide a ``service`` fixture returning a Service over an empty store."""

    def test_commit_of_a_client_written_manifest(self, service: Service) -> None:
        """``CommitRequest.manifest``: the SDK streams a large directory into manifest pages it
        stores as blobs; the store checks them page by page and applies changes on top."""
        blob = _blob(service, b"tiny", "x")
        entries = [ManifestEntry(f"d/{i:05}", blob.digest, 4) for i in range(3000)]
        root, pages = _pages(entries)
        assert len(pages) > 3  # several leaves and an index: the check reads page by page
        service.store_blobs(pages)
        extra = _blob(service, b"extra", "z.txt")
        result = service.commit(
            CommitRequest(
                entity="me",
                project="proj",
                name="ds",
                type="dataset",
                changes=[("d/00000", None), ("z.txt", extra)],
                manifest=root,
            )
        )
        assert result.created and result.version is not None
        assert result.version.file_count == 3000 and result.version.size == 2999 * 4 + 5
        # The same entries sent as a list make the same version (canonical pages, same digest).
        again = service.commit(_commit(service, [*entries[1:], extra]))
        assert again.version is not None and again.version.id == result.version.id
        plain = service.commit(dataclasses.replace(_commit(service, [], name="m"), manifest=root))
        assert plain.version is not None and plain.version.digest == root

    def test_client_written_manifests_are_checked(self, service: Service) -> None:
        blob = _blob(service, b"tiny", "x")
        # Paths of their own: a server's blob store may keep the pages of other tests.
        entries = [ManifestEntry(f"c/{i:05}", blob.digest, 4) for i in range(3000)]  # 7 cuts

        def commit(root: str, **kw: Any) -> Any:
            return service.commit(dataclasses.replace(_commit(service, []), manifest=root, **kw))

        # One page holding what cairn cuts into several: refused (its digest would differ from
        # the same entries committed any other way, and dedup would break).
        one = encode_leaf(entries)
        service.store_blobs([(digest_bytes(one), one)])
        with pytest.raises(ValidationError, match="cut"):
            commit(digest_bytes(one))
        unsorted = encode_leaf([entries[1], entries[0]])
        service.store_blobs([(digest_bytes(unsorted), unsorted)])
        with pytest.raises(ValidationError, match="sorted"):
            commit(digest_bytes(unsorted))
        unsafe = encode_leaf([ManifestEntry("../up", blob.digest, 4)])
        service.store_blobs([(digest_bytes(unsafe), unsafe)])
        with pytest.raises(ValidationError):
            commit(digest_bytes(unsafe))
        # A page not stored: refused, naming it.
        root, pages = _pages(entries)
        service.store_blobs(pages[1:])
        with pytest.raises(ValidationError, match=pages[0][0]):
            commit(root)
        with pytest.raises(ValidationError, match="not in the store"):
            commit(digest_bytes(b"no such page"))
        # Content the store lacks is reported missing, as for a list of changes.
        ghost = ManifestEntry("g.bin", digest_bytes(b"never uploaded"), 14)
        root, pages = _pages([ghost])
        service.store_blobs(pages)
        result = commit(root)
        assert result.version is None and result.missing == (ghost.digest,)
        v0 = service.commit(_commit(service, [entries[0]])).version
        assert v0 is not None
        root, pages = _pages(entries[:3])
        service.store_blobs(pages)
        with pytest.raises(ValidationError, match="not both"):
            commit(root, base_version_id=v0.id)
        assert [v.id for v in service.list_versions("me", "proj", "ds")] == [v0.id]

    def test_commit_resolve_and_dedup(self, service: Service) -> None:
        a = _blob(service, b"one", "a.txt")
        b = _blob(service, b"two", "dir/b.txt")
        first = service.commit(_commit(service, [a, b], aliases=["best"]))
        assert first.created and first.version is not None
        assert first.version.version == "v0" and first.version.file_count == 2
        assert set(first.version.aliases) == {"best", LATEST}
        again = service.commit(_commit(service, [b, a]))
        assert not again.created and again.version is not None
        assert again.version.id == first.version.id
        got = service.resolve("me", "proj", "ds", "best")
        assert got.digest == first.version.digest
        with pytest.raises(ArtifactNotFoundError):
            service.resolve("me", "proj", "ds", "v7")
        with pytest.raises(ArtifactNotFoundError):
            service.resolve("me", "proj", "nothing", None)

    def test_missing_blobs_are_reported_not_committed(self, service: Service) -> None:
        ghost = ManifestEntry("g.bin", digest_bytes(b"never uploaded"), 14)
        result = service.commit(_commit(service, [ghost]))
        assert result.version is None and result.missing == (ghost.digest,)
        with pytest.raises(ArtifactNotFoundError):
            service.resolve("me", "proj", "ds", None)

    def test_type_conflict(self, service: Service) -> None:
        e = _blob(service, b"m", "m.pt")
        service.commit(_commit(service, [e], name="net", type="model"))
        with pytest.raises(TypeConflictError):
            service.commit(_commit(service, [e], name="net", type="dataset"))

    def test_draft_changes_apply_to_base(self, service: Service) -> None:
        a, b, c = (_blob(service, x, p) for x, p in ((b"1", "a"), (b"2", "b"), (b"3", "c")))
        v0 = service.commit(_commit(service, [a, b])).version
        assert v0 is not None
        req = CommitRequest(
            entity="me",
            project="proj",
            name="ds",
            type="dataset",
            changes=[("a", None), ("c", c)],
            base_version_id=v0.id,
        )
        v1 = service.commit(req).version
        assert v1 is not None and v1.version == "v1" and v1.base_version_id == v0.id
        scratch = service.commit(_commit(service, [b, c])).version
        assert scratch is not None and scratch.id == v1.id  # same content, same digest

    def test_commit_with_expected_alias(self, service: Service) -> None:
        a, b, c = (_blob(service, x, p) for x, p in ((b"1", "a"), (b"2", "b"), (b"3", "c")))
        # None: the alias must not name a version yet (here the artifact does not even exist).
        v0 = service.commit(_commit(service, [a], aliases=["prod"], expect_alias=("prod", None)))
        assert v0.created and v0.version is not None
        with pytest.raises(ConflictError, match="prod"):
            service.commit(_commit(service, [b], expect_alias=("prod", None)))
        v1 = service.commit(_commit(service, [b], aliases=["prod"])).version  # another writer
        assert v1 is not None
        for stale in (("prod", v0.version.id), ("latest", v0.version.id)):
            with pytest.raises(ConflictError, match="nothing was committed"):
                service.commit(_commit(service, [c], aliases=["prod"], expect_alias=stale))
            # Identical content (no new version, only aliases) is refused all the same.
            with pytest.raises(ConflictError):
                service.commit(_commit(service, [a], aliases=["prod"], expect_alias=stale))
        assert [v.id for v in service.list_versions("me", "proj", "ds")] in (
            [v0.version.id, v1.id],
            [v1.id, v0.version.id],
        )
        assert service.resolve("me", "proj", "ds", "prod").id == v1.id
        assert not service.get_version(v0.version.id).aliases
        ok = service.commit(_commit(service, [c], aliases=["prod"], expect_alias=("prod", v1.id)))
        assert ok.created and ok.version is not None and ok.version.version == "v2"
        assert set(ok.version.aliases) == {"prod", LATEST}
        with pytest.raises(ValidationError):
            service.commit(_commit(service, [c], expect_alias=("v1", v1.id)))

    def test_distributed_stage_and_finish(self, service: Service) -> None:
        service.start_run(RunRecord(id="w1", entity="me", project="proj", name="w1"))
        service.start_run(RunRecord(id="w2", entity="me", project="proj", name="w2"))
        a1 = _blob(service, b"a-from-1", "a")
        a2 = _blob(service, b"a-from-2", "a")
        b = _blob(service, b"b", "b")
        common = {
            "entity": "me",
            "project": "proj",
            "name": "d",
            "type": "dataset",
            "distributed_id": "g",
        }
        p1 = service.stage(StageRequest(**common, changes=[("a", a1)], run_id="w1"))  # type: ignore[arg-type]
        p2 = service.stage(StageRequest(**common, changes=[("a", a2), ("b", b)], run_id="w2"))  # type: ignore[arg-type]
        assert p1.id == p2.id and p1.state == "PENDING"
        with pytest.raises(ArtifactNotFoundError):
            service.resolve("me", "proj", "d", None)
        assert service.list_versions("me", "proj", "d") == []
        assert [v.id for v in service.list_versions("me", "proj", "d", include_pending=True)] == [
            p1.id
        ]
        done = service.finish(FinishRequest(**common, changes=[], run_id="w1", aliases=["x"]))  # type: ignore[arg-type]
        assert done.version is not None and done.version.version == "v0"
        assert done.version.file_count == 2 and "x" in done.version.aliases
        writers = {r.id for r in service.version_runs(done.version.id, "writer")}
        assert writers == {"w1", "w2"}
        # An upsert after the commit starts a new pending version; the committed one is untouched.
        p3 = service.stage(StageRequest(**common, changes=[("b", b)]))  # type: ignore[arg-type]
        assert p3.id != done.version.id
        assert service.get_version(done.version.id).file_count == 2
        service.discard_pending(p3.id)
        assert [v.id for v in service.list_versions("me", "proj", "d", include_pending=True)] == [
            done.version.id
        ]

    def test_a_finish_sorts_staged_paths_as_a_commit_does(self, service: Service) -> None:
        """The staged changes come out of the catalog in the order manifests sort paths (code
        points, whatever the database's collation): the finished version is the one a commit
        of the same files makes."""
        paths = ["b", "B", "a", "_x", "a-b", "ab", "a/b", "\u00e9.txt", "Z/1", "z", "10", "9"]
        entries = [_blob(service, p.encode(), p) for p in paths]
        common = {
            "entity": "me",
            "project": "proj",
            "name": "d",
            "type": "dataset",
            "distributed_id": "order",
        }
        for part in (entries[:6], entries[6:]):
            changes = sorted(((e.path, e) for e in part), key=lambda c: c[0])
            service.stage(StageRequest(**common, changes=changes))  # type: ignore[arg-type]
        done = service.finish(FinishRequest(**common, changes=[]))  # type: ignore[arg-type]
        committed = service.commit(_commit(service, entries, name="same")).version
        assert done.version is not None and committed is not None
        assert done.version.file_count == len(paths)
        assert done.version.digest == committed.digest

    def test_removing_without_base_is_refused(self, service: Service) -> None:
        with pytest.raises(ValidationError):
            service.stage(
                StageRequest(
                    entity="me",
                    project="proj",
                    name="d",
                    type="t",
                    distributed_id="g",
                    changes=[("a", None)],
                )
            )

    def test_aliases_tags_metadata_and_delete(self, service: Service) -> None:
        v0 = service.commit(_commit(service, [_blob(service, b"0", "f")])).version
        v1 = service.commit(_commit(service, [_blob(service, b"1", "f")])).version
        assert v0 is not None and v1 is not None
        rec = service.update_version(
            v0.id, description="first", metadata={"n": 1}, aliases=["gold"], tags=["t-1"]
        )
        assert rec.description == "first" and rec.metadata == {"n": 1}
        assert rec.aliases == ("gold",) and rec.tags == ("t-1",)
        assert service.add_alias(v1.id, "gold").aliases == (LATEST, "gold")  # moved
        # "latest" is an alias like any other: it may be removed, and then "latest" resolves to
        # the newest committed version; a version with any alias is kept unless asked.
        assert service.remove_alias(v1.id, LATEST).aliases == ("gold",)
        assert service.resolve("me", "proj", "ds", None).id == v1.id
        assert service.resolve("me", "proj", "ds", LATEST).id == v1.id
        with pytest.raises(UsageError, match="gold"):
            service.delete_version(v1.id)
        assert service.add_alias(v0.id, LATEST).aliases == (LATEST,)
        assert service.resolve("me", "proj", "ds", None).id == v0.id
        with pytest.raises(UsageError, match=LATEST):
            service.delete_version(v0.id)
        assert service.update_version(v0.id, aliases=[]).aliases == ()
        service.delete_version(v1.id, delete_aliases=True)
        assert service.resolve("me", "proj", "ds", None).id == v0.id  # latest moved back
        v2 = service.commit(_commit(service, [_blob(service, b"2", "f")])).version
        assert v2 is not None and v2.version == "v2"  # numbers are never reused

    @pytest.mark.parametrize("alias", ["v0", "v3", "v01", "v007"])
    def test_aliases_that_look_like_versions_are_refused(
        self, service: Service, alias: str
    ) -> None:
        v0 = service.commit(_commit(service, [_blob(service, b"0", "f")])).version
        assert v0 is not None
        with pytest.raises(ValidationError, match="version"):
            service.add_alias(v0.id, alias)
        with pytest.raises(ValidationError, match="version"):
            service.commit(_commit(service, [_blob(service, b"1", "f")], aliases=[alias]))
        with pytest.raises(ArtifactNotFoundError):
            service.resolve("me", "proj", "ds", alias if alias != "v0" else "v9")
        assert service.resolve("me", "proj", "ds", None).id == v0.id

    def test_collections_are_renamed_tagged_and_deleted(self, service: Service) -> None:
        service.commit(_commit(service, [_blob(service, b"c0", "f")], aliases=["best"]))
        service.commit(_commit(service, [_blob(service, b"o", "f")], name="other"))
        rec = service.get_collection("me", "proj", "ds")
        assert (rec.name, rec.type, rec.aliases, rec.tags) == (
            "ds",
            "dataset",
            (LATEST, "best"),
            (),
        )
        rec = service.update_collection("me", "proj", "ds", tags=["a", "b c"], description="d")
        assert rec.tags == ("a", "b c") and rec.description == "d"
        with pytest.raises(ValidationError, match="already exists"):
            service.update_collection("me", "proj", "ds", new_name="other", tags=["x"])
        assert service.get_collection("me", "proj", "ds").tags == ("a", "b c")  # nothing changed
        renamed = service.update_collection("me", "proj", "ds", new_name="ds2")
        assert renamed.name == "ds2" and renamed.id == rec.id
        assert service.resolve("me", "proj", "ds2", "best").version == "v0"
        service.delete_collection("me", "proj", "ds2")
        with pytest.raises(ArtifactNotFoundError):
            service.get_collection("me", "proj", "ds2")
        with pytest.raises(ArtifactNotFoundError):
            service.resolve("me", "proj", "ds2", None)
        assert [c.name for c in service.list_collections("me", "proj")] == ["other"]

    def test_lists(self, service: Service) -> None:
        service.commit(_commit(service, [_blob(service, b"m", "m")], name="net", type="model"))
        service.commit(_commit(service, [_blob(service, b"d", "d")], name="data", type="dataset"))
        assert service.list_types("me", "proj") == ["dataset", "model"]
        names = [c.name for c in service.list_collections("me", "proj")]
        assert sorted(names) == ["data", "net"]
        assert [c.name for c in service.list_collections("me", "proj", "model")] == ["net"]
        assert ("me", "proj") in service.list_projects()

    def test_blob_round_trip(self, service: Service, tmp_path: os.PathLike[str]) -> None:
        src = os.path.join(os.fspath(tmp_path), "big.bin")
        data = os.urandom(1_500_000)
        with open(src, "wb") as f:
            f.write(data)
        info = service.store_file(src)
        assert info.digest == digest_bytes(data)
        assert service.missing_blobs([info.digest, digest_bytes(b"nope")]) == [
            digest_bytes(b"nope")
        ]
        dest = os.path.join(os.fspath(tmp_path), "back.bin")
        service.download_blob(info.digest, dest)
        with open(dest, "rb") as f:
            assert f.read() == data
        held = service.blob_path(info.digest)  # a local store's own file, or None
        if held is not None:
            with open(held, "rb") as f:
                assert f.read() == data
        assert service.blob_path(digest_bytes(b"nope")) is None

    def test_store_blob_file_is_checked(self, service: Service, tmp_path: os.PathLike[str]) -> None:
        for size in (1000, 300_000):
            data = os.urandom(size)
            path = os.path.join(os.fspath(tmp_path), f"f{size}")
            with open(path, "wb") as f:
                f.write(data)
            service.store_blob_file(path, digest_bytes(data), size)
            assert service.read_blob(digest_bytes(data)) == data
            liar = digest_bytes(data + b"!")
            with pytest.raises(DigestMismatchError):
                service.store_blob_file(path, liar, size)
            assert service.missing_blobs([liar]) == [liar]

    def test_files_around_the_small_limit_and_up_to_8_mib(
        self, service: Service, tmp_path: os.PathLike[str]
    ) -> None:
        """Sizes where a blob changes its path: under, at and over the small-blob limit (inline
        rows / batches vs. files / uploads), a few MiB, and around 8 MiB (one batch request,
        the size of a part), stored from a file and from bytes, committed and read back."""
        root = os.fspath(tmp_path)
        sizes = [SMALL_LIMIT - 1, SMALL_LIMIT, SMALL_LIMIT + 1, (3 << 20) + 7, (8 << 20) - 1]
        entries: list[ManifestEntry] = []
        blobs: dict[str, bytes] = {}
        for i, size in enumerate(sizes):
            data = os.urandom(size)
            if i % 2:
                service.store_blobs([(digest_bytes(data), data)])
                digest = digest_bytes(data)
            else:
                src = os.path.join(root, f"src-{size}")
                with open(src, "wb") as f:
                    f.write(data)
                info = service.store_file(src)
                assert info.size == size
                digest = info.digest
            assert digest == digest_bytes(data)
            blobs[digest] = data
            entries.append(ManifestEntry(f"f{size}.bin", digest, size))
        data = os.urandom(8 << 20)  # exactly 8 MiB, in a batch with a small one
        small = b"small neighbour"
        service.store_blobs([(digest_bytes(small), small), (digest_bytes(data), data)])
        for blob in (small, data):
            blobs[digest_bytes(blob)] = blob
            entries.append(ManifestEntry(f"b{len(blob)}.bin", digest_bytes(blob), len(blob)))
        assert service.missing_blobs(list(blobs)) == []
        result = service.commit(_commit(service, entries, name="sizes"))
        assert result.version is not None and result.version.size == sum(map(len, blobs.values()))
        service.prefetch_blobs(list(blobs))
        for digest, blob in blobs.items():
            dest = os.path.join(root, "out-" + digest[7:19])
            service.download_blob(digest, dest)
            with open(dest, "rb") as f:
                assert f.read() == blob
            assert service.read_blob(digest) == blob

    def test_prefetch_then_download(self, service: Service, tmp_path: os.PathLike[str]) -> None:
        blobs = [os.urandom(n) for n in (10, 4096, 200_000)]
        for data in blobs:
            service.store_blobs([(digest_bytes(data), data)])
        digests = [digest_bytes(b) for b in blobs]
        ghost = digest_bytes(b"not stored anywhere")
        service.prefetch_blobs([*digests, ghost])  # a hint: absent blobs are not an error here
        for data, d in zip(blobs, digests, strict=True):
            dest = os.path.join(os.fspath(tmp_path), d[7:20])
            service.download_blob(d, dest)
            with open(dest, "rb") as f:
                assert f.read() == data

    def test_search(self, service: Service) -> None:
        a, b, c = (_blob(service, data, p) for data, p in ((b"1", "a"), (b"2", "b"), (b"3", "c")))
        first = service.commit(
            _commit(
                service,
                [a],
                metadata={"acc": 0.5, "opt": {"name": "adam"}},
                tags=["nightly"],
                description="first try",
            )
        ).version
        assert first is not None
        service.commit(
            _commit(
                service, [a, b], metadata={"acc": 0.9, "opt": {"name": "sgd"}}, aliases=["gold"]
            )
        )
        service.commit(_commit(service, [c], name="net", type="model", metadata={"acc": 0.7}))

        def found(query: str, **kw: Any) -> list[str]:
            result = service.search(SearchRequest(query=query, **kw))
            return [f"{v.name}:{v.version}" for v in result.versions]

        assert found("acc>0.6") == ["net:v0", "ds:v1"]  # newest first
        assert found("acc>=0.5 acc<0.8") == ["net:v0", "ds:v0"]
        assert found("acc:0.9") == ["ds:v1"]
        assert found("opt.name:sgd") == ["ds:v1"]  # nested keys as dotted paths
        assert found("tag:nightly") == found("nightly") == ["ds:v0"]
        assert found("alias:gold") == found("gold") == ["ds:v1"]
        assert found("type:model") == found("name:net") == ["net:v0"]
        assert found("FIRST") == found("adam") == ["ds:v0"]  # description; a metadata value
        # A description's words are found by their beginnings, not from their middles.
        assert found("fir") == found("tr") == ["ds:v0"] and found("irst") == []
        assert found("type:dataset acc<0.6") == ["ds:v0"]
        assert found("ds nightly") == found("try first") == ["ds:v0"]  # every word must match
        assert found("ds net") == []
        assert found("nothing-like-this") == []
        everything = service.search(SearchRequest(query="proj"))
        assert everything.projects == (("me", "proj"),) and everything.totals["project"] == 1
        named = service.search(SearchRequest(query="ds"))
        assert [col.name for col in named.collections] == ["ds"]
        assert named.collections[0].version_count == 2

        # Changed metadata is what is found; a pending version is not found at all.
        service.update_version(first.id, metadata={"acc": 0.99})
        assert found("acc>0.95") == ["ds:v0"] and found("adam") == []
        service.update_version(first.id, description="second go")
        assert found("second") == ["ds:v0"] and found("try") == []
        pending = service.stage(
            StageRequest(
                entity="me",
                project="proj",
                name="ds",
                type="dataset",
                distributed_id="d1",
                changes=[("z", _blob(service, b"z", "z"))],
                metadata={"acc": 0.999},
            )
        )
        assert found("acc>0.95") == ["ds:v0"]
        service.discard_pending(pending.id)

        # A collection's versions, sorted and paged (its versions table).
        page = service.search(
            SearchRequest(
                kinds=("version",),
                collection=("me", "proj", "ds"),
                sort="version",
                descending=False,
                offset=1,
                limit=1,
            )
        )
        assert [v.version for v in page.versions] == ["v1"] and page.totals == {"version": 2}

        for bad in (
            SearchRequest(query="acc>high"),
            SearchRequest(query='"unclosed'),
            SearchRequest(limit=0),
            SearchRequest(sort="name"),
            SearchRequest(kinds=("files",)),
        ):
            with pytest.raises(ValidationError):
                service.search(bad)
        with pytest.raises(ArtifactNotFoundError):
            service.search(SearchRequest(collection=("me", "proj", "nope")))

    def test_read_blob_range(self, service: Service, tmp_path: os.PathLike[str]) -> None:
        small = os.urandom(5000)
        service.store_blobs([(digest_bytes(small), small)])
        src = os.path.join(os.fspath(tmp_path), "big.bin")
        big = os.urandom(1_500_000)
        with open(src, "wb") as f:
            f.write(big)
        service.store_file(src)
        for data in (small, big):
            d, n = digest_bytes(data), len(data)
            assert service.read_blob_range(d, 0, 10) == data[:10]
            assert service.read_blob_range(d, 1000, 3000) == data[1000:4000]
            assert service.read_blob_range(d, n - 3, 100) == data[-3:]
            assert service.read_blob_range(d, n, 10) == b""
            assert service.read_blob_range(d, 7, 0) == b""
        assert service.read_blob_range(digest_bytes(big), 0, len(big)) == big
        with pytest.raises(FileNotFoundError):
            service.read_blob_range(digest_bytes(b"never stored"), 0, 10)

    def test_read_blobs_in_batches(self, service: Service) -> None:
        blobs = [os.urandom(n) for n in (1, 4096, 200_000, 7)]
        service.store_blobs([(digest_bytes(b), b) for b in blobs])
        digests = [digest_bytes(b) for b in blobs]
        assert list(service.read_blobs(digests)) == list(zip(digests, blobs, strict=True))
        with pytest.raises(NotFoundError):
            list(service.read_blobs([digest_bytes(b"not stored anywhere")]))

    # -- copying between stores (cairn sync) --

    def test_export_versions_with_lineage(self, service: Service) -> None:
        service.start_run(RunRecord(id="maker", entity="me", project="proj", name="maker"))
        service.start_run(RunRecord(id="user", entity="me", project="proj", name="user"))
        v0 = service.commit(
            _commit(service, [_blob(service, b"x", "x")], run_id="maker", tags=["t"])
        ).version
        assert v0 is not None
        draft = CommitRequest(
            entity="me",
            project="proj",
            name="ds",
            type="dataset",
            changes=[("y", _blob(service, b"y", "y"))],
            base_version_id=v0.id,
        )
        v1 = service.commit(draft).version
        assert v1 is not None
        service.use_version(v0.id, RunRecord(id="user", entity="me", project="proj", name=""))
        out = service.export_versions("me", "proj", "ds")
        assert [x.version.version for x in out] == ["v0", "v1"]
        assert [r.id for r in out[0].runs["output"]] == ["maker"]
        assert [r.id for r in out[0].runs["input"]] == ["user"]
        assert out[0].version.tags == ("t",) and out[0].base_digest is None
        assert out[1].base_digest == v0.digest
        assert service.export_versions("me", "proj", "nothing") == []
        assert service.export_versions("me", "nowhere", "ds") == []

    def test_import_keeps_number_time_and_is_idempotent(self, service: Service) -> None:
        v0 = service.commit(_commit(service, [_blob(service, b"a", "a")])).version
        assert v0 is not None and v0.digest is not None
        run = RunRecord(
            id="r1", entity="me", project="copy", name="r", state="finished", created_at=50.0
        )
        got = service.import_run(run)
        assert got.state == "finished" and got.created_at == 50.0
        assert service.import_run(dataclasses.replace(run, name="other")).name == "r"
        req = ImportRequest(
            entity="me",
            project="copy",
            name="ds",
            type="dataset",
            digest=v0.digest,
            index=4,
            created_at=1000.0,
            metadata={"k": 1},
            aliases=["gold"],
            tags=["t"],
            created_by="r1",
            runs=[("input", "me", "copy", "r1")],
        )
        first = service.import_version(req)
        assert first.created and first.version is not None
        rec = first.version
        assert (rec.version, rec.created_at, rec.created_by) == ("v4", 1000.0, "r1")
        assert set(rec.aliases) == {LATEST, "gold"} and rec.tags == ("t",)
        assert rec.file_count == 1 and rec.size == 1 and rec.metadata == {"k": 1}
        assert [r.id for r in service.version_runs(rec.id, "input")] == ["r1"]
        again = service.import_version(req)
        assert not again.created and again.version is not None and again.version.id == rec.id
        # A taken number is a conflict; without a number the next one is used.
        other = service.commit(_commit(service, [_blob(service, b"b", "b")])).version
        assert other is not None and other.digest is not None
        moved = dataclasses.replace(req, digest=other.digest, aliases=())
        with pytest.raises(ConflictError):
            service.import_version(moved)
        appended = service.import_version(dataclasses.replace(moved, index=None))
        assert appended.version is not None and appended.version.version == "v5"
        assert service.resolve("me", "copy", "ds", None).id == appended.version.id
        # Older numbers go below: latest stays on the highest.
        third = service.commit(_commit(service, [_blob(service, b"c", "c")])).version
        assert third is not None and third.digest is not None
        low = service.import_version(dataclasses.replace(moved, digest=third.digest, index=1))
        assert low.version is not None and low.version.version == "v1"
        assert service.resolve("me", "copy", "ds", None).id == appended.version.id

    def test_import_reports_missing_content(self, service: Service) -> None:
        ghost = digest_bytes(b"a manifest page nobody stored")
        req = ImportRequest(
            entity="me",
            project="copy",
            name="ds",
            type="dataset",
            digest=ghost,
            index=0,
            created_at=1.0,
        )
        result = service.import_version(req)
        assert result.version is None and result.missing == (ghost,)
        assert service.list_projects("me") == [] or service.list_versions("me", "copy", "ds") == []
