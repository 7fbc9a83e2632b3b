from __future__ import annotations

import pathlib
from collections.abc import Callable, Iterator, Sequence

import pytest

from cairn.core import ManifestEntry, PageRef, digest_bytes
from cairn.service import CommitResult, FinishRequest, LocalService, StageRequest
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

    def build(
        self, base_root: str | None, changes: Sequence[tuple[str, ManifestEntry | None]]
    ) -> tuple[PageRef, list[str]]:
        step, self.between = self.between, None
        if step is not None:
            step()
        return super().build(base_root, changes)


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
