"""The embedded store's quick catalog (``catalog/_embedded.py``, ``_quick_tx.py``): a re-log's
transactions on plain sqlite3, everything else on the full catalog, and the same catalog either
way.

Each case runs the same operations on two fresh stores made alike: one opened as a new process
opens it (transactions try the quick path first), one whose full SQLAlchemy catalog is opened
first (the path every operation took before). The results, the errors and every row of every
table must be equal (times and generated version ids masked), and the case says whether the quick
path must have answered all of it or handed over to the full catalog."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from cairn.catalog import EmbeddedCatalog
from cairn.core import FINISHED, RUNNING, ManifestEntry, RunRecord
from cairn.service import CommitRequest, FinishRequest, LocalService, StageRequest
from tests._infra import raised_within, turn_held_by_a_stopped_process, waits_its_turn

ME = "me"


def _run(run_id: str, project: str = "p", config: dict[str, Any] | None = None) -> RunRecord:
    return RunRecord(
        id=run_id,
        entity=ME,
        project=project,
        name=f"run-{run_id}",
        group="g",
        job_type="train",
        config=config or {"seed": 1},
        state=RUNNING,
        created_at=1000.0,
    )


def _entry(svc: LocalService, tmp: pathlib.Path, path: str, content: bytes) -> ManifestEntry:
    f = tmp / "files" / path
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_bytes(content)
    info = svc.store_file(str(f))
    return ManifestEntry(path, info.digest, info.size)


def _request(changes: list[Any], **fields: Any) -> CommitRequest:
    base: dict[str, Any] = {
        "entity": ME,
        "project": "p",
        "name": "ds",
        "type": "dataset",
        "changes": changes,
    }
    return CommitRequest(**{**base, **fields})


class World:
    """One store, made by ``setup`` and reopened as a new process would open it."""

    def __init__(self, root: pathlib.Path, *, full_first: bool) -> None:
        self.root = root
        svc = LocalService.open(str(root / "store"))
        self.setup(svc)
        svc.close()
        self.svc = LocalService.open(str(root / "store"))
        catalog = self.svc.catalog
        assert isinstance(catalog, EmbeddedCatalog) and catalog.quick
        self.catalog = catalog
        if full_first:
            catalog.full  # noqa: B018 - the full catalog from now on, as before this change

    def setup(self, svc: LocalService) -> None:
        svc.start_run(_run("r0"))
        self.files = [_entry(svc, self.root, f"d/f{i}.txt", b"x%d" % i) for i in range(3)]
        first = svc.commit(
            _request(
                [(e.path, e) for e in self.files],
                aliases=["gold"],
                tags=["t0"],
                run_id="r0",
                metadata={"n": 3},
                description="three files",
            )
        )
        assert first.version is not None and first.created
        self.v0 = first.version
        other = _entry(svc, self.root, "m.bin", b"model")
        svc.commit(_request([(other.path, other)], name="net", type="model", run_id="r0"))
        kept = svc.commit(_request([(other.path, other)], name="short", run_id="r0"))
        assert kept.version is not None
        self.short = svc.set_ttl(kept.version.id, 3600.0)
        svc.finish_run(ME, "p", "r0", FINISHED, {"seed": 1})

    def dump(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table, times masked, version ids named by collection and index."""
        with sqlite3.connect(self.root / "store" / "catalog.sqlite") as db:
            ids = {
                vid: f"c{cid}-v{idx}"
                for vid, cid, idx in db.execute("SELECT id, collection_id, idx FROM versions")
            }
            tables = [
                r[0]
                for r in db.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
                )
            ]
            out = {}
            for table in tables:
                cur = db.execute(f"SELECT * FROM {table}")
                names = [d[0] for d in cur.description]
                rows = [
                    tuple(
                        ("time" if v is not None else None)
                        if n.endswith("_at")
                        else ids.get(v, v)
                        if isinstance(v, str)
                        else v
                        for n, v in zip(names, row, strict=True)
                    )
                    for row in cur
                ]
                out[table] = sorted(rows, key=repr)
            return out

    def outcome(self, fn: Callable[[World], Any]) -> Any:
        """What ``fn`` returned or raised, times masked and version ids named as in ``dump``."""
        try:
            value = fn(self)
        except Exception as exc:  # noqa: BLE001 - the error is the outcome compared
            return ("raised", type(exc).__name__, str(exc))
        with sqlite3.connect(self.root / "store" / "catalog.sqlite") as db:
            ids = {
                vid: f"c{cid}-v{idx}"
                for vid, cid, idx in db.execute("SELECT id, collection_id, idx FROM versions")
            }
        return _masked(value, ids)


