"""Issue 18: memory does not grow with the file count (the 100,000-file sibling of bench_scale).

One tree of 100,000 tiny files is made once per session and logged by a fresh process; other
fresh processes then download it, list it (``files()``, ``cairn artifact files``) and serve its
web UI listing. Each one's peak RSS is the kernel's ``VmHWM`` of that very process (read by itself
at exit, or from ``/proc`` while a server runs; not the ``ru_maxrss`` of a process that started
it, which a child inherits), or of a staging worker it waited for if larger, compared with a
floor measured the same way: it must stay within a
bound that a process holding the whole manifest at once breaks (100,000 entries as Python objects
are ~35 MiB; logging this tree before streaming peaked ~2.3 KB per file). Memory, unlike time,
does not depend on how loaded the machine is, so the bounds hold on a busy CI runner.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from filelock import FileLock

from cairn.core import ManifestEntry, build_tree, digest_bytes
from cairn.server import Backend, ServerConfig, migrate
from cairn.service import CommitRequest
from tests._infra import ADMIN_KEY, CairnServer, _wait_port, free_port
from tests._peak import process_peak, run_measured

pytestmark = [pytest.mark.xdist_group("scale-memory"), pytest.mark.timeout(600)]

FILES = 100_000
PER_DIR = 500
# Above the floor (a process that imports cairn and opens the store), at most this many MiB.
# Measured with streaming: ~90 MiB logging and ~5 MiB downloading; before it, 223 and 87 MiB.
LOG_ABOVE_FLOOR_MIB = 130
DOWNLOAD_ABOVE_FLOOR_MIB = 40
# Listing every entry above looking one up (the same process otherwise): measured 12 MiB (the
# SDK keeps 64 decoded pages); holding the whole list at once, 30 MiB.
LIST_ABOVE_FIRST_MIB = 20

# A draft adding the tree (every file known to the stat cache) above the floor: measured
# 75 MiB streamed into pages; 175 MiB with the changes sent as one list (the code before).
DRAFT_ABOVE_FLOOR_MIB = 110

STEPS = textwrap.dedent(
    """
    import json, os, sys, warnings
    warnings.simplefilter("ignore")
    step, arg = sys.argv[1:3]
    import cairn
    if step == "base":
        from cairn.sdk import current_service
        current_service()
    elif step == "log":
        with cairn.init(project="scale") as run:
            art = cairn.Artifact("big", "dataset")
            art.add_dir(arg)
            run.log_artifact(art)
        print(json.dumps({"count": art.file_count, "digest": art.digest}))
    elif step == "draft":  # a draft of a one-file version adds the tree under data/
        with cairn.init(project="scale") as run:
            one = cairn.Artifact("drafted", "dataset")
            with one.new_file("README") as f:
                f.write("one file")
            run.log_artifact(one)
            draft = one.new_draft()
            draft.add_dir(arg, name="data")
            run.log_artifact(draft)
        print(json.dumps({"count": draft.file_count, "digest": draft.digest}))
    else:
        api = cairn.Api(overrides={"project": "scale", "entity": os.environ.get("ENTITY")})
        art = api.artifact("big:latest")
        if step == "download":
            art.download(arg)
            print(json.dumps({"count": art.file_count, "digest": art.digest}))
        elif step == "entry":  # a point lookup: the pages from the root to one leaf
            print(json.dumps({"path": art.get_entry(arg).path, "entity": art.entity}))
        else:  # files: every entry, read page by page
            n = 0
            for f in art.files():
                n += 1
            print(json.dumps({"count": n, "last": f.path}))
    """
)

CLI = "import sys\nfrom cairn.cli import main\nsys.argv[0] = 'cairn'\nmain()\n"


def _step(step: str, arg: str, env: dict[str, str]) -> tuple[float, dict[str, Any]]:
    peak, out = run_measured(STEPS, [step, arg], env)
    return peak, (json.loads(out.splitlines()[-1]) if out.strip() else {})


def _make_dirs(root: Path, dirs: range) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    for d in dirs:
        sub = root / f"d{d:04}"
        sub.mkdir()
        for f in range(PER_DIR):
            fd = os.open(sub / f"f{f:04}.txt", flags, 0o644)
            os.write(fd, f"{d}.{f}\n".encode())
            os.close(fd)


def _make_tree(root: Path) -> None:
    """100,000 files of a few distinct bytes each; two threads (the system calls release the
    GIL), each on its own directories."""
    root.mkdir()
    n = FILES // PER_DIR
    other = threading.Thread(target=_make_dirs, args=(root, range(n // 2, n)))
    other.start()
    _make_dirs(root, range(n // 2))
    other.join()


# Where the tree and its download go when there is room: a file system in memory. 200,000 small
# files on the machine's disk cost seconds of CPU to make (20,000 took 4.1-4.5 s of CPU on ext4
# against 0.2 s on tmpfs, at load 9) and as long again to delete in a later run's clean-up.
MEMORY_FS = Path("/dev/shm")
MEMORY_NEEDED = 2 << 30  # the tree and its download take ~0.8 GiB there (a page a file)


def _in_memory() -> Path | None:
    """A new directory on a tmpfs with room for the tree and its download, or None. Directories
    an earlier run left there (killed before its clean-up) are removed first."""
    try:
        with open("/proc/mounts") as f:
            mounted = {fields[1]: fields[2] for fields in (line.split() for line in f)}
        free = os.statvfs(MEMORY_FS)
    except OSError:
        return None
    if mounted.get(str(MEMORY_FS)) != "tmpfs" or free.f_bavail * free.f_frsize < MEMORY_NEEDED:
        return None
    for old in MEMORY_FS.glob("cairn-scale-*-*"):
        try:
            os.kill(int(old.name.split("-")[2]), 0)
        except ProcessLookupError:
            shutil.rmtree(old, ignore_errors=True)
        except (ValueError, OSError):
            pass
    return Path(tempfile.mkdtemp(prefix=f"cairn-scale-{os.getpid()}-", dir=MEMORY_FS))


@dataclass(frozen=True)
class Logged:
    base: Path
    tree: Path
    files: Path  # where the tree is, and downloads go
    env: dict[str, str]
    floor: float  # MiB: importing cairn and opening the store
    peak: float  # MiB: logging the tree
    count: int
    digest: str


@pytest.fixture(scope="session")
def logged(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Logged]:
    """The 100,000-file tree, logged by a fresh process into an embedded store, shared
    read-only by this module's tests (for the session: a worker of pytest-xdist may run other
    modules' tests between them, which would make a module fixture again). The tree and the
    downloads are in memory (``_in_memory``) and removed at the end when only this process uses
    them; else left to pytest's clean-up of old temporary directories."""
    # Without --dist loadgroup pytest-xdist may run this module's tests on both workers: the
    # first to come makes the tree and its store in the run's directory shared by the workers,
    # the other waits for it (under a file lock) and reads the same store.
    shared = tmp_path_factory.getbasetemp()
    alone = True
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
        alone = bool(getattr(request.config.option, "loadgroup", False))
    base = shared / "scale-100k"
    made = base / "logged.json"
    files = (_in_memory() if alone else None) or base
    try:
        with FileLock(str(shared / "scale-100k.lock")):
            found = _logged(base, files, made)
        yield found
    finally:
        if files != base:
            shutil.rmtree(files, ignore_errors=True)


