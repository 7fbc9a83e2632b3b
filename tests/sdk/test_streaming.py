"""Issue 18: a large directory added to a new artifact is streamed into manifest pages.

The threshold is lowered here so that small trees take the streaming path; every W&B behaviour
must be the same as on the in-memory path (the same version, entries, local paths, changes)."""

from __future__ import annotations

import os
import pathlib

import pytest

import cairn
import cairn.sdk._scan as scan_module
from cairn.sdk._restore import tree_sources

FILES = {
    "a-c.txt": "dash",  # sorts before "a/..." by code point: the walk must put it first
    "a/b.txt": "b",
    "a/z/deep.txt": "deep",
    "a.txt": "dot",
    "b/1.txt": "one",
    "b/2.txt": "two",
    "b/3.txt": "two",  # same content as 2.txt
    "c.bin": "c",
}


@pytest.fixture
def tree(tmp_path: pathlib.Path) -> str:
    root = tmp_path / "tree"
    for path, content in FILES.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(content)
    return str(root)


@pytest.fixture
def streaming(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scan_module, "STREAM_THRESHOLD", 2)
    monkeypatch.setattr(scan_module, "STREAM_CHUNK", 3)


def _log(art: cairn.Artifact) -> cairn.Artifact:
    with cairn.init(project="p") as run:
        run.log_artifact(art)
    return art