def _masked(value: Any, ids: dict[str, str]) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: (
                "time"
                if f.name.endswith("_at") and getattr(value, f.name) is not None
                else _masked(getattr(value, f.name), ids)
            )
            for f in dataclasses.fields(value)
        }
    if isinstance(value, list | tuple):
        return [_masked(v, ids) for v in value]
    if isinstance(value, str):
        return ids.get(value, value)
    return value


def _relog(w: World, **fields: Any) -> list[Any]:
    """What the SDK asks for when it re-logs an unchanged directory from a new process."""
    svc = w.svc
    started = svc.start_run(_run("r1", config={"lr": 0.1}))
    result = svc.commit(
        _request(
            [],
            manifest=w.v0.digest,
            aliases=["best"],
            tags=["t1", "t0"],
            run_id="r1",
            **fields,
        )
    )
    svc.finish_run(ME, "p", "r1", FINISHED, {"lr": 0.1, "epochs": 2})
    return [started, result, svc.get_run(ME, "p", "r1")]


def _relog_by_changes(w: World) -> list[Any]:
    """The same content named entry by entry (a directory without a tree record)."""
    svc = w.svc
    svc.start_run(_run("r1"))
    result = svc.commit(_request([(e.path, e) for e in w.files], aliases=["again"], run_id="r1"))
    svc.finish_run(ME, "p", "r1", FINISHED, None)
    return [result, svc.get_run(ME, "p", "r1")]


def _use(w: World) -> Any:
    """W&B's use_artifact of the version: the run is recorded as its user."""
    run = w.svc.start_run(_run("r1"))
    w.svc.use_version(w.v0.id, run)
    return run


def _one_file_changed(w: World) -> list[Any]:
    """A re-log with one file changed: its change onto the recorded manifest, a new version
    (numbered, ``latest`` moved, metadata and description in the search index)."""
    svc = w.svc
    svc.start_run(_run("r1"))
    changed = _entry(svc, w.root, "d/f1.txt", b"changed")
    result = svc.commit(
        _request(
            [(changed.path, changed)],
            manifest=w.v0.digest,
            aliases=["best", "gold"],
            tags=["t1"],
            run_id="r1",
            metadata={"lr": 0.5, "note": "one file", "deep": {"n": [1, 2]}},
            description="One file changed, again",
        )
    )
    svc.finish_run(ME, "p", "r1", FINISHED, None)
    return result


def _new_content(w: World) -> Any:
    w.svc.start_run(_run("r1"))
    extra = _entry(w.svc, w.root, "d/new.txt", b"new")
    return w.svc.commit(_request([(extra.path, extra)], base_version_id=w.v0.id, run_id="r1"))


def _staged(w: World) -> Any:
    extra = _entry(w.svc, w.root, "d/staged.txt", b"staged")
    return w.svc.stage(
        StageRequest(ME, "p", "ds", "dataset", distributed_id="g", changes=[(extra.path, extra)])
    )


def _upserts(w: World, *, draft: bool = False, **fields: Any) -> list[Any]:
    """Two writers' upserts into a distributed version of an existing collection, as
    ``upsert_artifact`` of processes that share a run group: the first makes the pending
    version, the second stages into it (one path again: the last change staged wins), aliases
    asked for on the way. ``draft``: onto the first version, one of its files removed."""
    w.svc.start_run(_run("r2"))
    out: list[Any] = []
    for i, alias in enumerate(("a", "b")):
        mine = _entry(w.svc, w.root, f"d/w{i}.txt", b"w%d" % i)
        again = _entry(w.svc, w.root, "d/shared.txt", b"s%d" % i)
        changes: list[Any] = [(again.path, again), (mine.path, mine)]
        if draft:
            changes.insert(0, ("d/f0.txt", None))
        request = StageRequest(
            ME,
            "p",
            "ds",
            "dataset",
            distributed_id="g",
            aliases=[alias],
            changes=changes,
            run_id="r2",
            base_version_id=w.v0.id if draft else None,
            **fields,
        )
        out.append(w.svc.stage(request))
    return out


def _finish(w: World, **fields: Any) -> Any:
    """Finishing a distributed version another process staged into (two writers, aliases asked
    for on the way), as ``finish_artifact`` of a run that brings nothing: the quick path takes
    the finish; the writers' upserts are the full catalog's (another process here)."""
    writers = LocalService.open(str(w.root / "store"))
    try:
        for i, alias in enumerate(("a", "b")):
            extra = _entry(writers, w.root, f"d/w{i}.txt", b"w%d" % i)
            writers.stage(
                StageRequest(
                    ME,
                    "p",
                    "ds",
                    "dataset",
                    distributed_id="g",
                    aliases=[alias],
                    changes=[(extra.path, extra)],
                )
            )
    finally:
        writers.close()
    w.svc.start_run(_run("r1"))
    request = FinishRequest(
        ME,
        "p",
        "ds",
        "dataset",
        distributed_id="g",
        changes=[],
        aliases=["done"],
        run_id="r1",
        **fields,
    )
    return w.svc.finish(request)


