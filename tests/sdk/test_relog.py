"""Issue 13, item 2: adding a directory again costs a stat per file (tree records, sdk/_trees.py),
and never misses a change: in-place rewrites of the same size and mtime, racy files, files and
directories added or removed, content the store lost."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pathlib
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

import cairn
from cairn.core import ManifestEntry, build_tree
from cairn.sdk._scan import walk_tree
from cairn.sdk._staging import Stager
from cairn.sdk._statcache import RACY_NS, StatCache
from cairn.sdk._trees import _Scan, scan_tree
from tests._infra import raised_within, turn_held_by_a_stopped_process, waits_its_turn
from tests._modules import heavy
from tests.conftest import write

SRC = pathlib.Path(__file__).resolve().parents[2] / "src"
FILES = {
    "a.txt": "alpha",
    "b.txt": "bravo",
    "sub/c.txt": "charlie",
    "sub/deep/d.txt": "delta",
    "sub/e.txt": "echo",
    "z/f.txt": "foxtrot",
}


def _settle() -> None:
    """Wait until the files just written are no longer racy (cached and fingerprinted)."""
    time.sleep(2 * RACY_NS / 1e9)


def _make(root: pathlib.Path, files: dict[str, str]) -> None:
    for path, content in files.items():
        write(root / path, content)


def _expected(root: pathlib.Path, prefix: str = "") -> str:
    """The manifest digest of the tree as it is now, computed here from the files."""
    entries = []
    for dirpath, _, names in os.walk(root):
        for name in names:
            full = os.path.join(dirpath, name)
            with open(full, "rb") as f:
                data = f.read()
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            entries.append(
                ManifestEntry(prefix + rel, "sha256:" + hashlib.sha256(data).hexdigest(), len(data))
            )
    entries.sort(key=lambda e: e.path)
    return build_tree(entries, lambda _d, _b: None).digest


def _log(root: pathlib.Path, name: str = "ds", prefix: str | None = None) -> cairn.Artifact:
    art = cairn.Artifact(name, "dataset")
    art.add_dir(str(root), name=prefix)
    with cairn.init(project="p") as run:
        run.log_artifact(art)
    return art


@pytest.fixture
def staged(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The local files each ``Stager.stage`` call is given (the real method still runs)."""
    seen: list[str] = []
    real = Stager.stage

    def spy(self: Stager, files, **kw):  # type: ignore[no-untyped-def]
        seen.extend(os.path.join(d, n) for d, n, _ in files)
        return real(self, files, **kw)

    monkeypatch.setattr(Stager, "stage", spy)
    yield seen


def test_unchanged_directory_is_not_staged_again(tmp_path: pathlib.Path, staged: list[str]) -> None:
    root = tmp_path / "data"
    _make(root, FILES)
    _settle()
    first = _log(root)
    assert len(staged) == len(FILES)
    staged.clear()
    with pytest.warns(UserWarning, match="identical"):
        again = _log(root)
    assert again.version == first.version == "v0"
    assert staged == []  # no file read, no stat cache row decoded
    assert again.digest == _expected(root)


def test_in_place_rewrite_with_same_size_and_mtime_is_seen(
    tmp_path: pathlib.Path, staged: list[str]
) -> None:
    root = tmp_path / "data"
    _make(root, FILES)
    _settle()
    _log(root)
    target = root / "sub" / "c.txt"
    before = os.stat(target)
    with open(target, "r+b") as f:  # same size, other bytes, mtime put back
        f.write(b"CHARLIE")
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(target).st_mtime_ns == before.st_mtime_ns
    _settle()
    staged.clear()
    art = _log(root)
    assert art.version == "v1"
    assert art.digest == _expected(root)
    assert cairn.Api().artifact("p/ds:v1").get_entry("sub/c.txt").digest == (
        "sha256:" + hashlib.sha256(b"CHARLIE").hexdigest()
    )
    # Only the directory of the changed file was staged again (the others kept their entries).
    assert sorted(os.path.basename(p) for p in staged) == ["c.txt", "e.txt"]


