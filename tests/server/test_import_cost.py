"""What importing a version through a server (``cairn sync``) does per blob, and what it must
still refuse.

The import reads its manifest once and checks the key's reads in the statement that grants the
pages and blobs to the project (as a commit does), not in a read of its own before; a key still
cannot import a manifest naming a blob it may not read, and nothing of a refused import is kept.
"""

from __future__ import annotations

import pathlib
from collections import Counter
from typing import Any

import pytest

from cairn.catalog import _access
from cairn.core import ManifestEntry, digest_bytes
from cairn.server import _key_rules
from cairn.service import ImportRequest
from cairn.service import _manifests as manifests
from tests._infra import reset_database
from tests.conftest import InProcess
from tests.server.conftest import a_thief, stored_entries, stored_manifest


def _import(entity: str, project: str, root: str) -> ImportRequest:
    return ImportRequest(entity, project, "ds", "dataset", root, index=None, created_at=1.0)


def test_an_import_reads_its_manifest_once_and_checks_reads_in_the_grant(
    inprocess: InProcess, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = inprocess("sqlite", "local")
    reset_database(app.db)
    svc = app.service(app.create_key("me", "p", "write"), str(tmp_path))
    root = stored_manifest(svc, stored_entries(svc, b"import", 60))
    counted: Counter[str] = Counter()
    closure, checked, add_readable = (
        manifests.closure,
        _key_rules.readable_blobs,
        _access.BlobGrants.add_readable,
    )

    def pages_read(*args: Any) -> Any:
        counted["manifest reads"] += 1
        return closure(*args)

    def read_check(*args: Any) -> Any:
        counted["read checks"] += 1
        return checked(*args)

    def granted(self: Any, project_id: int, digests: Any, reader: Any, **kw: Any) -> list[str]:
        digests = list(digests)
        counted["granted, checked"] += len(digests)
        return add_readable(self, project_id, digests, reader, **kw)

    monkeypatch.setattr(manifests, "closure", pages_read)
    monkeypatch.setattr(_key_rules, "readable_blobs", read_check)
    monkeypatch.setattr(_access.BlobGrants, "add_readable", granted)
    done = svc.import_version(_import("me", "p", root))
    assert done.version is not None and done.created
    # The old code read the manifest twice (the key's read check, then the import) and checked
    # the key's reads in a query of its own before granting its 60 blobs and 1 page.
    assert counted == Counter({"manifest reads": 1, "granted, checked": 61}), counted
    counted.clear()
    again = svc.import_version(_import("me", "p", root))  # there already: nothing to check
    assert again.version is not None and again.version.id == done.version.id
    assert counted == Counter(), counted


@pytest.mark.parametrize("catalog", ["sqlite", "postgres"])
def test_an_import_cannot_name_a_blob_its_key_may_not_read(
    inprocess: InProcess, tmp_path: pathlib.Path, catalog: str
) -> None:
    """Checked in the statement that grants the import's pages and blobs to the project (one
    per 20,000 on PostgreSQL): one the key may not read is answered as missing, and the
    import's transaction keeps nothing (no version, no grant)."""
    alice, bob, reader, secret, own = a_thief(inprocess(catalog, "local"), tmp_path)
    d_secret, d_own = digest_bytes(secret), digest_bytes(own)
    entries = [ManifestEntry("a.bin", d_own, len(own)), ManifestEntry("w.bin", d_secret, 15)]
    assert alice.import_version(_import("alice", "p", stored_manifest(alice, entries[1:]))).version
    root = stored_manifest(bob, entries)
    stolen = bob.import_version(_import("bob", "mine", root))
    assert stolen.version is None and stolen.missing == (d_secret,)
    # Rolled back: no project, no version, and neither bob's pages nor his own blob granted.
    assert ("bob", "mine") not in bob.list_projects()
    assert reader.missing_blobs([root, d_own]) == [root, d_own]
    # Beside an absent blob, the answer names both: it never tells that the secret is stored.
    absent = digest_bytes(b"never stored")
    with_absent = stored_manifest(bob, [*entries, ManifestEntry("z.bin", absent, 12)])
    assert set(bob.import_version(_import("bob", "mine", with_absent)).missing) == {
        d_secret,
        absent,
    }
    # Uploading the content proves bob has it: then he may import it.
    bob.store_blobs([(d_secret, secret)])
    assert bob.import_version(_import("bob", "mine", root)).version
    assert reader.missing_blobs([root, d_own, d_secret]) == []


def test_an_import_of_a_root_its_key_may_not_read_names_only_the_root(
    inprocess: InProcess, tmp_path: pathlib.Path
) -> None:
    """A key that knows only the root digest of another project's manifest learns nothing of
    the tree below it (the reviewer's M2; fails on the old code, which answered with the
    digests of the files it names), as a commit of a client-written manifest."""
    alice, bob, _, secret, _ = a_thief(inprocess("sqlite", "local"), tmp_path)
    root = stored_manifest(alice, [ManifestEntry("w.bin", digest_bytes(secret), len(secret))])
    assert alice.import_version(_import("alice", "p", root)).version
    stolen = bob.import_version(_import("bob", "mine", root))
    assert stolen.version is None and stolen.missing == (root,)
