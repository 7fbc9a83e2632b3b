"""cairn sync / export / import between real stores: embedded (SQLite) and a server process on
PostgreSQL + S3 (moto)."""

from __future__ import annotations

import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

import cairn
from cairn.core import PageReader
from cairn.errors import DigestMismatchError, UsageError
from cairn.sdk import SyncOptions, export_bundle, import_bundle, reset_services, sync_stores
from cairn.service import ImportRequest, LocalService, SearchRequest
from cairn.service._http import HttpService
from tests._infra import CairnServer, reset_database
from tests.conftest import write
from tests.sync.conftest import ENTITY, CountingTransport, api_view

Factory = Callable[[], tuple[HttpService, CountingTransport]]


@pytest.fixture(autouse=True)
def _entity(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAIRN_ENTITY", ENTITY)


def test_embedded_to_server_and_back(
    cairn_env: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    server_s3: CairnServer,
    server_key: str,
    http_factory: Factory,
    source_store: str,
) -> None:
    src_dir = source_store
    before = api_view(monkeypatch, CAIRN_DIR=src_dir)
    assert sorted(v["name"] for v in before if "/images:" in v["name"]) == [
        f"{ENTITY}/vision/images:v0",
        f"{ENTITY}/vision/images:v2",
    ]  # v0, v2 (v1 deleted)

    src = LocalService.open(src_dir)
    http, transport = http_factory()
    report = sync_stores(src, http)
    assert (report.copied, report.already_there, report.conflicting) == (4, 0, 0)
    # Runs come with the versions they are linked to, and the scratch run (it only made a deleted
    # version) with its project.
    assert report.bytes_sent > 300_000 and report.runs_copied == 7
    assert transport.content_requests()
    server_view = api_view(monkeypatch, CAIRN_BASE_URL=server_s3.url, CAIRN_API_KEY=server_key)
    assert server_view == before

    # A second sync sends no content and imports nothing: every version is found by digest.
    again, counted = http_factory()
    second = sync_stores(src, again)
    assert (second.copied, second.already_there, second.bytes_sent) == (0, 4, 0)
    assert counted.content_requests() == [] and counted.imports() == []
    assert not any("/blobs/missing" in p for _, p in counted.requests)

    # And back: the server to a fresh embedded store (a laptop working offline).
    back_dir = str(cairn_env / "laptop")
    pulled, _ = http_factory()
    back = LocalService.open(back_dir)
    assert sync_stores(pulled, back).copied == 4
    back.close()
    src.close()
    assert api_view(monkeypatch, CAIRN_DIR=back_dir) == before


def _runs(store: LocalService | HttpService) -> list[tuple[str, str, str, str | None, Any]]:
    return sorted(
        (project, r.id, r.job_type or "", r.group, r.config)
        for entity, project in store.list_projects()
        for r in store.list_runs(entity, project)
    )


def test_runs_linked_to_no_copied_version_are_copied(
    cairn_env: pathlib.Path, server_s3: CairnServer, http_factory: Factory, source_store: str
) -> None:
    src = LocalService.open(source_store)
    with_scratch = _runs(src)
    assert [r for r in with_scratch if r[2] == "scratch"]  # linked only to a deleted version
    http, _ = http_factory()
    assert sync_stores(src, http).runs_copied == len(with_scratch) == 7
    assert _runs(http) == with_scratch
    again, counted = http_factory()
    assert sync_stores(src, again).runs_copied == 0
    assert not [p for _, p in counted.requests if p.endswith("/runs/import")]
    # Narrowed to some artifacts, a sync copies only their runs.
    narrow = LocalService.open(str(cairn_env / "narrow"))
    pulled, _ = http_factory()
    assert sync_stores(pulled, narrow, SyncOptions(artifacts=["model"])).runs_copied == 1
    narrow.close()
    back = LocalService.open(str(cairn_env / "laptop"))
    pulled, _ = http_factory()
    sync_stores(pulled, back)
    assert _runs(back) == with_scratch
    back.close()
    src.close()


def test_filters_and_dry_run(
    cairn_env: pathlib.Path, monkeypatch: pytest.MonkeyPatch, source_store: str
) -> None:
    src = LocalService.open(source_store)
    dst_dir = str(cairn_env / "dst")
    dst = LocalService.open(dst_dir)
    dry = sync_stores(src, dst, SyncOptions(dry_run=True))
    assert dry.copied == 4 and dst.list_projects() == []
    only = sync_stores(src, dst, SyncOptions(projects=[f"{ENTITY}/nlp"]))
    assert only.copied == 1 and dst.list_projects() == [(ENTITY, "nlp")]
    preds = sync_stores(src, dst, SyncOptions(artifacts=["preds"]))
    assert preds.copied == 1 and [c.name for c in dst.list_collections(ENTITY, "vision")] == [
        "preds"
    ]
    assert sync_stores(src, dst, SyncOptions(since=time.time() + 3600)).copied == 0
    rest = sync_stores(src, dst)
    assert (rest.copied, rest.already_there) == (2, 2)
    # Imported versions are indexed for search like committed ones.
    found = dst.search(SearchRequest(query="acc>0.5"))
    assert [f"{v.name}:{v.version}" for v in found.versions] == ["model:v0"]
    src.close()
    dst.close()
    assert api_view(monkeypatch, CAIRN_DIR=dst_dir) == api_view(
        monkeypatch, CAIRN_DIR=str(cairn_env / "store")
    )


def _other_history(store: str, monkeypatch: pytest.MonkeyPatch, work: pathlib.Path) -> None:
    """The destination's own vision/images: one version with other content, alias "raw"."""
    reset_services()
    for var in ("CAIRN_BASE_URL", "CAIRN_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    if store.startswith("http"):
        url, key = store.split(" ")
        monkeypatch.setenv("CAIRN_BASE_URL", url)
        monkeypatch.setenv("CAIRN_API_KEY", key)
    else:
        monkeypatch.setenv("CAIRN_DIR", store)
    with cairn.init(project="vision", job_type="theirs") as run:
        art = cairn.Artifact("images", "dataset")
        art.add_file(str(write(work / "theirs.txt", "their own history")))
        run.log_artifact(art, aliases=["raw"])
    cairn.finish()
    reset_services()


@pytest.mark.parametrize("direction", ["to_server", "from_server"])
def test_conflicts(
    direction: str,
    cairn_env: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    server_s3: CairnServer,
    server_key: str,
    http_factory: Factory,
    source_store: str,
) -> None:
    src_dir = source_store
    server_env = {"CAIRN_BASE_URL": server_s3.url, "CAIRN_API_KEY": server_key}
    if direction == "to_server":
        source: LocalService | HttpService = LocalService.open(src_dir)
        _other_history(f"{server_s3.url} {server_key}", monkeypatch, cairn_env)
        dest: LocalService | HttpService = http_factory()[0]
        dest_env = server_env
    else:
        first = LocalService.open(src_dir)
        sync_stores(first, http_factory()[0])
        first.close()
        source = http_factory()[0]
        dest_dir = str(cairn_env / "laptop")
        _other_history(dest_dir, monkeypatch, cairn_env)
        dest = LocalService.open(dest_dir)
        dest_env = {"CAIRN_DIR": dest_dir}
    untouched = api_view(monkeypatch, **dest_env)

    refused = sync_stores(source, dest, SyncOptions(fail_on_conflict=True))
    assert refused.refused and refused.conflicting == 2
    assert refused.aliases_kept == [f"{ENTITY}/vision/images:raw"]
    assert api_view(monkeypatch, **dest_env) == untouched

    report = sync_stores(source, dest)
    assert not report.refused and report.conflicting == 2
    where = f"{ENTITY}/vision/images"
    assert report.renumbered == [(f"{where}:v0", f"{where}:v1"), (f"{where}:v2", f"{where}:v2")]
    assert report.aliases_kept == [f"{where}:raw"]
    images = sorted(
        (v for v in api_view(monkeypatch, **dest_env) if "/images:" in v["name"]),
        key=_number,
    )
    assert [v["metadata"].get("cairn_sync", {}).get("version") for v in images] == [
        None,
        "v0",
        "v2",
    ]
    assert "raw" in images[0]["aliases"]  # theirs: not moved
    assert images[2]["base"] == "v1"  # the draft's base, renumbered with it
    # Again: everything is found by digest; nothing is appended twice.
    again = sync_stores(source, dest)
    assert (again.copied, again.conflicting, again.already_there) == (0, 0, 4)
    moved = sync_stores(source, dest, SyncOptions(move_aliases=True))
    assert moved.aliases_moved == [f"{where}:raw"]
    images = sorted(
        (v for v in api_view(monkeypatch, **dest_env) if "/images:" in v["name"]),
        key=_number,
    )
    assert "raw" not in images[0]["aliases"] and "raw" in images[1]["aliases"]
    source.close()
    dest.close()


def _number(view: dict[str, object]) -> int:
    return int(str(view["name"]).rsplit(":v", 1)[1])


def _cli(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "cairn", *args],
        env={**os.environ, **env, "CAIRN_SILENT": "true"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow  # long: dealt out first (tests/conftest.py)
def test_sigkill_at_random_moments_then_resume(
    cairn_env: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    server_s3: CairnServer,
    server_key: str,
    http_factory: Factory,
) -> None:
    """Kill ``cairn sync`` (SIGKILL) at random moments: the server never shows a version that is
    not complete, and the next sync finishes the work."""
    data = cairn_env / "many"
    for v in range(3):
        for i in range(600):
            write(data / f"v{v}" / f"{i:04}.txt", f"{v}-{i}\n" * 50)
        write(data / f"v{v}" / "big.bin", os.urandom(6_000_000))
    for v in range(3):
        with cairn.init(project="bulk", job_type="log") as run:
            art = cairn.Artifact("files", "dataset")
            art.add_dir(str(data / f"v{v}"))
            run.log_artifact(art)
    cairn.finish()
    reset_services()
    src_dir = str(cairn_env / "store")
    source = LocalService.open(src_dir)
    expected = {v.version: v.digest for v in source.list_versions(ENTITY, "bulk", "files")}
    env = {"CAIRN_DESTINATION_API_KEY": server_key, "CAIRN_CACHE_DIR": str(cairn_env / "c")}
    rng = random.Random()
    for _ in range(4):
        proc = _cli(["sync", src_dir, server_s3.url], env)
        time.sleep(rng.uniform(1.0, 2.5))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        dest, _ = http_factory()
        try:
            seen = dest.list_versions(ENTITY, "bulk", "files")
        except cairn.errors.NotFoundError:
            seen = []
        for v in seen:  # visible means complete: the same digest and every blob there
            assert v.digest == expected[v.version]
            entries = list(PageReader(source.read_blob).iter_from(v.digest))
            assert dest.missing_blobs([e.digest for e in entries]) == []
    done = _cli(["sync", src_dir, server_s3.url, "--json"], env)
    out, err = done.communicate()
    assert done.returncode == 0, err.decode()
    report = json.loads(out)
    assert report["copied"] + report["already_there"] == 3
    dest, _ = http_factory()
    assert {v.version: v.digest for v in dest.list_versions(ENTITY, "bulk", "files")} == expected
    source.close()


@pytest.mark.slow  # long: dealt out first (tests/conftest.py)
def test_export_import_round_trip(
    cairn_env: pathlib.Path, monkeypatch: pytest.MonkeyPatch, source_store: str
) -> None:
    src_dir = source_store
    before = api_view(monkeypatch, CAIRN_DIR=src_dir)
    bundle = str(cairn_env / "bundle")
    exported = _cli(["export", bundle, "--json"], {"CAIRN_DIR": src_dir})
    out, err = exported.communicate()
    assert exported.returncode == 0, err.decode()
    assert json.loads(out)["copied"] == 4
    listed = json.loads(pathlib.Path(bundle, "cairn-bundle.json").read_text())
    assert listed["format"] == "cairn.bundle/1" and len(listed["versions"]) == 4

    target = str(cairn_env / "airgapped")
    imported = _cli(["import", bundle, "--json"], {"CAIRN_DIR": target})
    out, err = imported.communicate()
    assert imported.returncode == 0, err.decode()
    assert json.loads(out)["copied"] == 4
    assert api_view(monkeypatch, CAIRN_DIR=target) == before

    # Exporting again adds nothing; a damaged bundle is refused before anything is copied.
    src = LocalService.open(src_dir)
    assert export_bundle(src, bundle).copied == 0
    src.close()
    blob_dir = pathlib.Path(bundle, "blobs", "sha256")
    damaged = next(p for p in blob_dir.rglob("*") if p.is_file())
    damaged.chmod(0o644)
    raw = bytearray(damaged.read_bytes())
    raw[100] ^= 0xFF
    damaged.write_bytes(bytes(raw))
    fresh = LocalService.open(str(cairn_env / "fresh"))
    with pytest.raises(DigestMismatchError, match="damaged"):
        import_bundle(fresh, bundle)
    assert fresh.list_projects() == []
    pathlib.Path(bundle, "cairn-bundle.json").unlink()
    with pytest.raises(UsageError, match="export"):
        import_bundle(fresh, bundle)
    fresh.close()


def test_server_to_server(
    cairn_env: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    server_s3: CairnServer,
    server_local: CairnServer,
    server_key: str,
    http_factory: Factory,
    source_store: str,
) -> None:
    src = LocalService.open(source_store)
    first, _ = http_factory()
    sync_stores(src, first)
    src.close()
    reset_database(server_local.db)
    other_key = server_local.create_key("syncer", "*/*", "write")
    other = HttpService(server_local.url, other_key, str(cairn_env / "cache-other"))
    report = sync_stores(first, other)
    assert (report.copied, report.conflicting) == (4, 0)
    other.close()
    assert api_view(
        monkeypatch, CAIRN_BASE_URL=server_local.url, CAIRN_API_KEY=other_key
    ) == api_view(monkeypatch, CAIRN_BASE_URL=server_s3.url, CAIRN_API_KEY=server_key)


@pytest.mark.slow  # long: dealt out first (tests/conftest.py)
def test_cli_text_report_and_refusal(
    cairn_env: pathlib.Path, monkeypatch: pytest.MonkeyPatch, source_store: str
) -> None:
    src_dir = source_store
    dst_dir = str(cairn_env / "dst")
    dry = _cli(["sync", src_dir, dst_dir, "--dry-run"], {})
    out, err = dry.communicate()
    assert dry.returncode == 0, err.decode()
    assert "would copy 4 versions (0 renumbered), 0 already there" in out.decode()
    _other_history(dst_dir, monkeypatch, cairn_env)
    refused = _cli(["sync", src_dir, dst_dir, "--fail-on-conflict"], {})
    out, err = refused.communicate()
    assert refused.returncode == 1
    assert "nothing was changed" in err.decode()
    assert f"alias {ENTITY}/vision/images:raw points at another version there" in out.decode()
    done = _cli(["sync", src_dir, dst_dir], {})
    out, err = done.communicate()
    assert done.returncode == 0, err.decode()
    text = out.decode()
    assert f"renumbered {ENTITY}/vision/images:v0 -> {ENTITY}/vision/images:v1" in text
    assert "copied 4 versions (2 renumbered), 0 already there" in text


def test_progress_bar_counts_bytes_and_versions(cairn_env: pathlib.Path) -> None:
    from tests.cli.test_progress import on_terminal

    with cairn.init(project="big") as run:
        art = cairn.Artifact("blob", "dataset")
        art.add_file(str(write(cairn_env / "big.bin", os.urandom(65 << 20))))
        run.log_artifact(art)
    cairn.finish()
    reset_services()
    code, drawn = on_terminal("sync", str(cairn_env / "store"), str(cairn_env / "copy"))
    assert code == 0, drawn
    assert "sync" in drawn and "1/1 versions" in drawn and "MB" in drawn
    assert "copied 1 versions (0 renumbered)" in drawn


def test_since_accepts_dates_times_and_durations() -> None:
    from cairn.errors import ValidationError
    from cairn.sdk import parse_since

    assert parse_since("2026-11-01") == 1793491200.0
    assert parse_since("2026-11-01T12:00+01:00") == 1793491200.0 + 11 * 3600
    assert parse_since("7d", now=1_000_000.0) == 1_000_000.0 - 7 * 86400
    with pytest.raises(ValidationError, match="--since"):
        parse_since("last tuesday")


def test_a_version_deleted_at_the_source_is_not_other_history(
    cairn_env: pathlib.Path, source_store: str
) -> None:
    src_dir = source_store
    src = LocalService.open(src_dir)
    dst = LocalService.open(str(cairn_env / "dst"))
    sync_stores(src, dst)
    v2 = src.resolve(ENTITY, "vision", "images", "v2")
    src.delete_version(v2.id, delete_aliases=True)
    src.close()
    with cairn.init(project="vision") as run:
        art = cairn.Artifact("images", "dataset")
        art.add_file(str(write(cairn_env / "new.txt", "new")))
        run.log_artifact(art)
    cairn.finish()
    reset_services()
    src = LocalService.open(src_dir)
    report = sync_stores(src, dst)
    assert (report.copied, report.conflicting) == (1, 0)
    assert [v.version for v in dst.list_versions(ENTITY, "vision", "images")] == ["v0", "v2", "v3"]
    src.close()
    dst.close()


def test_importing_needs_write_and_content_the_key_may_read(
    cairn_env: pathlib.Path, server_s3: CairnServer, server_key: str, source_store: str
) -> None:
    src = LocalService.open(source_store)
    reader = HttpService(
        server_s3.url,
        server_s3.create_key("reader", f"{ENTITY}/nlp", "read"),
        str(cairn_env / "cache-r"),
    )
    with pytest.raises(cairn.errors.PermissionDeniedError):
        sync_stores(src, reader, SyncOptions(projects=[f"{ENTITY}/nlp"]))
    with pytest.raises(cairn.errors.ArtifactNotFoundError):  # export needs read (else 404)
        reader.export_versions(ENTITY, "vision", "images")
    # A writer of one project cannot link runs of a project it may not write.
    writer = HttpService(
        server_s3.url,
        server_s3.create_key("writer", f"{ENTITY}/vision", "write"),
        str(cairn_env / "cache-w"),
    )
    with pytest.raises(cairn.errors.ArtifactNotFoundError):  # it may not even read team/nlp
        sync_stores(src, writer, SyncOptions(projects=[f"{ENTITY}/vision"]))
    # Nor import a version whose content it never uploaded and may not read.
    full = HttpService(server_s3.url, server_key, str(cairn_env / "cache-f"))
    sync_stores(src, full, SyncOptions(projects=[f"{ENTITY}/nlp"]))
    other = HttpService(
        server_s3.url,
        server_s3.create_key("other", "elsewhere/nlp", "write"),
        str(cairn_env / "cache-o"),
    )
    model = full.list_versions(ENTITY, "nlp", "model")[0]
    assert model.digest is not None
    stolen = other.import_version(
        ImportRequest(
            entity="elsewhere",
            project="nlp",
            name="model",
            type="model",
            digest=model.digest,
            index=0,
            created_at=1.0,
        )
    )
    assert stolen.version is None and stolen.missing
    for svc in (reader, writer, full, other):
        svc.close()
    src.close()


def _ttls(store: LocalService | HttpService) -> dict[str, float | None]:
    out = {}
    for entity, project in store.list_projects():
        for coll in store.list_collections(entity, project):
            for x in store.export_versions(entity, project, coll.name):
                out[f"{project}/{coll.name}:{x.version.version}"] = x.version.ttl_seconds
    return out


def test_ttl_is_copied_both_ways(
    cairn_env: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    server_s3: CairnServer,
    server_key: str,
    http_factory: Factory,
    source_store: str,
) -> None:
    import datetime as dt

    from sqlalchemy import select

    from cairn.catalog import _schema

    src = LocalService.open(source_store)
    model = src.export_versions(ENTITY, "nlp", "model")[0].version
    src.set_ttl(model.id, 30 * 86400.0)
    http, _ = http_factory()
    assert sync_stores(src, http).copied == 4
    assert _ttls(http) == _ttls(src)
    assert _ttls(http)["nlp/model:v0"] == 30 * 86400.0
    monkeypatch.setenv("CAIRN_BASE_URL", server_s3.url)
    monkeypatch.setenv("CAIRN_API_KEY", server_key)
    reset_services()
    assert cairn.Api().artifact(f"{ENTITY}/nlp/model:v0").ttl == dt.timedelta(days=30)
    reset_services()

    # A TTL changed at the source reaches a version already there.
    src.set_ttl(model.id, 7 * 86400.0)
    again, _ = http_factory()
    assert sync_stores(src, again).already_there == 4
    assert _ttls(again)["nlp/model:v0"] == 7 * 86400.0

    # And back: the copy expires the TTL after the version's creation time.
    back = LocalService.open(str(cairn_env / "laptop"))
    pulled, _ = http_factory()
    assert sync_stores(pulled, back).copied == 4
    assert _ttls(back) == _ttls(again)
    v = _schema.versions.c
    copied = back.export_versions(ENTITY, "nlp", "model")[0].version
    expires = back.catalog.read(
        lambda tx: tx.conn.execute(select(v.expires_at).where(v.id == copied.id)).scalar_one()
    )
    assert expires == pytest.approx(copied.created_at + 7 * 86400.0)
    back.close()
    src.close()


def _links(store: LocalService | HttpService) -> dict[str, tuple[str | None, object]]:
    out: dict[str, tuple[str | None, object]] = {}
    for entity, project in store.list_projects():
        for coll in store.list_collections(entity, project):
            for x in store.export_versions(entity, project, coll.name):
                name = f"{entity}/{project}/{coll.name}:{x.version.version}"
                out[name] = (x.version.digest, x.link_of)
    return out


def test_registry_links_are_copied_both_ways(
    cairn_env: pathlib.Path, server_s3: CairnServer, http_factory: Factory, source_store: str
) -> None:
    src = LocalService.open(source_store)
    model = src.export_versions(ENTITY, "nlp", "model")[0].version
    src.link_version(model.id, "registry", "wandb-registry-model", "best", aliases=["prod"])
    src_links = _links(src)
    link = src_links["registry/wandb-registry-model/best:v0"]
    assert link == (model.digest, (ENTITY, "nlp", "model"))
    http, _ = http_factory()
    assert sync_stores(src, http).copied == 5
    assert _links(http) == src_links
    there = http.export_versions("registry", "wandb-registry-model", "best")[0].version
    linked = http.export_versions(ENTITY, "nlp", "model")[0].version
    assert there.source_version_id == linked.id and "prod" in there.aliases

    back = LocalService.open(str(cairn_env / "laptop"))
    pulled, _ = http_factory()
    assert sync_stores(pulled, back).copied == 5
    assert _links(back) == src_links
    back.close()
    src.close()


def test_a_copied_run_brings_its_history_and_summary(
    cairn_env: pathlib.Path,
    server_s3: CairnServer,
    http_factory: Factory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """W&B's offline workflow: a run logged to the embedded store, then synced to a server,
    arrives with every history row (more than one page of them) and its summary, both ways."""
    import cairn.sdk._sync_import as sync_import

    with cairn.init(project="metrics", mode="offline") as run:
        for step in range(25):
            run.log({"loss": 1 / (step + 1), "nan": float("nan") if step == 3 else step})
        run.summary["best"] = 0.04
        run_id = run.id
    reset_services()
    src = LocalService.open(str(cairn_env / "store"))
    rows = src.run_history(ENTITY, "metrics", run_id)
    assert len(rows) == 25
    monkeypatch.setattr(sync_import, "_HISTORY_PAGE", 10)  # three pages of rows
    http, _ = http_factory()
    assert sync_stores(src, http).runs_copied == 1
    assert http.run_history(ENTITY, "metrics", run_id) == rows  # NaN kept as written
    assert json.loads(http.run_summary(ENTITY, "metrics", run_id))["best"] == 0.04
    back = LocalService.open(str(cairn_env / "laptop"))
    pulled, _ = http_factory()
    sync_stores(pulled, back)
    assert back.run_history(ENTITY, "metrics", run_id) == rows
    assert back.run_summary(ENTITY, "metrics", run_id) == src.run_summary(ENTITY, "metrics", run_id)
    back.close()
    src.close()