def _logged(base: Path, files: Path, made: Path) -> Logged:
    tree = files / "tree"
    if not made.exists():
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir()
        _make_tree(tree)
    env = {
        **os.environ,
        "CAIRN_DIR": str(base / "store"),
        "CAIRN_CACHE_DIR": str(base / "cache"),
        "CAIRN_SILENT": "true",
    }
    for var in ("CAIRN_BASE_URL", "CAIRN_API_KEY"):
        env.pop(var, None)
    if made.exists():
        floor, peak, count, digest = json.loads(made.read_text())
        return Logged(base, tree, files, env, floor, peak, count, digest)
    floor, _ = _step("base", "", env)
    peak, result = _step("log", str(tree), env)
    made.write_text(json.dumps([floor, peak, int(result["count"]), str(result["digest"])]))
    return Logged(base, tree, files, env, floor, peak, int(result["count"]), str(result["digest"]))


def test_a_100k_file_tree_logs_in_bounded_memory(logged: Logged) -> None:
    assert logged.count == FILES
    assert logged.peak - logged.floor <= LOG_ABOVE_FLOOR_MIB, (logged.peak, logged.floor)


def test_a_100k_file_version_downloads_in_bounded_memory(logged: Logged) -> None:
    dest = logged.files / "out"
    peak, result = _step("download", str(dest), logged.env)
    assert result["digest"] == logged.digest
    assert peak - logged.floor <= DOWNLOAD_ABOVE_FLOOR_MIB, (peak, logged.floor)
    # What came down is the tree (spot checks: the full verify is bench_scale's).
    for d, f in ((0, 0), (117, 333), (FILES // PER_DIR - 1, PER_DIR - 1)):
        assert (dest / f"d{d:04}" / f"f{f:04}.txt").read_text() == f"{d}.{f}\n"
    assert sum(len(files) for _, _, files in os.walk(dest)) == FILES


def test_a_draft_adding_a_100k_file_directory_streams_it(logged: Logged) -> None:
    """``new_draft()`` + ``add_dir`` of the tree: its entries go into manifest pages beside the
    base version's as the tree is walked (the commit names them), never into one list of
    changes; the version is the one the entries build, computed here independently."""
    peak, result = _step("draft", str(logged.tree), logged.env)
    entries = [ManifestEntry("README", digest_bytes(b"one file"), 8)]
    for i in range(FILES):
        d, f = divmod(i, PER_DIR)
        data = f"{d}.{f}\n".encode()
        entries.append(ManifestEntry(f"data/d{d:04}/f{f:04}.txt", digest_bytes(data), len(data)))
    expected = build_tree(entries, lambda digest, data: None).digest
    assert result == {"count": FILES + 1, "digest": expected}
    assert peak - logged.floor <= DRAFT_ABOVE_FLOOR_MIB, (peak, logged.floor)


def test_files_of_a_100k_file_version_are_read_page_by_page(logged: Logged) -> None:
    first, result = _step("entry", "d0117/f0333.txt", logged.env)
    assert result["path"] == "d0117/f0333.txt"
    every, result = _step("files", "", logged.env)
    assert result == {"count": FILES, "last": "d0199/f0499.txt"}
    assert every - first <= LIST_ABOVE_FIRST_MIB, (every, first)


def test_cli_lists_a_100k_file_version_page_by_page(logged: Logged) -> None:
    # The floor: the same command, reading only the pages up to one entry (it alone matches).
    env = {**logged.env, "CAIRN_PROJECT": "scale"}
    first, out = run_measured(
        CLI, ["artifact", "files", "--prefix", "d0000/f0000", "big:latest"], env
    )
    assert out.splitlines()[1:] and out.splitlines()[-1].endswith("d0000/f0000.txt")
    every, out = run_measured(CLI, ["artifact", "files", "big:latest"], env)
    lines = out.splitlines()
    assert len(lines) == FILES + 1 and lines[-1].endswith("d0199/f0499.txt")
    assert every - first <= LIST_ABOVE_FIRST_MIB, (every, first)


def _listing_pages(client: httpx.Client, version: str) -> Iterator[str]:
    """Every page of the version's file tree in the web UI: the root, then each directory, and
    for a directory the pages after the first (``start=``), as a browser follows them."""
    r = client.get(f"{version}/files")
    assert r.status_code == 200, r.text[-2000:]
    yield r.text
    for d in (0, 117, FILES // PER_DIR - 1):
        url = f"{version}/files/d{d:04}/"
        while url:
            r = client.get(url)
            assert r.status_code == 200, r.text[-2000:]
            yield r.text
            more = re.search(r'href="([^"]*[?&]start=[^"]*)"', r.text)
            url = more.group(1).replace("&amp;", "&") if more else ""


def test_web_ui_lists_a_100k_file_version_page_by_page(logged: Logged) -> None:
    _, result = _step("entry", "d0000/f0000.txt", logged.env)
    collection = f"/{result['entity']}/scale/artifacts/dataset/big"
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cairn", "ui", "--port", str(port)],
        env=logged.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port, proc, "cairn ui")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            page = client.get(collection)  # the floor: the store open, pages rendered
            assert page.status_code == 200 and "v0" in page.text
            first = process_peak(proc.pid)
            text = "".join(_listing_pages(client, collection + "/v0"))
        every = process_peak(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)
    for d, f in ((0, 0), (117, 333), (FILES // PER_DIR - 1, PER_DIR - 1)):
        assert f"f{f:04}.txt" in text and f"d{d:04}" in text
    assert every - first <= LIST_ABOVE_FIRST_MIB, (every, first)


def test_a_server_serves_a_100k_entry_version_page_by_page(tmp_path: Path) -> None:
    """Through ``cairn server`` (a process): ``files()`` of a 100,000-entry version and its web
    UI listing keep both the client and the server within the bound. The version (100 distinct
    blobs; listing reads pages, not content) is committed before the server starts by the
    server's own service in this process: the catalog rows and grants its commit route makes,
    without 100,000 entries in a request body, and the server process's peak is none of it."""
    db, store = str(tmp_path / "catalog.sqlite"), str(tmp_path / "blobs")
    migrate(db)
    backend = Backend.open(ServerConfig(db=db, store=store, admin_key=ADMIN_KEY))
    blobs = [(digest_bytes(b"%d" % i), b"%d" % i) for i in range(100)]
    backend.service.store_blobs(blobs)
    changes = []
    for i in range(FILES):
        path = f"d{i // PER_DIR:04}/f{i % PER_DIR:04}.txt"
        digest, data = blobs[i % 100]
        changes.append((path, ManifestEntry(path, digest, len(data))))
    result = backend.service.commit(CommitRequest("me", "scale", "big", "dataset", changes))
    del changes
    backend.close()
    assert result.version is not None
    server = CairnServer(db, store, migrate=False)
    try:
        key = server.create_key("me", "scale")
        env = {
            **os.environ,
            "CAIRN_BASE_URL": server.url,
            "CAIRN_API_KEY": key,
            "CAIRN_CACHE_DIR": str(tmp_path / "cache"),
            "CAIRN_SILENT": "true",
            "ENTITY": "me",
        }
        env.pop("CAIRN_DIR", None)
        assert server.proc is not None
        with httpx.Client(base_url=server.url, cookies={"cairn_key": key}, timeout=120) as c:
            page = c.get("/me/scale/artifacts/dataset/big")
            assert page.status_code == 200 and "v0" in page.text, page.text[-2000:]
        client_first, out = _step("entry", "d0117/f0333.txt", env)
        assert out["path"] == "d0117/f0333.txt"
        server_first = process_peak(server.proc.pid)
        client_every, out = _step("files", "", env)
        assert out == {"count": FILES, "last": "d0199/f0499.txt"}
        version = "/me/scale/artifacts/dataset/big/v0"
        with httpx.Client(base_url=server.url, cookies={"cairn_key": key}, timeout=120) as c:
            text = "".join(_listing_pages(c, version))
        assert "f0333.txt" in text
        server_every = process_peak(server.proc.pid)
    finally:
        server.stop()
    figures = {"client": (client_every, client_first), "server": (server_every, server_first)}
    above = {side: every - first for side, (every, first) in figures.items()}
    assert max(above.values()) <= LIST_ABOVE_FIRST_MIB, figures