def _commit_other(w: World, **fields: Any) -> Any:
    return w.svc.commit(_request([], manifest=w.v0.digest, **fields))


CASES = [
    # A re-log and what it is made of: the quick path answers every transaction.
    pytest.param(_relog, True, id="re-log"),
    pytest.param(_relog_by_changes, True, id="re-log-by-entries"),
    pytest.param(lambda w: _relog(w, description="x", metadata={"x": 1}), True, id="re-log-meta"),
    pytest.param(_use, True, id="use"),
    pytest.param(_one_file_changed, True, id="one-file-changed"),
    pytest.param(_new_content, True, id="new-version-of-a-draft"),
    pytest.param(
        lambda w: w.svc.commit(_request([], name="short", manifest=w.short.digest)),
        True,
        id="version-with-ttl",  # alive by the same statement (_ttl.alive) both ways
    ),
    # Resolving a name (``cairn artifact get``, ``Api().artifact``) in one statement.
    pytest.param(
        lambda w: [w.svc.resolve(ME, "p", "ds", label) for label in ("gold", "v0", None)],
        True,
        id="resolve",
    ),
    pytest.param(lambda w: w.svc.resolve(ME, "p", "short", None), True, id="resolve-with-ttl"),
    # A distributed version's writers and its finisher, the project and collection made too.
    pytest.param(_staged, True, id="distributed-stage"),
    pytest.param(_upserts, True, id="distributed-upserts"),
    pytest.param(lambda w: _upserts(w, draft=True), True, id="distributed-draft-upserts"),
    pytest.param(lambda w: [_upserts(w), _finish(w)], True, id="upserts-then-finish"),
    pytest.param(_finish, True, id="distributed-finish"),
    pytest.param(
        lambda w: w.svc.stage(
            StageRequest(ME, "p", "new", "dataset", distributed_id="g", changes=[])
        ),
        True,
        id="upsert-new-collection",
    ),
    pytest.param(lambda w: w.svc.start_run(_run("r9", project="q")), True, id="new-project"),
    pytest.param(lambda w: _commit_other(w, name="fresh"), True, id="new-collection"),
    # Anything more: the full catalog.
    pytest.param(lambda w: _finish(w, metadata={"m": 1}), False, id="finish-with-metadata"),
    pytest.param(lambda w: [_finish(w), _finish(w)], False, id="finish-repeated"),
    pytest.param(lambda w: _upserts(w, metadata={"m": 1}), False, id="upsert-with-metadata"),
    pytest.param(lambda w: w.svc.resolve(ME, "p", "ds", "v7"), False, id="resolve-no-version"),
    pytest.param(lambda w: w.svc.resolve(ME, "q", "ds", None), False, id="resolve-no-project"),
    pytest.param(lambda w: w.svc.start_run(_run("r0", config={"a": 2})), False, id="resumed-run"),
    pytest.param(lambda w: _commit_other(w, type="model"), False, id="type-conflict"),
    pytest.param(lambda w: _commit_other(w, run_id="nope"), False, id="unknown-run"),
    pytest.param(
        lambda w: _commit_other(w, expect_alias=("gold", w.v0.id)), False, id="expect-alias"
    ),
    pytest.param(lambda w: w.svc.finish_run(ME, "p", "nope", FINISHED, None), False, id="no-run"),
]


@pytest.mark.parametrize(("fn", "stays_quick"), CASES)
def test_quick_and_full_catalogs_leave_the_same_rows(
    tmp_path: pathlib.Path, fn: Callable[[World], Any], stays_quick: bool
) -> None:
    quick = World(tmp_path / "quick", full_first=False)
    full = World(tmp_path / "full", full_first=True)
    try:
        assert quick.dump() == full.dump()  # made alike
        assert quick.outcome(fn) == full.outcome(fn)
        assert quick.dump() == full.dump()
        # The quick path answered every transaction, or handed one over to the full catalog.
        assert quick.catalog.quick is stays_quick
        assert not full.catalog.quick
    finally:
        quick.svc.close()
        full.svc.close()


