"""Incremental artifacts: drafts add, remove and update without re-reading unchanged files."""

from __future__ import annotations

import os
import pathlib
import shutil
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cairn
from cairn.core import ManifestEntry, digest_bytes
from cairn.sdk import current_service
from cairn.service import CommitRequest
from tests.conftest import write


def base_version(files: dict[str, str], name: str = "ds") -> cairn.Artifact:
    art = cairn.Artifact(name, "dataset", description="the base", metadata={"rows": len(files)})
    for path, content in files.items():
        art.add_file(write(f"base-src/{path}", content), name=path)
    with cairn.init() as run:
        run.log_artifact(art)
    return art


def test_add_remove_update_scenarios() -> None:
    base_version({"a.txt": "a", "labels/1.csv": "x", "dups/1": "d", "dups/2": "d"})
    with cairn.init(job_type="modify dataset") as run:
        draft = run.use_artifact("ds:latest").new_draft()
        assert draft.state == "PENDING" and draft.description == "the base"
        assert draft.metadata == {"rows": 4}
        draft.metadata["rows"] = 99  # a copy: the base keeps its own
        draft.add_file(write("new/b.txt", "b"), name="b.txt")  # add
        draft.remove("dups")  # remove a directory
        with pytest.raises(ValueError, match="same path"):
            draft.add_file(write("fix/1.csv", "y"), name="labels/1.csv")
        draft.add_file("fix/1.csv", name="labels/1.csv", overwrite=True)  # update
        with pytest.raises(FileNotFoundError):
            draft.remove("not/there")
        run.log_artifact(draft)
    v0 = cairn.Api().artifact("ds:v0")
    assert v0.metadata == {"rows": 4}
    assert draft.version == "v1" and sorted(draft.manifest.entries) == [
        "a.txt",
        "b.txt",
        "labels/1.csv",
    ]
    assert draft.base_version is not None and draft.base_version.id == v0.id
    diff = cairn.Api().diff("ds:v0", "ds:v1")
    assert [e.path for e in diff.added] == ["b.txt"]
    assert sorted(e.path for e in diff.removed) == ["dups/1", "dups/2"]
    assert [(old.size, new.size) for old, new in diff.modified] == [(1, 1)]
    assert draft.diff(v0) == diff


def test_draft_of_an_older_version_and_draft_without_changes() -> None:
    base_version({"a": "0"})
    base_version({"a": "1"})
    old = cairn.Api().artifact("ds:v0")
    draft = old.new_draft()
    draft.add_file(write("x", "x"))
    draft.save()
    assert draft.version == "v2" and sorted(draft.manifest.entries) == ["a", "x"]
    assert draft.manifest.entries["a"].digest == old.manifest.entries["a"].digest
    with pytest.warns(UserWarning, match="identical"):
        same = cairn.Api().artifact("ds:v2").new_draft()
        same.save()
    assert same.version == "v2"
    assert [a.version for a in cairn.Api().artifacts("dataset", "ds")] == ["v2", "v1", "v0"]


def test_base_files_need_not_be_on_disk_and_are_not_read_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base_version({f"d/{i}.txt": str(i) for i in range(50)})
    shutil.rmtree("base-src")
    stored: list[int] = []
    svc = current_service()
    original = svc.store_blobs
    monkeypatch.setattr(
        svc, "store_blobs", lambda items: (stored.append(len(items)), original(items))[1]
    )
    with cairn.init() as run:
        draft = run.use_artifact("ds:latest").new_draft()
        draft.add_file(write("one.txt", "1"))
        draft.remove("d/7.txt")
        run.log_artifact(draft)
    assert len(draft.manifest.entries) == 50
    # One new file's blob and a handful of manifest pages were written, nothing of the base.
    assert sum(stored) <= 5
    root = draft.download()
    assert pathlib.Path(root, "d", "3.txt").read_text() == "3"


def test_opening_a_large_version_reads_few_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    svc = current_service()
    blob = b"x"
    svc.store_blobs([(digest_bytes(blob), blob)])
    entries = [
        ManifestEntry(f"d{i // 1000:03}/f{i:06}", digest_bytes(blob), 1) for i in range(60_000)
    ]
    svc.commit(
        CommitRequest(
            entity=svc.default_entity,
            project="uncategorized",
            name="big",
            type="dataset",
            changes=[(e.path, e) for e in entries],
        )
    )
    reads: list[str] = []
    original = svc.read_blob

    def counting(digest: str) -> bytes:
        reads.append(digest)
        return original(digest)

    monkeypatch.setattr(svc, "read_blob", counting)
    from cairn.sdk import current_session

    monkeypatch.setattr(current_session(), "_reader", None)  # pages read through `counting`
    art = cairn.Api().artifact("big:latest")
    assert len(art.manifest.entries) == 60_000 and art.file_count == 60_000
    assert reads == []  # counts come from the catalog
    assert art.get_entry("d042/f042042").size == 1
    assert "d059/f059999" in art.manifest.entries
    assert len(reads) <= 8
    reads.clear()
    root = art.download(path_prefix="d007/")
    assert len(os.listdir(os.path.join(root, "d007"))) == 1000
    assert len(reads) <= 12


ops = st.lists(
    st.tuples(
        st.sampled_from(["add", "remove", "overwrite"]),
        st.sampled_from("abcdefgh"),
        st.integers(0, 2),
    ),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(ops, min_size=1, max_size=3))
def test_any_sequence_of_drafts_equals_building_from_scratch(
    tmp_path: pathlib.Path, steps: list[list[tuple[str, str, int]]]
) -> None:
    """Drafts applied through the SDK give the manifest and digest of building the final set."""
    name = f"prop{abs(hash(str(steps))) % 10**9}"
    state: dict[str, int] = {"a": 0}
    art = cairn.Artifact(name, "dataset")
    art.add_file(write(tmp_path / "v" / "a0", "0"), name="a")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        art.save()
        for step in steps:
            draft = cairn.Api().artifact(f"{name}:latest").new_draft()
            for op, path, value in step:
                if op == "remove":
                    if path in state:
                        draft.remove(path)
                        del state[path]
                elif op == "add" and path not in state:
                    draft.add_file(write(tmp_path / "v" / f"{path}{value}", str(value)), name=path)
                    state[path] = value
                elif op == "overwrite":
                    draft.add_file(
                        write(tmp_path / "v" / f"{path}{value}", str(value)),
                        name=path,
                        overwrite=True,
                    )
                    state[path] = value
            draft.save()
            scratch = cairn.Artifact(name, "dataset")
            for path, value in sorted(state.items()):
                scratch.add_file(str(tmp_path / "v" / f"{path}{value}"), name=path)
            assert draft.digest == scratch.digest
            assert sorted(draft.manifest.entries) == sorted(state)
