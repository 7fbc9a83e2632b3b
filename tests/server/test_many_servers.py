"""Two server processes on one PostgreSQL database and one S3 prefix, clients spread over both;
and a server killed in the middle of an upload."""

from __future__ import annotations

import os
import pathlib
import textwrap
import threading
from collections.abc import Iterator

import psycopg
import pytest

from cairn.core import ManifestEntry, digest_bytes
from cairn.errors import ArtifactNotFoundError, NotFoundError
from cairn.service import CommitRequest, CommitResult, FinishRequest
from cairn.service._http import HttpService
from tests._forked import run_workers
from tests._infra import ADMIN_KEY, CairnServer, Postgres, S3Server, reset_database

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pair(postgres: Postgres, s3: S3Server) -> Iterator[tuple[CairnServer, CairnServer]]:
    db = postgres.create_database("two_servers")
    store = s3.url("shared")
    a = CairnServer(db, store, s3.env)
    b = CairnServer(db, store, s3.env, migrate=False)
    yield a, b
    a.stop()
    b.stop()


def _run_workers(script: str, envs: list[dict[str, str]]) -> None:
    """A process per environment, all at once (forked from one process that imported cairn
    once: tests/_forked.py)."""
    finished = run_workers(
        textwrap.dedent(script),
        [[str(i)] for i in range(len(envs))],
        [{**os.environ, **env, "CAIRN_SILENT": "true"} for env in envs],
    )
    for w in finished:
        assert w.returncode == 0, w.stderr.decode()[-3000:]


def _env(server: CairnServer, key: str, tmp: pathlib.Path, i: int) -> dict[str, str]:
    return {
        "CAIRN_BASE_URL": server.url,
        "CAIRN_API_KEY": key,
        "CAIRN_CACHE_DIR": str(tmp / f"cache{i}"),
        "CAIRN_DIR": str(tmp / "unused-embedded-store"),
    }


DIST_WRITER = """
    import sys, cairn
    i = int(sys.argv[1])
    with open(f"part-{i}.txt", "w") as f:
        f.write(f"rows of worker {i}")
    with cairn.init(project="dist", group="g1") as run:
        art = cairn.Artifact("shared", "dataset")
        art.add_file(f"part-{i}.txt", name=f"parts/{i:02}.txt")
        run.upsert_artifact(art)
"""

COMMITTER = """
    import sys, cairn
    i = int(sys.argv[1])
    for j in range(3):
        with cairn.init(project="race") as run:
            art = cairn.Artifact("contested", "dataset")
            with art.new_file("f.txt", mode="w") as f:
                f.write(f"worker {i} item {j}")
            run.log_artifact(art)
"""


