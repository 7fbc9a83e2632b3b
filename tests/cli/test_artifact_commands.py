"""``cairn artifact ...``: each command through the console script, follow-ups in process."""

from __future__ import annotations

import hashlib
import os
import pathlib

from tests.cli.conftest import cairn_cli, ok, run, run_ok
from tests.conftest import write


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_tree(root: pathlib.Path, files: dict[str, bytes]) -> pathlib.Path:
    for rel, content in files.items():
        write(root / rel, content)
    return root


def test_put_and_get_a_directory_and_a_file(
    tmp_path: pathlib.Path, cairn_env: pathlib.Path
) -> None:
    big = os.urandom(200_000)
    data = make_tree(tmp_path / "data", {"a.txt": b"alpha", "sub/b.txt": b"beta", "big.bin": big})
    first = ok("artifact", "put", str(data), "-n", "proj/ds", "-a", "raw", "-d", "first")
    assert first.out.startswith("created ") and "proj/ds:v0 (3 files" in first.out
    again = run_ok("artifact", "put", str(data), "-n", "proj/ds", "-a", "again", "--json").json()
    assert again["created"] is False and again["version"] == "v0"
    assert set(again["aliases"]) == {"latest", "raw", "again"}
    assert again["description"] == "first" and again["type"] == "dataset"
    assert "reused" in run_ok("artifact", "put", str(data), "-n", "proj/ds").out

    model = write(tmp_path / "weights.pt", b"w" * 10)
    put = run_ok("artifact", "put", model, "-n", "proj/model", "-t", "model", "--json").json()
    assert (put["name"], put["type"], put["files"], put["created"]) == ("model", "model", 1, True)

    where = ok("artifact", "get", "proj/ds:raw").out.strip()
    assert where == str(cairn_env / "artifacts" / "ds:v0")
    assert pathlib.Path(where, "sub", "b.txt").read_bytes() == b"beta"
    assert pathlib.Path(where, "big.bin").read_bytes() == big
    only = run_ok(
        "artifact", "get", "proj/ds", "--root", str(tmp_path / "o"), "--path-prefix", "sub/"
    )
    assert only.out.strip() == str(tmp_path / "o")
    assert sorted(p.name for p in (tmp_path / "o").rglob("*") if p.is_file()) == ["b.txt"]
    got = run_ok("artifact", "get", "proj/model:latest", "--root", str(tmp_path / "m"), "--json")
    assert got.json()["root"] == str(tmp_path / "m")
    assert (tmp_path / "m" / "weights.pt").read_bytes() == b"w" * 10


def test_put_defaults_and_bad_input(tmp_path: pathlib.Path) -> None:
    write(tmp_path / "my-data" / "x.txt", "x")
    put = run_ok("artifact", "put", str(tmp_path / "my-data"), "--json").json()
    assert (put["project"], put["name"]) == ("uncategorized", "my-data")
    missing = cairn_cli("artifact", "put", str(tmp_path / "nope"), "-n", "p/x")
    assert missing.code == 2 and "does not exist" in missing.err
    bad = cairn_cli("artifact", "put", str(tmp_path / "my-data"), "-n", "p/bad name")
    assert bad.code == 1 and bad.err.startswith("cairn: error: invalid artifact name")
    assert len(bad.err.strip().splitlines()) == 1 and "Traceback" not in bad.err
    labelled = run("artifact", "put", str(tmp_path / "my-data"), "-n", "p/x:v1")
    assert labelled.code == 1 and "--alias" in labelled.err
    debug = cairn_cli("--debug", "artifact", "put", str(tmp_path / "my-data"), "-n", "p/bad name")
    assert debug.code == 1 and "Traceback" in debug.err
    assert run("artifact", "nonsense").code == 2
    assert run("artifact", "get").code == 2
    policy = run("artifact", "put", str(tmp_path / "my-data"), "--policy", "sometimes")
    assert policy.code == 2


