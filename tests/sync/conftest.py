"""Helpers of the sync tests: a history built with the SDK, and the Api's view of a store."""

from __future__ import annotations

import os
import pathlib
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

import cairn
from cairn.sdk import reset_services
from cairn.service._http import HttpService
from tests._infra import CairnServer, reset_database
from tests.conftest import _CAIRN_VARS, write

ENTITY = "team"


class CountingTransport(httpx.HTTPTransport):
    """Counts the requests an HttpService sends, by method and route."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        return super().handle_request(request)

    def content_requests(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p in self.requests if "/blobs/batch" in p or "/uploads" in p]

    def imports(self) -> list[tuple[str, str]]:
        return [(m, p) for m, p in self.requests if p.endswith("/import")]


@pytest.fixture
def server_key(server_s3: CairnServer) -> str:
    reset_database(server_s3.db)
    return server_s3.create_key("syncer", "*/*", "write")


@pytest.fixture
def http_factory(
    server_s3: CairnServer, server_key: str, tmp_path: pathlib.Path
) -> Iterator[Callable[[], tuple[HttpService, CountingTransport]]]:
    made: list[HttpService] = []

    def make() -> tuple[HttpService, CountingTransport]:
        transport = CountingTransport()
        svc = HttpService(
            server_s3.url, server_key, str(tmp_path / f"cache-{len(made)}"), transport=transport
        )
        made.append(svc)
        return svc, transport

    yield make
    for svc in made:
        svc.close()


def build_history(root: pathlib.Path) -> None:
    """A history with every kind of record sync copies, logged with the SDK into the current
    store: runs (config, job types, groups), versions with descriptions, metadata, tags and
    aliases, a large file, a draft (base version), a distributed version (writers), a version
    used from another project, and a deleted version (a gap in the numbers)."""
    data = root / "data"
    for i in range(30):
        write(data / f"images/{i:03}.txt", f"image {i}\n" * (i + 1))
    write(data / "big.bin", os.urandom(1_300_000))  # a blob file (under 1 MiB: packed)
    with cairn.init(project="vision", job_type="prepare", config={"seed": 1}) as run:
        art = cairn.Artifact("images", "dataset", description="raw", metadata={"source": "x"})
        art.add_dir(str(data / "images"), name="images")
        art.add_file(str(data / "big.bin"))
        run.log_artifact(art, aliases=["raw"], tags=["first"])
    with cairn.init(project="vision", job_type="scratch") as run:
        scratch = cairn.Artifact("images", "dataset")
        scratch.add_file(str(write(data / "scratch.txt", "scratch")))
        logged = run.log_artifact(scratch)
    cairn.Api().artifact(f"{ENTITY}/vision/images:{logged.version}").delete(delete_aliases=True)
    with cairn.init(project="vision", job_type="clean") as run:
        draft = run.use_artifact("images:raw").new_draft()
        draft.remove("images/000.txt")
        draft.add_file(str(write(data / "labels.csv", "a,b\n1,2\n")))
        run.log_artifact(draft, aliases=["clean", "best"])
    for worker in range(2):
        with cairn.init(project="vision", job_type="eval", group="eval-1") as run:
            part = cairn.Artifact("preds", "eval")
            part.add_file(str(write(data / f"preds-{worker}.txt", f"{worker}")))
            run.upsert_artifact(part)
    with cairn.init(project="vision", job_type="eval", group="eval-1") as run:
        run.finish_artifact(cairn.Artifact("preds", "eval"))
    with cairn.init(project="nlp", job_type="train", config={"lr": 0.1}) as run:
        run.use_artifact(f"{ENTITY}/vision/images:clean")
        model = cairn.Artifact("model", "model", metadata={"acc": 0.9})
        model.add_file(str(write(data / "weights.pt", os.urandom(5000))))
        run.log_artifact(model, aliases=["prod"])


@pytest.fixture(scope="session")
def history_template(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """The store ``build_history`` makes, made once per session (it logs eleven runs); tests
    get a copy of it (``source_store``), so each still starts from the same history."""
    root = tmp_path_factory.mktemp("history")
    with pytest.MonkeyPatch.context() as mp:
        for var in _CAIRN_VARS:
            mp.delenv(var, raising=False)
        mp.setenv("CAIRN_ENTITY", ENTITY)
        for var, sub in (("DIR", "store"), ("CACHE_DIR", "cache"), ("ARTIFACT_DIR", "artifacts")):
            mp.setenv(f"CAIRN_{var}", str(root / sub))
        (root / "work").mkdir()
        mp.chdir(root / "work")
        build_history(root)
        cairn.finish()
        reset_services()
    return root / "store"


@pytest.fixture
def source_store(cairn_env: pathlib.Path, history_template: pathlib.Path) -> str:
    """This test's store (``CAIRN_DIR``) holding a copy of ``build_history``'s history."""
    store = cairn_env / "store"
    shutil.rmtree(store)  # the empty store cairn_env made
    shutil.copytree(history_template, store)
    return str(store)


def _run(r: Any) -> dict[str, Any]:
    return {
        "path": r.path,
        "name": r.name,
        "job_type": r.job_type,
        "group": r.group,
        "state": r.state,
        "config": r.config,
        "created_at": r.created_at,
    }


def api_view(monkeypatch: pytest.MonkeyPatch, **env: str) -> list[dict[str, Any]]:
    """Everything the Api shows of the store that ``env`` selects (CAIRN_DIR, or
    CAIRN_BASE_URL and CAIRN_API_KEY): versions, files, aliases, tags, lineage."""
    cairn.finish()
    reset_services()
    for var in ("CAIRN_BASE_URL", "CAIRN_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    api = cairn.Api()
    out = []
    for project in sorted(p.id for p in api.projects(ENTITY)):
        for t in api.artifact_types(project):
            for coll in t.collections():
                for a in coll.artifacts():
                    base = a.base_version
                    logged_by = a.logged_by()
                    out.append(
                        {
                            "name": f"{project}/{a.name}",
                            "type": a.type,
                            "digest": a.digest,
                            "description": a.description,
                            "metadata": a.metadata,
                            "aliases": sorted(a.aliases),
                            "tags": sorted(a.tags),
                            "created_at": a.created_at,
                            "size": a.size,
                            "files": sorted(
                                (p, e.digest, e.size) for p, e in a.manifest.entries.items()
                            ),
                            "base": None if base is None else base.version,
                            "logged_by": None if logged_by is None else _run(logged_by),
                            "used_by": sorted(str(_run(r)) for r in a.used_by()),
                            "written_by": sorted(str(_run(r)) for r in a.written_by()),
                            "collection": coll.description,
                        }
                    )
    cairn.finish()
    reset_services()
    return out