def test_added_removed_and_moved_files_and_directories(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "data"
    _make(root, FILES)
    _settle()
    _log(root)
    steps = [
        lambda: write(root / "sub" / "new.txt", "new"),  # a file added beside others
        lambda: os.remove(root / "b.txt"),  # a file removed from the top (which has subdirs)
        lambda: shutil.rmtree(root / "sub" / "deep"),  # a whole directory removed
        lambda: write(root / "y" / "g.txt", "golf"),  # a new directory
        lambda: os.rename(root / "z" / "f.txt", root / "z" / "f2.txt"),  # renamed
        lambda: write(root / "a.txt", "ALPHA, longer now"),  # changed at the top
        lambda: shutil.rmtree(root / "z"),  # the last file of a directory gone
    ]
    for i, step in enumerate(steps, start=1):
        step()
        _settle()
        art = _log(root)
        assert art.version == f"v{i}", i
        assert art.digest == _expected(root), i
        listed = {e.path for e in cairn.Api().artifact(f"p/ds:v{i}").files()}
        on_disk = {
            os.path.relpath(os.path.join(d, n), root).replace(os.sep, "/")
            for d, _, names in os.walk(root)
            for n in names
        }
        assert listed == on_disk, i


def test_a_racy_directory_is_staged_again_until_it_settles(
    tmp_path: pathlib.Path, staged: list[str]
) -> None:
    root = tmp_path / "data"
    _make(root, {"old/a.txt": "a", "old/b.txt": "b"})
    fresh = write(root / "fresh" / "c.txt", "c")
    _settle()
    # A timestamp too close to the read (here: ahead of the clock, as with a skewed file
    # server) cannot vouch for the content: a rewrite within the same tick would keep it.
    ahead = time.time_ns() + 3600 * 10**9
    os.utime(fresh, ns=(ahead, ahead))
    _log(root)
    for _ in range(2):
        staged.clear()
        with pytest.warns(UserWarning, match="identical"):
            _log(root)
        assert [os.path.basename(p) for p in staged] == ["c.txt"]  # "old/" kept its entries
    os.utime(fresh, ns=(ahead - 7200 * 10**9, ahead - 7200 * 10**9))
    _settle()
    with pytest.warns(UserWarning, match="identical"):
        _log(root)
    staged.clear()
    with pytest.warns(UserWarning, match="identical"):
        _log(root)
    assert staged == []


def test_prefix_and_other_content(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "data"
    _make(root, FILES)
    _settle()
    first = _log(root, prefix="data")
    assert first.digest == _expected(root, "data/")
    write(root / "sub" / "c.txt", "changed")
    _settle()
    second = _log(root, prefix="data")
    assert (second.version, second.digest) == ("v1", _expected(root, "data/"))
    # An artifact with more than the directory records nothing, and is right either way.
    extra = write(tmp_path / "extra.txt", "x")
    for attempt in range(2):
        art = cairn.Artifact("mixed", "dataset")
        art.add_dir(str(root))
        art.add_file(extra)
        with cairn.init(project="p") as run:
            if attempt == 0:
                run.log_artifact(art)
            else:  # the same content again: W&B's rule, no new version
                with pytest.warns(UserWarning, match="identical"):
                    run.log_artifact(art)
        assert {e.path for e in art.files()} == {*FILES, "extra.txt"}


@pytest.mark.embedded_only
def test_a_record_whose_pages_were_collected_is_not_used(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "data"
    _make(root, FILES)
    _settle()
    first = _log(root)
    first.delete(delete_aliases=True)
    cairn.sdk.collect_garbage(grace_seconds=0)  # its pages and blobs are gone
    again = _log(root)
    assert again.digest == _expected(root)
    out = again.download(str(tmp_path / "out"))
    assert (pathlib.Path(out) / "sub" / "deep" / "d.txt").read_text() == "delta"


@pytest.mark.embedded_only
def test_a_changed_file_the_store_lost_before_the_commit_is_stored_again(
    tmp_path: pathlib.Path,
) -> None:
    """A changed directory's files are staged again from the tree record; if the store loses
    such a blob before the commit (gc, or another process's write not yet committed), the
    commit's restore finds the local file (it used to say "no local file with it is known")."""
    root = tmp_path / "data"
    _make(root, FILES)
    _settle()
    _log(root)
    write(root / "sub" / "c.txt", "charlie, changed")
    _settle()
    art = cairn.Artifact("ds", "dataset")
    art.add_dir(str(root))
    art._stage().flush()  # the changed file's blob is in the store now, referred to by nothing
    cairn.sdk.collect_garbage(grace_seconds=0)  # and gone again
    with cairn.init(project="p") as run:
        run.log_artifact(art)
    assert (art.version, art.digest) == ("v1", _expected(root))
    out = art.download(str(tmp_path / "out"))
    assert (pathlib.Path(out) / "sub" / "c.txt").read_text() == "charlie, changed"


def test_a_distributed_version_leaves_no_record(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "data"
    _make(root, FILES)
    other = write(tmp_path / "other.txt", "from another run")
    _settle()
    with cairn.init(project="p") as run:
        part = cairn.Artifact("ds", "dataset")
        part.add_file(other)
        run.upsert_artifact(part, distributed_id="d1")
    with cairn.init(project="p") as run:
        mine = cairn.Artifact("ds", "dataset")
        mine.add_dir(str(root))
        run.finish_artifact(mine, distributed_id="d1")
    assert {e.path for e in mine.files()} == {*FILES, "other.txt"}
    alone = _log(root)  # the directory alone: not the shared version's files
    assert alone.digest == _expected(root)
    assert alone.version == "v1"


# A re-log in a new process, as a user runs it, with an audit hook that lists every file and
# directory it opens or lists below the data directory (``open``: ``open()`` and ``os.open``;
# ``os.scandir`` of a path), and the modules it loaded.
RELOG_AUDITED = """
import json, os, sys
root = sys.argv[1]
opened = []
def hook(event, args):
    if event in ("open", "os.scandir") and isinstance(args[0], str) and args[0].startswith(root):
        opened.append(args[0])
sys.addaudithook(hook)
import warnings
warnings.simplefilter("ignore")
import cairn
art = cairn.Artifact("ds", "dataset")
art.add_dir(root)
with cairn.init(project="p") as run:
    run.log_artifact(art)
print(json.dumps({"version": art.version, "opened": opened, "modules": sorted(sys.modules)}))
"""


@pytest.mark.embedded_only  # the process's own walk: the same against a server
def test_an_unchanged_relog_in_a_new_process_reads_no_file_nor_download_code(
    tmp_path: pathlib.Path,
) -> None:
    """Logging a directory again from a new process opens no file of it, and loads neither the
    download module (its threads, ``logging``, ``uuid``) nor the reference handlers (issue 13:
    the re-log's imports): both load when first used."""
    root = tmp_path / "data"
    _make(root, FILES)
    _settle()
    _log(root)
    out = subprocess.run(
        [sys.executable, "-c", RELOG_AUDITED, str(root)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(SRC)},  # this tree's cairn, wherever the cwd is
    )
    result = json.loads(out.stdout)
    assert result["version"] == "v0"  # the version there: no new one
    # Only directories were opened and listed, never a file's content.
    assert len(set(result["opened"])) == 4, result["opened"]  # data, sub, sub/deep, z
    assert [p for p in result["opened"] if not os.path.isdir(p)] == []
    modules = set(result["modules"])
    assert "cairn.sdk._trees" in modules  # it did log
    unwanted = {"cairn.sdk._download", "cairn.sdk._references", "concurrent.futures", "uuid"}
    assert sorted(unwanted & modules) == []
    assert heavy(modules) == []


@pytest.mark.embedded_only  # no store involved
@pytest.mark.no_store
def test_the_fingerprint_walk_sees_what_the_first_log_saw(tmp_path: pathlib.Path) -> None:
    """``scan_tree`` (a re-log's walk) fingerprints the directories ``walk_tree`` (a first
    log's walk) gives ``_Scan``: the same directories, keys and order, a directory linked twice
    walked once (where the first log walked it), names that sort differently with "/"."""
    root = tmp_path / "data"
    _make(root, {**FILES, "a-b/x.txt": "x", "a/y.txt": "y", "a.b": "dot", "sub/a-b": "file"})
    os.symlink(root / "sub", root / "link-sub")  # after "a*/", before "sub/": walked here
    os.symlink(root / "sub" / "deep", root / "z" / "loop")  # a directory reached twice
    scan = _Scan()
    for group in walk_tree(str(root), "pre/"):
        if group:
            scan.add(group)
    walked = scan.finish()
    assert scan_tree(str(root), "pre/") == walked
    assert walked[str(root / "link-sub")][0] == "pre/link-sub/"
    assert str(root / "sub") not in walked  # the link came first in path order


@pytest.mark.embedded_only
@pytest.mark.skipif(not os.path.exists("/proc/locks"), reason="reads /proc/locks (Linux)")
def test_stat_cache_rows_are_written_in_turn_not_by_polling(tmp_path: pathlib.Path) -> None:
    """Eight processes adding 13 directories each wrote the shared stat cache after every one,
    polling for its write lock (0.2 s of SQLite's sleeps in a run once the store's own writers
    queued). Its writes now wait in the queue (``writer_turn``), SQLite's lock free meanwhile.
    (On the old code the write went straight to SQLite's lock and was done.)"""
    cache = StatCache(str(tmp_path / "stat-cache.sqlite"))
    cache.record_files([("/d", "a", (1, 2, 3, 4, 5), "sha256:" + "0" * 64)])  # the file exists
    row = ("/d", "b", (1, 3, 3, 4, 5), "sha256:" + "1" * 64)
    assert waits_its_turn(cache.path, lambda: cache.record_files([row]))
    assert set(StatCache(cache.path).load_dir("/d")) == {"a", "b"}
    cache.close()


@pytest.mark.embedded_only
def test_a_failed_stat_cache_write_is_rolled_back_before_its_turn_goes(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that fails is rolled back while it still has the writers' turn: the next writer
    does not meet SQLite's lock and poll for it (review N8; the old code released the turn with
    the transaction open)."""
    from cairn.sdk import _statcache

    cache = StatCache(str(tmp_path / "stat-cache.sqlite"))
    real, open_at_release = _statcache.writer_turn, []

    @contextlib.contextmanager
    def turn(path: str, timeout: float) -> Iterator[None]:
        with real(path, timeout):
            try:
                yield
            finally:
                open_at_release.append(cache._db().in_transaction)  # type: ignore[union-attr]

    def failing(db: sqlite3.Connection, _by_dir: object) -> None:
        db.execute("BEGIN IMMEDIATE")
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(_statcache, "writer_turn", turn)
    monkeypatch.setattr(cache, "_record", failing)
    cache.record_files([("/d", "a", (1, 2, 3, 4, 5), "sha256:" + "0" * 64)])  # forgotten
    assert open_at_release == [False]
    cache.close()


@pytest.mark.embedded_only
def test_a_stat_cache_write_waits_for_its_turn_only_as_long_as_sqlite_waited(
    tmp_path: pathlib.Path,
) -> None:
    """A best-effort cache: a write whose turn does not come within the stat cache's busy
    timeout (SQLite's, 5 s) is skipped, as one SQLite refused was, not waited for with no bound
    (the old code: the bound on a hang fails it)."""
    cache = StatCache(str(tmp_path / "stat-cache.sqlite"))
    cache.busy_seconds = 0.2
    row = ("/d", "a", (1, 2, 3, 4, 5), "sha256:" + "0" * 64)
    with turn_held_by_a_stopped_process(cache.path):
        assert raised_within(lambda: cache.record_files([row])) is None
    assert StatCache(cache.path).load_dir("/d") == {}  # forgotten, not failed
    cache.record_files([row])
    assert set(StatCache(cache.path).load_dir("/d")) == {"a"}
    cache.close()
