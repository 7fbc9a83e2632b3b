from __future__ import annotations

import pathlib
from collections.abc import Callable, Iterator

import pytest

from cairn.core import ManifestEntry, PageRef, digest_bytes
from cairn.errors import ValidationError
from cairn.service import CommitRequest, CommitResult, FinishRequest, LocalService, StageRequest
from cairn.service import _distributed as distributed
from cairn.service._distributed import DistributedVersions
from cairn.testing import ServiceTests


class TestLocalService(ServiceTests):
    @pytest.fixture
    def service(self, tmp_path: pathlib.Path) -> Iterator[LocalService]:
        svc = LocalService.open(str(tmp_path / "svc"))
        yield svc
        svc.close()


class _Interleaved(DistributedVersions):
    """Runs ``between`` once, while a finish builds its manifest: the moment between the finish's
    staging and committing transactions, where another worker's upsert or finish may land."""

    between: Callable[[], object] | None = None

    def build(self, vid: str, base_root: str, count: int) -> tuple[PageRef, list[str]]:
        step, self.between = self.between, None
        if step is not None:
            step()
        return super().build(vid, base_root, count)


def _interleaved(root: pathlib.Path) -> tuple[LocalService, _Interleaved]:
    """A store whose finishes run through ``_Interleaved`` (set its ``between``)."""
    svc = LocalService.open(str(root))
    hook = _Interleaved(svc._store)
    svc._distributed = hook
    return svc, hook


def _entry(svc: LocalService, path: str, data: bytes) -> ManifestEntry:
    svc.store_blobs([(digest_bytes(data), data)])
    return ManifestEntry(path, digest_bytes(data), len(data))


_DIST = {"entity": "me", "project": "p", "name": "d", "type": "dataset", "distributed_id": "g"}


def test_an_upsert_that_lands_while_a_finish_builds_is_in_the_version(
    tmp_path: pathlib.Path,
) -> None:
    svc, hook = _interleaved(tmp_path / "svc")
    a, b = _entry(svc, "a", b"from the first worker"), _entry(svc, "b", b"from a late worker")
    svc.stage(StageRequest(**_DIST, changes=[("a", a)]))  # type: ignore[arg-type]
    hook.between = lambda: svc.stage(StageRequest(**_DIST, changes=[("b", b)]))  # type: ignore[arg-type]
    result = svc.finish(FinishRequest(**_DIST, changes=[]))  # type: ignore[arg-type]
    assert result.created and result.version is not None
    assert result.version.file_count == 2  # built again with the late upsert
    assert svc.list_versions("me", "p", "d", include_pending=True) == [result.version]
    svc.close()


def test_a_finish_that_another_finish_overtakes_returns_its_version(
    tmp_path: pathlib.Path,
) -> None:
    svc, hook = _interleaved(tmp_path / "svc")
    a = _entry(svc, "a", b"staged by a worker")
    svc.stage(StageRequest(**_DIST, changes=[("a", a)]))  # type: ignore[arg-type]
    other: list[CommitResult] = []
    hook.between = lambda: other.append(svc.finish(FinishRequest(**_DIST, changes=[])))  # type: ignore[arg-type]
    mine = svc.finish(FinishRequest(**_DIST, changes=[("a", a)], aliases=["mine"]))  # type: ignore[arg-type]
    assert other[0].created and other[0].version is not None
    assert mine.version is not None and mine.version.id == other[0].version.id
    assert not mine.created and "mine" in mine.version.aliases  # one version, with both's aliases
    assert [v.version for v in svc.list_versions("me", "p", "d", include_pending=True)] == ["v0"]
    svc.close()


@pytest.mark.parametrize("in_memory", [0, 1_000], ids=["merged-as-a-stream", "update-tree"])
def test_a_distributed_draft_read_in_small_batches_is_the_draft_a_commit_makes(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, in_memory: int
) -> None:
    """A finish reads staged changes a few at a time and applies them onto the base either in
    memory (few changes) or merged with the base's entries as a stream (many): both give the
    manifest a one-step commit of the same changes gives, page for page."""
    monkeypatch.setattr(distributed, "STAGED_BATCH", 3)
    monkeypatch.setattr(distributed, "UPDATE_IN_MEMORY", in_memory)
    svc = LocalService.open(str(tmp_path / "svc"))
    base_entries = [_entry(svc, f"d{i % 3}/f{i:03}", b"%d" % i) for i in range(40)]
    base = svc.commit(
        CommitRequest("me", "p", "d", "dataset", sorted((e.path, e) for e in base_entries))
    ).version
    assert base is not None
    new = _entry(svc, "x", b"new")
    changes: list[tuple[str, ManifestEntry | None]] = [
        ("A-first", _entry(svc, "A-first", b"upper case sorts first")),
        ("d0/f000", None),
        ("d1/f010", _entry(svc, "d1/f010", b"replaced")),
        ("d2/f038", None),
        ("d2/f099", new._replace(path="d2/f099")),
        ("zz/last", new._replace(path="zz/last")),
    ]
    dist = {**_DIST, "name": "d", "base_version_id": base.id}
    for i in range(0, len(changes), 2):  # three workers' upserts
        svc.stage(StageRequest(**dist, changes=changes[i : i + 2]))  # type: ignore[arg-type]
    finished = svc.finish(FinishRequest(**dist, changes=[]))  # type: ignore[arg-type]
    assert finished.version is not None and finished.version.file_count == 40 + 3 - 2
    reference = LocalService.open(str(tmp_path / "reference"))
    for e in [*base_entries, new]:
        reference.store_blobs([(e.digest, svc.read_blob(e.digest))])
    for _, e in changes:
        if e is not None:
            reference.store_blobs([(e.digest, svc.read_blob(e.digest))])
    ref_base = reference.commit(
        CommitRequest("me", "p", "d", "dataset", sorted((e.path, e) for e in base_entries))
    ).version
    assert ref_base is not None and ref_base.digest == base.digest
    drafted = reference.commit(
        CommitRequest("me", "p", "d", "dataset", changes, base_version_id=ref_base.id)
    ).version
    assert drafted is not None and finished.version.digest == drafted.digest
    svc.close()
    reference.close()


def test_a_finish_without_a_base_refuses_staged_removals_read_as_a_stream(
    tmp_path: pathlib.Path,
) -> None:
    """The check holds for changes the finish reads from the catalog, not only for its own."""
    svc = LocalService.open(str(tmp_path / "svc"))
    a = _entry(svc, "a", b"a")
    svc.stage(StageRequest(**_DIST, changes=[("a", a)]))  # type: ignore[arg-type]
    # A removal staged through the catalog directly (the service refuses to stage one).
    vid = svc.list_versions("me", "p", "d", include_pending=True)[0].id
    svc.catalog.write(lambda tx: tx.pending.stage(vid, [("b", None)], None))
    with pytest.raises(ValidationError, match="cannot remove"):
        svc.finish(FinishRequest(**_DIST, changes=[]))  # type: ignore[arg-type]
    svc.close()