def test_immutable_policy_relogs_and_stored_content_never_follows_the_file(
    tmp_path: pathlib.Path, cairn_env: pathlib.Path
) -> None:
    first = os.urandom(300_000)
    data = make_tree(tmp_path / "ckpt", {"model.bin": first, "cfg.txt": b"x"})
    for _ in range(3):  # every re-log after the first used to fail ("changed while reading")
        put = run_ok("artifact", "put", str(data), "-n", "p/ckpt", "--policy", "immutable")
        assert put.code == 0
    big = data / "model.bin"
    assert os.stat(big).st_nlink == 1  # the store holds no hard link to the user's file
    with open(big, "r+b") as f:  # written over in place, as torch.save to the same path does
        f.write(b"\0" * 1000)
    run_ok("artifact", "get", "p/ckpt:v0", "--root", str(tmp_path / "out"))
    assert (tmp_path / "out" / "model.bin").read_bytes() == first
    assert ok("verify").code == 0


def test_ls_versions_and_files(tmp_path: pathlib.Path) -> None:
    data = make_tree(tmp_path / "d", {"a.txt": b"1", "b.txt": b"22"})
    run_ok("artifact", "put", str(data), "-n", "proj/ds")
    write(data / "c.txt", b"333")
    run_ok("artifact", "put", str(data), "-n", "proj/ds", "-a", "best")
    run_ok("artifact", "put", str(data / "a.txt"), "-n", "proj/one", "-t", "model")

    table = ok("artifact", "ls", "proj").out.splitlines()
    assert table[0].split() == ["NAME", "TYPE", "LATEST", "VERSIONS", "SIZE", "UPDATED"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows["ds"][1:4] == ["dataset", "v1", "2"] and rows["one"][1:4] == ["model", "v0", "1"]
    listed = run_ok("artifact", "ls", "proj", "-t", "model", "--json").json()
    assert [(c["name"], c["latest_version"], c["versions"]) for c in listed] == [("one", "v0", 1)]
    assert run_ok("artifact", "ls", "empty-project", "--json").json() == []

    versions = ok("artifact", "versions", "proj/ds", "--json").json()
    assert [v["version"] for v in versions] == ["v1", "v0"]
    assert versions[0]["aliases"] == ["latest", "best"] and versions[0]["files"] == 3
    assert versions[0]["size"] == 6 and versions[0]["created_by"]
    human = run_ok("artifact", "versions", "proj/ds").out.splitlines()
    assert human[0].split() == ["VERSION", "ALIASES", "FILES", "SIZE", "CREATED", "RUN", "EXPIRES"]
    assert human[1].split()[:3] == ["v1", "latest,best", "3"]

    entries = ok("artifact", "files", "proj/ds:v0", "--json").json()
    assert entries == [
        {"path": "a.txt", "digest": sha(b"1"), "size": 1},
        {"path": "b.txt", "digest": sha(b"22"), "size": 2},
    ]
    lines = run_ok("artifact", "files", "proj/ds:best").out.splitlines()
    assert [line.split()[-1] for line in lines[1:]] == ["a.txt", "b.txt", "c.txt"]
    prefixed = run_ok("artifact", "files", "proj/ds", "--prefix", "c", "--json").json()
    assert [e["path"] for e in prefixed] == ["c.txt"]
    assert run("artifact", "versions", "proj/nothing").code == 1


def test_diff(tmp_path: pathlib.Path) -> None:
    data = make_tree(tmp_path / "d", {"keep.txt": b"k", "gone.txt": b"gone", "edit.txt": b"v1"})
    run_ok("artifact", "put", str(data), "-n", "proj/ds")
    os.remove(data / "gone.txt")
    write(data / "edit.txt", b"version two")
    write(data / "new" / "n.txt", b"new!")
    run_ok("artifact", "put", str(data), "-n", "proj/ds")
    human = ok("artifact", "diff", "proj/ds:v0", "ds:v1").out.splitlines()
    assert "+ new/n.txt  (4 B)" in human
    assert "- gone.txt  (4 B)" in human
    assert "~ edit.txt  (2 B -> 11 B)" in human
    assert human[-1].endswith("1 added (4 B), 1 removed (4 B), 1 modified (+9 B)")
    report = run_ok("artifact", "diff", "proj/ds:v0", "proj/ds:latest", "--json").json()
    assert report["totals"] == {
        "added": 1,
        "added_bytes": 4,
        "removed": 1,
        "removed_bytes": 4,
        "modified": 1,
        "modified_bytes": 9,
    }
    assert report["modified"][0]["old_digest"] == sha(b"v1")
    same = run_ok("artifact", "diff", "proj/ds:v1", "ds:latest", "--json").json()
    assert same["added"] == same["removed"] == same["modified"] == []


def test_alias_and_rm(tmp_path: pathlib.Path) -> None:
    data = make_tree(tmp_path / "d", {"a.txt": b"1"})
    run_ok("artifact", "put", str(data), "-n", "proj/ds")
    write(data / "a.txt", b"2")
    run_ok("artifact", "put", str(data), "-n", "proj/ds")
    added = ok("artifact", "alias", "add", "proj/ds:v0", "best").out.strip()
    assert added.endswith("proj/ds:v0: aliases best")
    assert run_ok("artifact", "get", "proj/ds:best", "--json").json()["version"] == "v0"
    run_ok("artifact", "alias", "add", "proj/ds:v1", "best")  # moves it
    assert run_ok("artifact", "get", "proj/ds:best", "--json").json()["version"] == "v1"
    bad_alias = run("artifact", "alias", "add", "proj/ds:v1", "v7")
    assert bad_alias.code == 1 and "version numbers" in bad_alias.err
    removed = ok("artifact", "alias", "rm", "proj/ds:v1", "best").out.strip()
    assert removed.endswith("proj/ds:v1: aliases latest")
    assert run("artifact", "get", "proj/ds:best").code == 1
    assert run("artifact", "alias", "rm", "proj/ds:v1", "best").code == 1

    run_ok("artifact", "alias", "add", "proj/ds:v0", "keep")
    refused = cairn_cli("artifact", "rm", "proj/ds:v0")
    assert refused.code == 1 and "--delete-aliases" in refused.err and "keep" in refused.err
    assert len(refused.err.strip().splitlines()) == 1
    whole = run("artifact", "rm", "proj/ds")
    assert whole.code == 1 and "name the version" in whole.err
    assert "deleted" in ok("artifact", "rm", "proj/ds:v0", "--delete-aliases").out
    versions = run_ok("artifact", "versions", "proj/ds", "--json").json()
    assert [v["version"] for v in versions] == ["v1"]
    gone = run("artifact", "get", "proj/ds:v0")
    assert gone.code == 1 and "v0" in gone.err
    kept = run("artifact", "rm", "proj/ds:latest")  # latest is an alias too, as in W&B
    assert kept.code == 1 and "latest" in kept.err and "--delete-aliases" in kept.err
    run_ok("artifact", "rm", "proj/ds:latest", "--delete-aliases")
    assert run("artifact", "get", "proj/ds").code == 1


def test_json_output_is_always_strict_json(tmp_path: pathlib.Path, cairn_env: pathlib.Path) -> None:
    import json
    import sqlite3

    data = make_tree(tmp_path / "d", {"a.txt": b"1"})
    run_ok("artifact", "put", str(data), "-n", "p/ds")
    # A store written by an older cairn may hold NaN in metadata.
    with sqlite3.connect(os.path.join(os.environ["CAIRN_DIR"], "catalog.sqlite")) as conn:
        conn.execute("""UPDATE versions SET metadata = '{"loss": NaN, "x": Infinity}'""")

    def strict(text: str) -> object:
        def refuse(name: str) -> object:
            raise ValueError(f"not strict JSON: {name}")

        return json.loads(text, parse_constant=refuse)

    versions = strict(run_ok("artifact", "versions", "p/ds", "--json").out)
    assert isinstance(versions, list) and versions[0]["metadata"] == {"loss": None, "x": None}
