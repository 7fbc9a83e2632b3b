"""ServiceTests: copying between stores (``cairn sync``): exports with lineage and imports."""

from __future__ import annotations

import dataclasses

import pytest

from cairn.core import LATEST, RunRecord, digest_bytes
from cairn.errors import (
    ConflictError,
)
from cairn.service import (
    CommitRequest,
    ImportRequest,
    Service,
)
from cairn.testing._service_data import commit_request, stored_entry


class SyncTests:
    """Part of ``ServiceTests``: needs a ``service`` fixture returning a Service over an empty
    store."""

    def test_export_versions_with_lineage(self, service: Service) -> None:
        service.start_run(RunRecord(id="maker", entity="me", project="proj", name="maker"))
        service.start_run(RunRecord(id="user", entity="me", project="proj", name="user"))
        v0 = service.commit(
            commit_request(service, [stored_entry(service, b"x", "x")], run_id="maker", tags=["t"])
        ).version
        assert v0 is not None
        draft = CommitRequest(
            entity="me",
            project="proj",
            name="ds",
            type="dataset",
            changes=[("y", stored_entry(service, b"y", "y"))],
            base_version_id=v0.id,
        )
        v1 = service.commit(draft).version
        assert v1 is not None
        service.use_version(v0.id, RunRecord(id="user", entity="me", project="proj", name=""))
        out = service.export_versions("me", "proj", "ds")
        assert [x.version.version for x in out] == ["v0", "v1"]
        assert [r.id for r in out[0].runs["output"]] == ["maker"]
        assert [r.id for r in out[0].runs["input"]] == ["user"]
        assert out[0].version.tags == ("t",) and out[0].base_digest is None
        assert out[1].base_digest == v0.digest
        assert service.export_versions("me", "proj", "nothing") == []
        assert service.export_versions("me", "nowhere", "ds") == []

    def test_import_keeps_number_time_and_is_idempotent(self, service: Service) -> None:
        v0 = service.commit(commit_request(service, [stored_entry(service, b"a", "a")])).version
        assert v0 is not None and v0.digest is not None
        run = RunRecord(
            id="r1", entity="me", project="copy", name="r", state="finished", created_at=50.0
        )
        got = service.import_run(run)
        assert got.state == "finished" and got.created_at == 50.0
        assert service.import_run(dataclasses.replace(run, name="other")).name == "r"
        req = ImportRequest(
            entity="me",
            project="copy",
            name="ds",
            type="dataset",
            digest=v0.digest,
            index=4,
            created_at=1000.0,
            metadata={"k": 1},
            aliases=["gold"],
            tags=["t"],
            created_by="r1",
            runs=[("input", "me", "copy", "r1")],
        )
        first = service.import_version(req)
        assert first.created and first.version is not None
        rec = first.version
        assert (rec.version, rec.created_at, rec.created_by) == ("v4", 1000.0, "r1")
        assert set(rec.aliases) == {LATEST, "gold"} and rec.tags == ("t",)
        assert rec.file_count == 1 and rec.size == 1 and rec.metadata == {"k": 1}
        assert [r.id for r in service.version_runs(rec.id, "input")] == ["r1"]
        again = service.import_version(req)
        assert not again.created and again.version is not None and again.version.id == rec.id
        # A taken number is a conflict; without a number the next one is used.
        other = service.commit(commit_request(service, [stored_entry(service, b"b", "b")])).version
        assert other is not None and other.digest is not None
        moved = dataclasses.replace(req, digest=other.digest, aliases=())
        with pytest.raises(ConflictError):
            service.import_version(moved)
        appended = service.import_version(dataclasses.replace(moved, index=None))
        assert appended.version is not None and appended.version.version == "v5"
        assert service.resolve("me", "copy", "ds", None).id == appended.version.id
        # Older numbers go below: latest stays on the highest.
        third = service.commit(commit_request(service, [stored_entry(service, b"c", "c")])).version
        assert third is not None and third.digest is not None
        low = service.import_version(dataclasses.replace(moved, digest=third.digest, index=1))
        assert low.version is not None and low.version.version == "v1"
        assert service.resolve("me", "copy", "ds", None).id == appended.version.id

    def test_import_reports_missing_content(self, service: Service) -> None:
        ghost = digest_bytes(b"a manifest page nobody stored")
        req = ImportRequest(
            entity="me",
            project="copy",
            name="ds",
            type="dataset",
            digest=ghost,
            index=0,
            created_at=1.0,
        )
        result = service.import_version(req)
        assert result.version is None and result.missing == (ghost,)
        assert service.list_projects("me") == [] or service.list_versions("me", "copy", "ds") == []
