"""Bad input gets a clear error and changes nothing."""

from __future__ import annotations

import json
import pathlib

import pytest

import cairn
from cairn.core import LEAF_FORMAT, digest_bytes
from cairn.errors import ArtifactNotFoundError, ManifestFormatError
from tests.conftest import write


def test_bad_files_and_names() -> None:
    art = cairn.Artifact("ok", "dataset")
    with pytest.raises(ValueError, match="does not exist"):
        art.add_file("missing.txt")
    pathlib.Path("adir").mkdir()
    with pytest.raises(ValueError, match="add_dir"):
        art.add_file("adir")
    with pytest.raises(ValueError, match="not a directory"):
        art.add_dir("missing-dir")
    write("f.txt", "f")
    for bad in ("/abs.txt", "../up.txt", "a//b", "a\x00b", "a/./b"):
        with pytest.raises(ValueError, match="invalid entry path"):
            art.add_file("f.txt", name=bad)
    with pytest.raises(ValueError, match="policy"):
        art.add_file("f.txt", policy="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="letters, digits"):
        cairn.Artifact("bad name!", "dataset")
    with pytest.raises(ValueError, match="reserved"):
        cairn.Artifact("x", "wandb-history")
    with pytest.raises(ValueError):
        cairn.init(project="a/b")
    with pytest.raises(ValueError, match="alias"), cairn.init() as run:
        run.log_artifact(art, aliases=["v3"])
    assert len(art.manifest.entries) == 0


def test_names_that_resolve_to_nothing() -> None:
    api = cairn.Api()
    with pytest.raises(ArtifactNotFoundError):
        api.artifact("nothing:latest")
    with pytest.raises(LookupError):
        api.artifact("nothing")
    with pytest.raises(ValueError):
        api.artifact("too/many/parts/here")


@pytest.mark.embedded_only
def test_an_exception_while_logging_leaves_no_version(monkeypatch: pytest.MonkeyPatch) -> None:
    art = cairn.Artifact("ds", "dataset")
    art.add_file(write("a.txt", "a"))
    from cairn.service import _commit

    def explode(*args: object, **kw: object) -> None:
        raise RuntimeError("disk on fire")

    # A context, not monkeypatch.undo(): that would also undo the fixture's CAIRN_DIR and send
    # the rest of the test to ~/.cairn. The labelling runs inside the commit's transaction on
    # every path (the embedded store's quick one and SQLAlchemy's).
    with monkeypatch.context() as patch:
        patch.setattr(_commit, "label", explode)
        with cairn.init() as run, pytest.raises(RuntimeError):
            run.log_artifact(art)
    assert not cairn.Api().artifact_exists("ds")


@pytest.mark.embedded_only
def test_a_manifest_that_would_escape_the_download_root_is_refused(tmp_path: pathlib.Path) -> None:
    art = cairn.Artifact("ds", "dataset")
    art.add_file(write("a.txt", "a"))
    with cairn.init() as run:
        run.log_artifact(art)
    # Forge a version whose manifest page names "../escape" (as a hostile store could).
    from cairn.sdk import current_service
    from cairn.service import LocalService

    svc = current_service()
    assert isinstance(svc, LocalService)
    page = json.dumps(
        {
            "format": LEAF_FORMAT,
            "entries": [["../escape.txt", art.manifest.entries["a.txt"].digest, 1]],
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode()
    svc.store_blobs([(digest_bytes(page), page)])
    from sqlalchemy import text

    with svc.catalog.engine.begin() as conn:
        conn.execute(text("UPDATE versions SET digest = :d"), {"d": digest_bytes(page)})
    forged = cairn.Api().artifact("ds:v0")
    with pytest.raises(ManifestFormatError, match="unsafe"):
        forged.download(root=str(tmp_path / "root"))
    assert not (tmp_path / "escape.txt").exists()


def test_metadata_nan_becomes_null_and_reads_back_on_both_stores() -> None:
    art = cairn.Artifact("m", "dataset", metadata={"loss": float("nan"), "xs": [1.0, float("nan")]})
    assert art.metadata == {"loss": None, "xs": [1.0, None]}
    write("f.txt", "f")
    art.add_file("f.txt")
    with cairn.init() as run:
        run.log_artifact(art)
    logged = cairn.Api().artifact("m:latest")
    assert logged.metadata == {"loss": None, "xs": [1.0, None]}
    json.dumps(logged.metadata, allow_nan=False)


def test_metadata_too_deep_or_out_of_range_is_a_clear_error() -> None:
    deep: dict[str, object] = {}
    node = deep
    for _ in range(5000):  # deeper than Python's recursion limit
        node["x"] = node = {}
    with pytest.raises(ValueError, match="nested"):
        cairn.Artifact("d", "dataset", metadata=deep)
    with pytest.raises(ValueError, match=r"metadata\.big"):
        cairn.Artifact("d", "dataset", metadata={"big": 1 << 70})
    art = cairn.Artifact("d", "dataset", metadata={"tags": {"b", "a"}})  # a set: a list
    assert sorted(art.metadata["tags"]) == ["a", "b"]


def test_download_root_that_is_a_file_and_names_as_long_as_names_can_be(
    tmp_path: pathlib.Path,
) -> None:
    long_name = "n" * 251 + ".bin"  # 255 bytes: no room for a suffix beside it
    art = cairn.Artifact("long", "dataset")
    art.add_file(write("small.txt", "s"), name=long_name)
    art.add_file(write("big.bin", "b" * 200_000), name="d/" + long_name)
    with cairn.init() as run:
        run.log_artifact(art)
    logged = cairn.Api().artifact("long:latest")
    root = logged.download(root=str(tmp_path / "out"))
    assert (pathlib.Path(root) / long_name).read_text() == "s"
    assert (pathlib.Path(root) / "d" / long_name).stat().st_size == 200_000
    blocker = write(str(tmp_path / "a-file"), "x")
    with pytest.raises(ValueError, match="is a file, not a directory"):
        logged.download(root=blocker)
    in_the_way = tmp_path / "other"
    in_the_way.mkdir()
    (in_the_way / "d").write_text("a file where a directory goes")
    with pytest.raises(ValueError, match="in the way"):
        logged.download(root=str(in_the_way))
