"""Records to and from JSON through one typed mechanism (``cairn.core.to_json`` / ``from_json``)."""

from __future__ import annotations

import json

import pytest

from cairn.core import CollectionRecord, RunRecord, VersionRecord, from_json, to_json
from cairn.errors import ValidationError
from cairn.service import CommitResult, SearchResult, VersionExport

VERSION = VersionRecord(
    id="a" * 32,
    entity="e",
    project="p",
    name="n",
    type="dataset",
    index=3,
    state="COMMITTED",
    digest="sha256:" + "0" * 64,
    size=10,
    file_count=2,
    metadata={"a": [1, 2.5, {"b": None}], "s": "x"},
    description=None,
    aliases=("latest", "best"),
    tags=("t",),
    created_at=1.5,
    updated_at=2.0,
    created_by="r1",
    ttl_seconds=3600.0,
)
RUN = RunRecord(id="r1", entity="e", project="p", name="run", config={"lr": 0.1}, created_at=1.0)
COLLECTION = CollectionRecord(1, "e", "p", "n", "dataset", None, 4, 3, 10, 1.0, 2.0, ("t",))


@pytest.mark.parametrize(
    "record",
    [
        VERSION,
        RUN,
        COLLECTION,
        VersionExport(version=VERSION, runs={"output": (RUN,)}, link_of=("e", "p", "n")),
        SearchResult(projects=(("e", "p"),), versions=(VERSION,), runs=(RUN,), totals={"run": 1}),
        CommitResult(VERSION, True, ("sha256:" + "1" * 64,)),
        CommitResult(None),
    ],
)
def test_every_record_survives_json(record: object) -> None:
    text = json.dumps(to_json(record))
    assert from_json(type(record), json.loads(text)) == record


def test_field_names_are_the_keys_and_tuples_are_lists() -> None:
    body = to_json(VERSION)
    assert body["aliases"] == ["latest", "best"] and body["index"] == 3
    assert set(body) == set(VersionRecord.__dataclass_fields__)


def test_absent_fields_take_their_defaults_and_bad_values_name_the_field() -> None:
    assert from_json(RunRecord, {"id": "r", "entity": "e", "project": "p", "name": "x"}) == (
        RunRecord(id="r", entity="e", project="p", name="x")
    )
    with pytest.raises(ValidationError, match=r"RunRecord\.name is missing"):
        from_json(RunRecord, {"id": "r", "entity": "e", "project": "p"})
    body = to_json(VersionExport(version=VERSION, runs={"output": (RUN,)}))
    body["runs"]["output"][0]["created_at"] = "yesterday"
    with pytest.raises(ValidationError, match=r"runs\.output\[0\]\.created_at must be a number"):
        from_json(VersionExport, body)
    with pytest.raises(ValidationError, match="must be an integer"):
        from_json(VersionRecord, {**to_json(VERSION), "size": "10"})