def test_streamed_add_dir_logs_the_same_version(
    tree: str, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = cairn.Artifact("ds", "dataset")
    plain.add_dir(tree, name="data")
    _log(plain)
    monkeypatch.setattr(scan_module, "STREAM_THRESHOLD", 2)
    monkeypatch.setattr(scan_module, "STREAM_CHUNK", 3)
    art = cairn.Artifact("ds", "dataset")
    art.add_dir(tree, name="data")
    assert art._contents.local_base  # it streamed
    assert art.digest == plain.digest
    assert list(art.manifest.entries) == ["data/" + p for p in sorted(FILES)]
    entry = art.manifest.entries["data/a/z/deep.txt"]
    assert entry.local_path == os.path.join(tree, "a", "z", "deep.txt")
    assert art.get_added_local_path_name(os.path.join(tree, "b", "1.txt")) == "data/b/1.txt"
    with pytest.warns(UserWarning, match="identical"):
        _log(art)
    assert art.version == "v0"  # the same content: the existing version


@pytest.mark.usefixtures("streaming")
def test_changes_after_a_streamed_add_dir_apply_on_top(tree: str, tmp_path: pathlib.Path) -> None:
    extra = tmp_path / "extra.txt"
    extra.write_text("extra")
    art = cairn.Artifact("ds", "dataset")
    art.add_dir(tree)
    art.add_file(str(extra), name="b/2.txt", overwrite=True)
    art.remove("a")  # a directory of the streamed base
    art.add_file(str(extra), name="new.txt")
    assert len(art.manifest.entries) == len(FILES) - 2 + 1
    draft_digest = art.digest
    _log(art)
    assert art.digest == draft_digest
    got = cairn.Api(overrides={"project": "p"}).artifact("ds:latest")
    assert sorted(got.manifest.entries) == sorted(
        ["a-c.txt", "a.txt", "b/1.txt", "b/2.txt", "b/3.txt", "c.bin", "new.txt"]
    )
    out = got.download(str(tmp_path / "out"))
    assert pathlib.Path(out, "b", "2.txt").read_text() == "extra"
    got.verify(out)


@pytest.mark.usefixtures("streaming")
def test_streamed_files_are_stored_again_if_the_store_lost_them(
    tree: str, tmp_path: pathlib.Path
) -> None:
    """The stager keeps no per-file source for a streamed directory: what a commit reports
    missing is found again through the streamed manifest."""
    art = cairn.Artifact("ds", "dataset")
    art.add_dir(tree)
    stager = art._stage()
    assert not stager._sources
    wanted = {e.digest for e in art.manifest.entries.values()}
    found = tree_sources(stager._service, stager._trees, wanted)
    assert {os.path.join(*found[e.digest]) for e in art.manifest.entries.values()} <= {
        os.path.join(tree, *p.split("/")) for p in FILES
    }
    assert len(found) == len(set(FILES.values()))
    _log(art)
    out = art.download(str(tmp_path / "o"))
    art.verify(out)
    pathlib.Path(out, "stray.txt").write_text("x")
    with pytest.raises(ValueError, match=r"stray\.txt"):
        art.verify(out)
    art.checkout(out)
    assert not os.path.exists(os.path.join(out, "stray.txt"))
    art.verify(out)


def _draft_with_dir(tree: str, extra: pathlib.Path, **kw: bool) -> cairn.Artifact:
    """A draft of v0 (a.txt and data/b/1.txt) that removes a.txt, adds new.txt, then adds the
    tree under data/."""
    draft = cairn.Api(overrides={"project": "p"}).artifact("ds:v0").new_draft()
    draft.remove("a.txt")
    draft.add_file(str(extra), name="new.txt")
    draft.add_dir(tree, name="data", **kw)
    return draft


def test_a_draft_streams_a_large_directory_onto_its_base(
    tree: str, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A draft adding a large directory: the directory's entries merged with the base version's
    and the draft's changes into manifest pages (never one list of changes); the version logged
    is the one the in-memory path builds, and the base version stays its base."""
    extra = tmp_path / "extra.txt"
    extra.write_text("extra")
    kept = tmp_path / "kept.txt"
    kept.write_text("kept")
    v0 = cairn.Artifact("ds", "dataset")
    v0.add_file(str(extra), name="a.txt")
    v0.add_file(str(kept), name="data/b/1.txt")  # other content than the tree's b/1.txt
    v0.add_file(str(kept), name="data/zz/kept.txt")  # under the directory, not in the tree
    _log(v0)
    listed = _draft_with_dir(tree, extra, merge=True)
    assert not listed._contents.local_base  # below the threshold: the in-memory path
    monkeypatch.setattr(scan_module, "STREAM_THRESHOLD", 2)
    monkeypatch.setattr(scan_module, "STREAM_CHUNK", 3)
    with pytest.raises(cairn.errors.ValidationError, match=r"data/b/1\.txt"):
        _draft_with_dir(tree, extra)  # replacing other content needs merge=True
    draft = _draft_with_dir(tree, extra, merge=True)
    assert draft._contents.local_base and not draft._contents.changed  # it streamed
    expected = sorted(["new.txt", "data/zz/kept.txt", *("data/" + p for p in FILES)])
    assert sorted(draft.manifest.entries) == expected
    assert draft.digest == listed.digest
    entries = draft.manifest.entries
    assert entries["data/b/1.txt"].local_path == os.path.join(tree, "b", "1.txt")
    assert entries["data/zz/kept.txt"].local_path is None  # the base's, not in the tree
    draft.add_file(str(kept), name="top.txt")  # a change on top of the streamed manifest
    listed.add_file(str(kept), name="top.txt")
    assert draft.digest == listed.digest
    _log(draft)
    assert draft.version == "v1" and draft.digest == listed.digest
    got = cairn.Api(overrides={"project": "p"}).artifact("ds:v1")
    assert got._record is not None and got._record.base_version_id == v0.id
    assert sorted(got.manifest.entries) == sorted([*expected, "top.txt"])
    out = got.download(str(tmp_path / "out"))
    assert pathlib.Path(out, "data", "b", "1.txt").read_text() == "one"
    assert pathlib.Path(out, "data", "zz", "kept.txt").read_text() == "kept"
    got.verify(out)


@pytest.mark.usefixtures("streaming")
def test_an_upsert_of_a_draft_with_a_streamed_directory_sends_its_difference(
    tree: str, tmp_path: pathlib.Path
) -> None:
    extra = tmp_path / "extra.txt"
    extra.write_text("extra")
    v0 = cairn.Artifact("ds", "dataset")
    v0.add_file(str(extra), name="a.txt")
    v0.add_file(str(extra), name="gone.txt")
    _log(v0)
    draft = cairn.Api(overrides={"project": "p"}).artifact("ds:v0").new_draft()
    draft.remove("gone.txt")
    draft.add_dir(tree, name="data")
    changes = draft._contents.all_changes()
    assert changes == sorted(
        [("gone.txt", None), *((f"data/{p}", draft._contents.get(f"data/{p}")) for p in FILES)]
    )
    with cairn.init(project="p") as run:
        run.finish_artifact(draft, distributed_id="d")
    got = cairn.Api(overrides={"project": "p"}).artifact("ds:latest")
    assert sorted(got.manifest.entries) == sorted(["a.txt", *("data/" + p for p in FILES)])