def test_sixteen_distributed_writers_on_two_servers_lose_nothing(
    pair: tuple[CairnServer, CairnServer], tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = pair
    reset_database(a.db)
    key = a.create_key("team")
    monkeypatch.chdir(tmp_path)
    _run_workers(DIST_WRITER, [_env((a, b)[i % 2], key, tmp_path, i) for i in range(16)])
    finisher = """
        import cairn
        with cairn.init(project="dist", group="g1") as run:
            run.finish_artifact(cairn.Artifact("shared", "dataset"))
    """
    _run_workers(finisher, [_env(b, key, tmp_path, 99)])
    svc = HttpService(a.url, key, str(tmp_path / "check"))
    versions = svc.list_versions("team", "dist", "shared", include_pending=True)
    assert [(v.version, v.state, v.file_count) for v in versions] == [("v0", "COMMITTED", 16)]
    writers = {r.id for r in svc.version_runs(versions[0].id, "writer")}
    assert len(writers) == 17  # the sixteen, and the finisher
    # The finish request again (as a retry after a lost answer would send it): same version.
    finisher_run = svc.get_version(versions[0].id).created_by
    assert finisher_run is not None
    retried = svc.finish(
        FinishRequest(
            entity="team",
            project="dist",
            name="shared",
            type="dataset",
            distributed_id="g1",
            changes=[],
            run_id=finisher_run,
        )
    )
    assert retried.version is not None and retried.version.id == versions[0].id
    again = svc.list_versions("team", "dist", "shared", include_pending=True)
    assert [v.id for v in again] == [versions[0].id]
    svc.close()


def test_concurrent_commits_through_two_servers_get_dense_numbers(
    pair: tuple[CairnServer, CairnServer], tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = pair
    reset_database(a.db)
    key = a.create_key("team")
    monkeypatch.chdir(tmp_path)
    _run_workers(COMMITTER, [_env((a, b)[i % 2], key, tmp_path, i) for i in range(8)])
    svc = HttpService(b.url, key, str(tmp_path / "check"))
    versions = svc.list_versions("team", "race", "contested")
    assert sorted(int(v.version[1:]) for v in versions if v.version) == list(range(24))
    assert len({v.digest for v in versions}) == 24
    svc.close()


@pytest.mark.parametrize("store", ["local", "s3"])
def test_a_server_killed_mid_upload_leaves_no_version_and_the_retry_succeeds(
    postgres: Postgres, s3: S3Server, tmp_path: pathlib.Path, store: str
) -> None:
    db = postgres.create_database(f"killed_{store}")
    blobs = str(tmp_path / "blobs") if store == "local" else s3.url("killed")
    # Parts of 5 MiB (the least S3 takes): a 40 MiB file is sent in 8 parts, so the kill falls
    # in the middle of an upload of many parts at a quarter of the bytes (it was 160 MiB in
    # parts of 32 MiB: the slowest test of the suite).
    server = CairnServer(db, blobs, {**s3.env, "CAIRN_SERVER_PART_SIZE": str(5 << 20)})
    try:
        key = server.create_key("me")
        big = tmp_path / "big.bin"
        data = os.urandom(40 << 20)
        big.write_bytes(data)
        # A restart on a loaded machine may take longer than the default 45 s budget.
        svc = HttpService(server.url, key, str(tmp_path / "cache"), retries=60, retry_seconds=240)
        outcome: list[CommitResult | BaseException] = []

        def log() -> None:
            try:
                info = svc.store_file(str(big))
                req = CommitRequest(
                    entity="me",
                    project="p",
                    name="model",
                    type="model",
                    changes=[("big.bin", ManifestEntry("big.bin", info.digest, info.size))],
                )
                outcome.append(svc.commit(req))
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                outcome.append(exc)

        worker = threading.Thread(target=log)
        worker.start()
        with psycopg.connect(db) as conn:  # wait until the upload is under way
            for _ in range(3000):
                if conn.execute("SELECT count(*) FROM uploads").fetchone() != (0,):
                    break
                conn.commit()
                threading.Event().wait(0.005)
            else:
                pytest.fail("the upload never began")
        server.kill()
        with psycopg.connect(db) as conn:
            assert conn.execute("SELECT count(*) FROM versions").fetchone() == (0,)
        server.start()
        probe = HttpService(server.url, ADMIN_KEY, str(tmp_path / "p"), retries=0)
        with pytest.raises(ArtifactNotFoundError):
            probe.resolve("me", "p", "model", None)
        probe.close()
        worker.join(300)
        assert len(outcome) == 1 and isinstance(outcome[0], CommitResult), outcome
        assert outcome[0].version is not None and outcome[0].version.version == "v0"
        dest = tmp_path / "back.bin"
        svc.download_blob(outcome[0].version.digest or "", str(tmp_path / "page"))
        entry_digest = outcome[0].version
        assert entry_digest.file_count == 1
        fresh = HttpService(server.url, key, str(tmp_path / "cache2"))
        from cairn.core import digest_bytes

        fresh.download_blob(digest_bytes(data), str(dest))
        assert dest.read_bytes() == data
        svc.close()
        fresh.close()
    finally:
        server.stop()


def test_an_upload_streamed_to_one_server_is_named_through_the_other(
    pair: tuple[CairnServer, CairnServer], tmp_path: pathlib.Path
) -> None:
    """A large file is sent while it is hashed: its content goes to one server process, its
    name (the digest) by another request that may reach another process (``--workers 2``);
    they meet in the upload's catalog row. The first server holds the parts until the name
    comes, then stores the blob; a second upload of the same blob is told it is stored, and
    the first server ends its stream without storing anything."""
    a, b = pair
    reset_database(a.db)
    key = a.create_key("namer")
    data = os.urandom(12 << 20)  # two parts of 8 MiB and 4 MiB
    d = digest_bytes(data)
    on_a = HttpService(a.url, key, str(tmp_path / "ca"))
    on_b = HttpService(b.url, key, str(tmp_path / "cb"))

    def stream(upload: str, named: threading.Event, out: dict[str, object]) -> threading.Thread:
        def body() -> Iterator[bytes]:
            yield data[: 9 << 20]  # a whole part, held by the first server until named
            named.wait(60)
            yield data[9 << 20 :]

        def put() -> None:
            try:
                out.update(
                    on_a._call(
                        "PUT",
                        f"/uploads/{upload}/content",
                        content=body(),
                        headers={"Content-Length": str(len(data))},
                    )
                )
            except NotFoundError as exc:
                out["error"] = exc

        thread = threading.Thread(target=put)
        thread.start()
        return thread

    for stored in (False, True):
        plan = on_a._call("POST", "/uploads", json={"size": len(data), "modes": ["stream"]})
        assert plan["mode"] == "stream" and plan["unnamed"] is True
        named, out = threading.Event(), {}
        sending = stream(plan["id"], named, out)
        answer = on_b._call("POST", f"/uploads/{plan['id']}/name", json={"digest": d})
        named.set()
        sending.join()
        assert answer == {"stored": stored}
        if not stored:
            assert out == {"digest": d, "size": len(data), "parts_sent": 2, "parts_kept": 0}
            assert on_b.missing_blobs([d]) == []
        else:  # the row and its multipart upload went with the answer: the stream ends
            assert isinstance(out.get("error"), NotFoundError)
    on_b.download_blob(d, str(tmp_path / "back"))
    assert (tmp_path / "back").read_bytes() == data
    with psycopg.connect(a.db, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM uploads").fetchone() == (0,)
    on_a.close()
    on_b.close()
