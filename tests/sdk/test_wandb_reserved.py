"""Reserved artifact types and names, and invalid names, refused with W&B's error types
(W&B's ``sdk/artifacts/_validators.py``): every refusal is a ``ValueError`` (cairn's
``ValidationError`` is one), on the embedded store and through a server, and what W&B allows
is allowed."""

from __future__ import annotations

import pytest

import cairn
from cairn.errors import ValidationError
from tests.conftest import write

REFUSED = [
    # (name, type, what the message says)
    ("anything", "job", "reserved"),  # W&B: "job" is reserved whatever the name
    ("x", "wandb-history", "reserved"),  # the "wandb-" type prefix is W&B's
    ("x", "wandb-", "reserved"),
    ("run-abc123-preds", "run_table", "reserved"),  # run.log's tables are W&B's own
    ("source-myproj-train.py", "code", "reserved"),  # code artifacts W&B saves
    ("a/b", "dataset", "letters, digits"),
    ("a:b", "dataset", "letters, digits"),
    ("has space", "dataset", "letters, digits"),
    ("n" * 129, "dataset", "longer than 128"),
    ("x", "a/b", "'/'"),
    ("x", "a:b", "':'"),
    ("x", "t" * 129, "longer than 128"),
]

ALLOWED = [
    ("my-table", "run_table"),  # only run-* names are reserved for run_table
    ("train.py", "code"),  # only source-* names are reserved for code
    ("job-results", "dataset"),  # "job" is reserved as a type, not as a name
    ("wandb-data", "dataset"),  # "wandb-" is reserved as a type prefix, not as a name
    ("n" * 128, "dataset"),
    ("a.b_c-d", "my type"),
]


@pytest.mark.parametrize(("name", "type_name", "says"), REFUSED)
def test_reserved_and_invalid_artifacts_raise_value_error(
    name: str, type_name: str, says: str
) -> None:
    with pytest.raises(ValueError, match=says) as info:
        cairn.Artifact(name, type_name)
    assert isinstance(info.value, ValidationError)


def test_what_w_and_b_allows_is_logged_on_every_store() -> None:
    with cairn.init(project="reserved") as run:
        for name, type_name in ALLOWED:
            art = cairn.Artifact(name, type_name)
            art.add_file(write(f"{len(name)}-{type_name}.txt", name), name="f.txt")
            logged = run.log_artifact(art)
            assert (logged.name, logged.type) == (f"{name}:v0", type_name)
        run.log({"preds": cairn.Table(columns=["a"], data=[[1]])})  # W&B's own run_table
        run_id = run.id
    assert cairn.Api().artifact(f"reserved/run-{run_id}-preds:latest").type == "run_table"


def test_invalid_project_alias_and_tag_names_raise_value_error() -> None:
    for project in ("a/b", "a\\b", "a#b", "a?b", "a%b", "a:b", "a\nb", "p" * 129):
        with pytest.raises(ValueError):
            cairn.init(project=project)
    art = cairn.Artifact("ok", "dataset")
    art.add_file(write("ok.txt", "ok"))
    with cairn.init(project="reserved") as run:
        for alias in ("a/b", "a:b"):
            with pytest.raises(ValueError, match="may not contain"):
                run.log_artifact(art, aliases=[alias])
        with pytest.raises(ValueError, match="tag"):
            run.log_artifact(art, tags=["bad!tag"])
    assert not cairn.Api().artifact_exists("reserved/ok:latest")


def test_no_ttl_on_links_or_on_the_artifacts_w_and_b_makes() -> None:
    """W&B's TTL guide: links and auto-generated artifacts (run_table, code, job, wandb-*)
    take no TTL; the setter raises ``ValueError``, and so does the store if asked directly."""
    from datetime import timedelta

    from cairn.sdk import current_service

    code = cairn.Artifact("train.py", "code")
    with pytest.raises(ValueError, match="type 'code'"):
        code.ttl = timedelta(days=1)
    with cairn.init(project="reserved") as run:
        model = cairn.Artifact("model", "model")
        model.add_file(write("m.bin", "m"))
        run.log_artifact(model)
        linked = run.link_artifact(model, "wandb-registry-model/churn")
        run.log({"preds": cairn.Table(columns=["a"], data=[[1]])})
        run_id = run.id
    with pytest.raises(ValueError, match="link"):
        linked.ttl = timedelta(days=1)
    table = cairn.Api().artifact(f"reserved/run-{run_id}-preds:latest")
    with pytest.raises(ValueError, match="run_table"):
        table.ttl = timedelta(days=1)
    svc = current_service()
    assert linked.id is not None and table.id is not None
    for version_id in (linked.id, table.id):
        with pytest.raises(ValidationError):
            svc.set_ttl(version_id, 86400.0)
    model.ttl = timedelta(days=1)  # the source version takes one
    model.save()
    assert cairn.Api().artifact("reserved/model:v0").ttl == timedelta(days=1)
