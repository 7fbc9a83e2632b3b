"""The read-only listing with sqlite3 (``cairn.catalog._quick``) answers exactly what the Service
answers, and only from a current catalog; ``cairn artifact ls`` then loads no SQLAlchemy."""

from __future__ import annotations

import os
import pathlib
import sqlite3

import pytest

import cairn
from cairn.catalog import HEAD_REVISION, _quick
from cairn.sdk import current_service, list_collections, reset_services
from cairn.service import embedded_collections, local_user
from tests.conftest import write


def _log(project: str, name: str, type_: str, content: str, aliases: list[str] = []) -> None:  # noqa: B006
    art = cairn.Artifact(name, type_)
    art.add_file(write(f"src/{name}-{content}.txt", content), name="f.txt")
    with cairn.init(project=project) as run:
        run.log_artifact(art, aliases=aliases)


def _store(root: pathlib.Path) -> None:
    """Collections of two types, tags, moved and removed aliases, a deleted and an expired
    version, an empty collection, another project."""
    for i in range(3):
        _log("p", "ds", "dataset", f"d{i}", ["gold"] if i == 1 else [])
    _log("p", "net", "model", "m0")
    _log("p", "net", "model", "m1")
    _log("p", "gone", "dataset", "g0")
    _log("p", "old", "dataset", "o0")
    _log("p", "old", "dataset", "o1")
    _log("q", "elsewhere", "dataset", "e0")
    api = cairn.Api()
    coll = api.artifact_collection("dataset", "p/ds")
    coll.tags, coll.description = ["nightly", "a-team"], "curated"
    coll.save()
    api.artifact("p/net:v1").delete(delete_aliases=True)  # latest goes: the newest alive shows
    api.artifact("p/gone:v0").delete(delete_aliases=True)
    v1 = api.artifact("p/old:v1")
    v1.aliases.remove("latest")  # no `latest` alias left in the collection
    v1.save()
    reset_services()
    with sqlite3.connect(root / "store" / "catalog.sqlite") as db:  # v2 of ds expired
        db.execute(
            "UPDATE versions SET expires_at = 1 WHERE idx = 2 AND collection_id ="
            " (SELECT id FROM collections WHERE name = 'ds')"
        )


def test_the_quick_listing_answers_what_the_service_answers(cairn_env: pathlib.Path) -> None:
    _store(cairn_env)
    service = current_service()
    root = str(cairn_env / "store")
    me = local_user()
    for entity, project, type_name in [
        (me, "p", None),
        (me, "p", "model"),
        (me, "p", "nothing"),
        (me, "q", None),
        (me, "nowhere", None),
        ("someone-else", "p", None),
    ]:
        expected = service.list_collections(entity, project, type_name)
        assert embedded_collections(root, entity, project, type_name) == expected
    listed = {c.name: c for c in embedded_collections(root, me, "p") or []}
    assert (listed["ds"].latest_index, listed["ds"].version_count) == (1, 2)  # v2 expired
    assert listed["ds"].tags == ("a-team", "nightly") and listed["ds"].aliases[0] == "latest"
    assert (listed["net"].latest_index, listed["old"].latest_index) == (0, 1)
    assert listed["gone"].latest_index is None and listed["gone"].version_count == 0
    # What the command line calls: the same records.
    assert list_collections("p") == service.list_collections(me, "p")


@pytest.mark.no_store
def test_the_quick_listing_reads_only_a_current_catalog(cairn_env: pathlib.Path) -> None:
    assert _quick.newest_revision() == HEAD_REVISION
    root = cairn_env / "store"
    assert embedded_collections(str(root), "me", "p") is None  # no store yet
    _log("p", "ds", "dataset", "x")
    reset_services()
    catalog = str(root / "catalog.sqlite")
    assert _quick.quick_collections(catalog, local_user(), "p") is not None
    with sqlite3.connect(catalog) as db:
        db.execute("UPDATE alembic_version SET version_num = '0007_registry_links'")
    assert _quick.quick_collections(catalog, local_user(), "p") is None  # upgrade first
    with sqlite3.connect(catalog) as db:
        db.execute(f"UPDATE alembic_version SET version_num = '{HEAD_REVISION}'")
    (root / "cairn-store.json").write_text('{"format": 1}')
    assert embedded_collections(str(root), local_user(), "p") is None  # the store is moved first
    os.remove(root / "cairn-store.json")
    assert embedded_collections(str(root), local_user(), "p") is None