def test_a_log_in_a_new_process_loads_no_sqlalchemy(tmp_path: pathlib.Path) -> None:
    data = tmp_path / "data"
    for d in range(3):
        (data / f"d{d}").mkdir(parents=True)
        for f in range(4):
            (data / f"d{d}" / f"f{f}.txt").write_text(f"{d}-{f}")
    script = (
        "import sys, warnings, cairn\n"
        "warnings.simplefilter('ignore')\n"
        "with cairn.init(project='p') as run:\n"
        "    art = cairn.Artifact('ds', 'dataset')\n"
        "    art.add_dir(sys.argv[1])\n"
        "    run.log_artifact(art, aliases=['again'])\n"
        "print(art.version, 'sqlalchemy' in sys.modules)\n"
    )
    env = {
        **os.environ,
        "CAIRN_DIR": str(tmp_path / "store"),
        "CAIRN_CACHE_DIR": str(tmp_path / "cache"),
        "CAIRN_SILENT": "true",
    }
    env.pop("CAIRN_BASE_URL", None)

    def log() -> str:
        out = subprocess.run(
            [sys.executable, "-c", script, str(data)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()

    assert log() == "v0 False"  # the first log makes the project and collection (not the store)
    assert log() == "v0 False"  # unchanged: the same version, and never SQLAlchemy
    (data / "d1" / "f2.txt").write_text("changed")
    assert log() == "v1 False"  # one file changed: the next version, still without it
    assert log() == "v1 False"
    fetch = (
        "import sys, warnings, cairn\n"
        "warnings.simplefilter('ignore')\n"
        "art = cairn.Api().artifact('p/ds:again')\n"
        "art.download(root=sys.argv[1])\n"
        "print(art.version, 'sqlalchemy' in sys.modules)\n"
    )
    out = tmp_path / "out"
    got = subprocess.run(
        [sys.executable, "-c", fetch, str(out)], env=env, capture_output=True, text=True, check=True
    )
    assert got.stdout.strip() == "v1 False"  # a resolve and a download: never SQLAlchemy
    assert (out / "d1" / "f2.txt").read_text() == "changed"
    svc = LocalService.open(str(tmp_path / "store"))
    try:
        record = svc.resolve(svc.default_entity, "p", "ds", "again")
        assert (record.version, record.aliases) == ("v1", ("latest", "again"))
        assert [r.state for r in svc.list_runs(svc.default_entity, "p")] == [FINISHED] * 4
    finally:
        svc.close()


@pytest.mark.skipif(not os.path.exists("/proc/locks"), reason="reads /proc/locks (Linux)")
def test_a_quick_write_waits_for_its_turn_in_a_queue_not_on_sqlites_lock(
    tmp_path: pathlib.Path,
) -> None:
    """As the blob index's writers (``tests/storage/test_packs.py``): eight processes upserting
    at once polled for the catalog's write lock, and a run's start or finish waited up to
    0.3 s for it. A quick write now waits in the kernel's queue (``writer_turn``), SQLite's
    lock free meanwhile; it still commits once its turn comes. (On the old code the write went
    straight to SQLite's lock and was done.)"""
    svc = LocalService.open(str(tmp_path / "store"))
    svc.close()
    svc = LocalService.open(str(tmp_path / "store"))
    assert isinstance(svc.catalog, EmbeddedCatalog) and svc.catalog.quick
    db_path = str(tmp_path / "store" / "catalog.sqlite")
    assert waits_its_turn(db_path, lambda: svc.start_run(_run("queued")))
    assert svc.get_run(ME, "p", "queued").state == RUNNING
    assert svc.catalog.quick  # and it was the quick path's
    svc.close()


def test_a_quick_write_waits_for_its_turn_only_as_long_as_sqlite_waited(
    tmp_path: pathlib.Path,
) -> None:
    """A write waits for the catalog's turn as long as SQLite waited for its lock, then is
    refused with the holder named (not handed to the full catalog to wait on SQLite's lock the
    old way): nothing is written, and it commits once the holder is gone. (On the old code it
    waits on: the bound on a hang fails it.)"""
    from cairn.errors import UnavailableError

    svc = LocalService.open(str(tmp_path / "store"))
    svc.close()
    svc = LocalService.open(str(tmp_path / "store"))
    assert isinstance(svc.catalog, EmbeddedCatalog)
    svc.catalog.busy_seconds = 0.2
    with turn_held_by_a_stopped_process(str(tmp_path / "store" / "catalog.sqlite")) as pid:
        refused = raised_within(lambda: svc.start_run(_run("stopped")))
        assert isinstance(refused, UnavailableError), refused
        assert f"process {pid}" in str(refused)
        assert svc.catalog.quick  # not waited for again through the full catalog
    assert svc.list_runs(ME, "p") == []
    svc.start_run(_run("stopped"))
    assert svc.get_run(ME, "p", "stopped").state == RUNNING
    svc.close()
