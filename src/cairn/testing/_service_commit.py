"""ServiceTests: committing (one step, client-written manifests, drafts, expected aliases) and
distributed versions (stage, finish)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from cairn.core import LATEST, ManifestEntry, RunRecord, digest_bytes, encode_leaf
from cairn.errors import (
    ArtifactNotFoundError,
    ConflictError,
    TypeConflictError,
    ValidationError,
)
from cairn.service import (
    CommitRequest,
    FinishRequest,
    Service,
    StageRequest,
)
from cairn.testing._service_data import commit_request, manifest_pages, stored_entry


class CommitTests:
    """Part of ``ServiceTests``: needs a ``service`` fixture returning a Service over an empty
    store."""

    def test_commit_of_a_client_written_manifest(self, service: Service) -> None:
        """``CommitRequest.manifest``: the SDK streams a large directory into manifest pages it
        stores as blobs; the store checks them page by page and applies changes on top."""
        blob = stored_entry(service, b"tiny", "x")
        entries = [ManifestEntry(f"d/{i:05}", blob.digest, 4) for i in range(3000)]
        root, pages = manifest_pages(entries)
        assert len(pages) > 3  # several leaves and an index: the check reads page by page
        service.store_blobs(pages)
        extra = stored_entry(service, b"extra", "z.txt")
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
        again = service.commit(commit_request(service, [*entries[1:], extra]))
        assert again.version is not None and again.version.id == result.version.id
        plain = service.commit(
            dataclasses.replace(commit_request(service, [], name="m"), manifest=root)
        )
        assert plain.version is not None and plain.version.digest == root

    def test_client_written_manifests_are_checked(self, service: Service) -> None:
        blob = stored_entry(service, b"tiny", "x")
        # Paths of their own: a server's blob store may keep the pages of other tests.
        entries = [ManifestEntry(f"c/{i:05}", blob.digest, 4) for i in range(3000)]  # 7 cuts

        def commit(root: str, **kw: Any) -> Any:
            return service.commit(
                dataclasses.replace(commit_request(service, []), manifest=root, **kw)
            )

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
        root, pages = manifest_pages(entries)
        service.store_blobs(pages[1:])
        with pytest.raises(ValidationError, match=pages[0][0]):
            commit(root)
        with pytest.raises(ValidationError, match="not in the store"):
            commit(digest_bytes(b"no such page"))
        # Content the store lacks is reported missing, as for a list of changes.
        ghost = ManifestEntry("g.bin", digest_bytes(b"never uploaded"), 14)
        root, pages = manifest_pages([ghost])
        service.store_blobs(pages)
        result = commit(root)
        assert result.version is None and result.missing == (ghost.digest,)
        v0 = service.commit(commit_request(service, [entries[0]])).version
        assert v0 is not None
        # With a base version too (a draft that streamed a large directory): the changes apply
        # onto the manifest, and the version is recorded as the new one's base.
        root, pages = manifest_pages(entries[:3])
        service.store_blobs(pages)
        extra = ManifestEntry("d.bin", blob.digest, 4)
        v1 = commit(root, base_version_id=v0.id, changes=[(extra.path, extra)]).version
        assert v1 is not None and v1.base_version_id == v0.id
        assert v1.digest == manifest_pages([*entries[:3], extra])[0]
        assert v1.file_count == 4
        # The base is checked as a draft's: of the same collection.
        other = service.commit(commit_request(service, [entries[0]], name="other")).version
        assert other is not None
        with pytest.raises(ValidationError, match="draft of"):
            commit(root, base_version_id=other.id)
        assert {v.id for v in service.list_versions("me", "proj", "ds")} == {v0.id, v1.id}

    def test_commit_resolve_and_dedup(self, service: Service) -> None:
        a = stored_entry(service, b"one", "a.txt")
        b = stored_entry(service, b"two", "dir/b.txt")
        first = service.commit(commit_request(service, [a, b], aliases=["best"]))
        assert first.created and first.version is not None
        assert first.version.version == "v0" and first.version.file_count == 2
        assert set(first.version.aliases) == {"best", LATEST}
        again = service.commit(commit_request(service, [b, a]))
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
        result = service.commit(commit_request(service, [ghost]))
        assert result.version is None and result.missing == (ghost.digest,)
        with pytest.raises(ArtifactNotFoundError):
            service.resolve("me", "proj", "ds", None)

    def test_type_conflict(self, service: Service) -> None:
        e = stored_entry(service, b"m", "m.pt")
        service.commit(commit_request(service, [e], name="net", type="model"))
        with pytest.raises(TypeConflictError):
            service.commit(commit_request(service, [e], name="net", type="dataset"))

    def test_draft_changes_apply_to_base(self, service: Service) -> None:
        a, b, c = (stored_entry(service, x, p) for x, p in ((b"1", "a"), (b"2", "b"), (b"3", "c")))
        v0 = service.commit(commit_request(service, [a, b])).version
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
        scratch = service.commit(commit_request(service, [b, c])).version
        assert scratch is not None and scratch.id == v1.id  # same content, same digest

    def test_commit_with_expected_alias(self, service: Service) -> None:
        a, b, c = (stored_entry(service, x, p) for x, p in ((b"1", "a"), (b"2", "b"), (b"3", "c")))
        # None: the alias must not name a version yet (here the artifact does not even exist).
        v0 = service.commit(
            commit_request(service, [a], aliases=["prod"], expect_alias=("prod", None))
        )
        assert v0.created and v0.version is not None
        with pytest.raises(ConflictError, match="prod"):
            service.commit(commit_request(service, [b], expect_alias=("prod", None)))
        v1 = service.commit(
            commit_request(service, [b], aliases=["prod"])
        ).version  # another writer
        assert v1 is not None
        for stale in (("prod", v0.version.id), ("latest", v0.version.id)):
            with pytest.raises(ConflictError, match="nothing was committed"):
                service.commit(commit_request(service, [c], aliases=["prod"], expect_alias=stale))
            # Identical content (no new version, only aliases) is refused all the same.
            with pytest.raises(ConflictError):
                service.commit(commit_request(service, [a], aliases=["prod"], expect_alias=stale))
        assert [v.id for v in service.list_versions("me", "proj", "ds")] in (
            [v0.version.id, v1.id],
            [v1.id, v0.version.id],
        )
        assert service.resolve("me", "proj", "ds", "prod").id == v1.id
        assert not service.get_version(v0.version.id).aliases
        ok = service.commit(
            commit_request(service, [c], aliases=["prod"], expect_alias=("prod", v1.id))
        )
        assert ok.created and ok.version is not None and ok.version.version == "v2"
        assert set(ok.version.aliases) == {"prod", LATEST}
        with pytest.raises(ValidationError):
            service.commit(commit_request(service, [c], expect_alias=("v1", v1.id)))

    def test_distributed_stage_and_finish(self, service: Service) -> None:
        service.start_run(RunRecord(id="w1", entity="me", project="proj", name="w1"))
        service.start_run(RunRecord(id="w2", entity="me", project="proj", name="w2"))
        a1 = stored_entry(service, b"a-from-1", "a")
        a2 = stored_entry(service, b"a-from-2", "a")
        b = stored_entry(service, b"b", "b")
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
        entries = [stored_entry(service, p.encode(), p) for p in paths]
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
        committed = service.commit(commit_request(service, entries, name="same")).version
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
