"""ServiceTests: a version's aliases, tags, metadata and deletion; collections; lists and search."""

from __future__ import annotations

from typing import Any

import pytest

from cairn.core import LATEST
from cairn.errors import (
    ArtifactNotFoundError,
    UsageError,
    ValidationError,
)
from cairn.service import (
    SearchRequest,
    Service,
    StageRequest,
)
from cairn.testing._service_data import commit_request, stored_entry


class VersionTests:
    """Part of ``ServiceTests``: needs a ``service`` fixture returning a Service over an empty
    store."""

    def test_aliases_tags_metadata_and_delete(self, service: Service) -> None:
        v0 = service.commit(commit_request(service, [stored_entry(service, b"0", "f")])).version
        v1 = service.commit(commit_request(service, [stored_entry(service, b"1", "f")])).version
        assert v0 is not None and v1 is not None
        rec = service.update_version(
            v0.id, description="first", metadata={"n": 1}, aliases=["gold"], tags=["t-1"]
        )
        assert rec.description == "first" and rec.metadata == {"n": 1}
        assert rec.aliases == ("gold",) and rec.tags == ("t-1",)
        assert service.add_alias(v1.id, "gold").aliases == (LATEST, "gold")  # moved
        # "latest" is an alias like any other: it may be removed, and then "latest" resolves to
        # the newest committed version; a version with any alias is kept unless asked.
        assert service.remove_alias(v1.id, LATEST).aliases == ("gold",)
        assert service.resolve("me", "proj", "ds", None).id == v1.id
        assert service.resolve("me", "proj", "ds", LATEST).id == v1.id
        with pytest.raises(UsageError, match="gold"):
            service.delete_version(v1.id)
        assert service.add_alias(v0.id, LATEST).aliases == (LATEST,)
        assert service.resolve("me", "proj", "ds", None).id == v0.id
        with pytest.raises(UsageError, match=LATEST):
            service.delete_version(v0.id)
        assert service.update_version(v0.id, aliases=[]).aliases == ()
        service.delete_version(v1.id, delete_aliases=True)
        assert service.resolve("me", "proj", "ds", None).id == v0.id  # latest moved back
        v2 = service.commit(commit_request(service, [stored_entry(service, b"2", "f")])).version
        assert v2 is not None and v2.version == "v2"  # numbers are never reused

    @pytest.mark.parametrize("alias", ["v0", "v3", "v01", "v007"])
    def test_aliases_that_look_like_versions_are_refused(
        self, service: Service, alias: str
    ) -> None:
        v0 = service.commit(commit_request(service, [stored_entry(service, b"0", "f")])).version
        assert v0 is not None
        with pytest.raises(ValidationError, match="version"):
            service.add_alias(v0.id, alias)
        with pytest.raises(ValidationError, match="version"):
            service.commit(
                commit_request(service, [stored_entry(service, b"1", "f")], aliases=[alias])
            )
        with pytest.raises(ArtifactNotFoundError):
            service.resolve("me", "proj", "ds", alias if alias != "v0" else "v9")
        assert service.resolve("me", "proj", "ds", None).id == v0.id

    def test_collections_are_renamed_tagged_and_deleted(self, service: Service) -> None:
        service.commit(
            commit_request(service, [stored_entry(service, b"c0", "f")], aliases=["best"])
        )
        service.commit(commit_request(service, [stored_entry(service, b"o", "f")], name="other"))
        rec = service.get_collection("me", "proj", "ds")
        assert (rec.name, rec.type, rec.aliases, rec.tags) == (
            "ds",
            "dataset",
            (LATEST, "best"),
            (),
        )
        rec = service.update_collection("me", "proj", "ds", tags=["a", "b c"], description="d")
        assert rec.tags == ("a", "b c") and rec.description == "d"
        with pytest.raises(ValidationError, match="already exists"):
            service.update_collection("me", "proj", "ds", new_name="other", tags=["x"])
        assert service.get_collection("me", "proj", "ds").tags == ("a", "b c")  # nothing changed
        renamed = service.update_collection("me", "proj", "ds", new_name="ds2")
        assert renamed.name == "ds2" and renamed.id == rec.id
        assert service.resolve("me", "proj", "ds2", "best").version == "v0"
        service.delete_collection("me", "proj", "ds2")
        with pytest.raises(ArtifactNotFoundError):
            service.get_collection("me", "proj", "ds2")
        with pytest.raises(ArtifactNotFoundError):
            service.resolve("me", "proj", "ds2", None)
        assert [c.name for c in service.list_collections("me", "proj")] == ["other"]

    def test_a_resolve_answers_the_whole_record(self, service: Service) -> None:
        # Whatever the label, resolving gives the record reading the version by id gives: every
        # alias (not only the one resolved), its tags and metadata.
        v0 = service.commit(
            commit_request(
                service, [stored_entry(service, b"r0", "f")], aliases=["best", "gold"], tags=["t"]
            )
        ).version
        v1 = service.commit(commit_request(service, [stored_entry(service, b"r1", "f")])).version
        assert v0 is not None and v1 is not None
        whole0, whole1 = service.get_version(v0.id), service.get_version(v1.id)
        assert whole0.aliases == ("best", "gold") and whole0.tags == ("t",)
        labels: list[tuple[str | None, Any]] = [
            *((label, whole0) for label in ("best", "gold", "v0")),
            *((label, whole1) for label in (None, LATEST, "v1")),
        ]
        for label, whole in labels:
            assert service.resolve("me", "proj", "ds", label) == whole
        for name, missing in (("ds", "silver"), ("ds", "v2"), ("nope", None)):
            with pytest.raises(ArtifactNotFoundError):
                service.resolve("me", "proj", name, missing)
        with pytest.raises(ArtifactNotFoundError, match="does not exist"):
            service.resolve("me", "elsewhere", "ds", None)

    def test_lists(self, service: Service) -> None:
        service.commit(
            commit_request(service, [stored_entry(service, b"m", "m")], name="net", type="model")
        )
        service.commit(
            commit_request(service, [stored_entry(service, b"d", "d")], name="data", type="dataset")
        )
        assert service.list_types("me", "proj") == ["dataset", "model"]
        names = [c.name for c in service.list_collections("me", "proj")]
        assert sorted(names) == ["data", "net"]
        assert [c.name for c in service.list_collections("me", "proj", "model")] == ["net"]
        assert ("me", "proj") in service.list_projects()

    def test_search(self, service: Service) -> None:
        a, b, c = (
            stored_entry(service, data, p) for data, p in ((b"1", "a"), (b"2", "b"), (b"3", "c"))
        )
        first = service.commit(
            commit_request(
                service,
                [a],
                metadata={"acc": 0.5, "opt": {"name": "adam"}},
                tags=["nightly"],
                description="first try",
            )
        ).version
        assert first is not None
        service.commit(
            commit_request(
                service, [a, b], metadata={"acc": 0.9, "opt": {"name": "sgd"}}, aliases=["gold"]
            )
        )
        service.commit(
            commit_request(service, [c], name="net", type="model", metadata={"acc": 0.7})
        )

        def found(query: str, **kw: Any) -> list[str]:
            result = service.search(SearchRequest(query=query, **kw))
            return [f"{v.name}:{v.version}" for v in result.versions]

        assert found("acc>0.6") == ["net:v0", "ds:v1"]  # newest first
        assert found("acc>=0.5 acc<0.8") == ["net:v0", "ds:v0"]
        assert found("acc:0.9") == ["ds:v1"]
        assert found("opt.name:sgd") == ["ds:v1"]  # nested keys as dotted paths
        assert found("tag:nightly") == found("nightly") == ["ds:v0"]
        assert found("alias:gold") == found("gold") == ["ds:v1"]
        assert found("type:model") == found("name:net") == ["net:v0"]
        assert found("FIRST") == found("adam") == ["ds:v0"]  # description; a metadata value
        # A description's words are found by their beginnings, not from their middles.
        assert found("fir") == found("tr") == ["ds:v0"] and found("irst") == []
        assert found("type:dataset acc<0.6") == ["ds:v0"]
        assert found("ds nightly") == found("try first") == ["ds:v0"]  # every word must match
        assert found("ds net") == []
        assert found("nothing-like-this") == []
        everything = service.search(SearchRequest(query="proj"))
        assert everything.projects == (("me", "proj"),) and everything.totals["project"] == 1
        named = service.search(SearchRequest(query="ds"))
        assert [col.name for col in named.collections] == ["ds"]
        assert named.collections[0].version_count == 2

        # Changed metadata is what is found; a pending version is not found at all.
        service.update_version(first.id, metadata={"acc": 0.99})
        assert found("acc>0.95") == ["ds:v0"] and found("adam") == []
        service.update_version(first.id, description="second go")
        assert found("second") == ["ds:v0"] and found("try") == []
        pending = service.stage(
            StageRequest(
                entity="me",
                project="proj",
                name="ds",
                type="dataset",
                distributed_id="d1",
                changes=[("z", stored_entry(service, b"z", "z"))],
                metadata={"acc": 0.999},
            )
        )
        assert found("acc>0.95") == ["ds:v0"]
        service.discard_pending(pending.id)

        # A collection's versions, sorted and paged (its versions table).
        page = service.search(
            SearchRequest(
                kinds=("version",),
                collection=("me", "proj", "ds"),
                sort="version",
                descending=False,
                offset=1,
                limit=1,
            )
        )
        assert [v.version for v in page.versions] == ["v1"] and page.totals == {"version": 2}

        for bad in (
            SearchRequest(query="acc>high"),
            SearchRequest(query='"unclosed'),
            SearchRequest(limit=0),
            SearchRequest(sort="name"),
            SearchRequest(kinds=("files",)),
        ):
            with pytest.raises(ValidationError):
                service.search(bad)
        with pytest.raises(ArtifactNotFoundError):
            service.search(SearchRequest(collection=("me", "proj", "nope")))
