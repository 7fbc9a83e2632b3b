"""``benchmarks._rounds``: issue 14's large file timed in runs of ours and of boto3's floor
alternated on one S3 server (``alternated``: ABBA pairs), each run of ours on a file of its own
and refused if the server's objects did not grow by the file (a dedup hit is not an upload).
The S3 server is moto's (the session's); the client process each of our runs starts is stood in
for by a function storing the file's content under the server's prefix once, as a server does."""

from __future__ import annotations

import hashlib
import os
import pathlib

import pytest
from benchmarks._common import alternated, list_files
from benchmarks._rounds import large_rounds

from tests._infra import S3Server


def test_the_order_pairs_floor_and_ours_abba_the_floor_first() -> None:
    assert alternated(3) == ["floor", "ours", "ours", "floor", "floor", "ours"]
    for n in range(1, 7):
        order = alternated(n)
        assert order.count("floor") == order.count("ours") == n
        assert order[0] == "floor"
        if n % 2 == 0:  # whole ABBA blocks: each side's mean position is the same
            places = {s: sum(i for i, o in enumerate(order) if o == s) for s in ("floor", "ours")}
            assert places["floor"] == places["ours"]


def _large_dirs(tmp_path: pathlib.Path, contents: list[bytes]) -> list[str]:
    dirs = []
    for k, content in enumerate(contents):
        sub = tmp_path / f"large-{k}" / "d000"
        sub.mkdir(parents=True)
        (sub / "f00000.bin").write_bytes(content)
        dirs.append(str(sub.parent))
    return dirs


def test_each_side_runs_alternated_on_its_own_file_and_an_upload_that_sent_nothing_is_refused(
    s3: S3Server,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    prefix = f"rounds-{tmp_path.name}/"
    client = s3.client()
    calls: list[tuple[str, str]] = []

    def child(
        module: str, step: str, path: str, name: str, env: dict[str, str]
    ) -> dict[str, float]:
        assert (module, name) == ("_transfer_child", "large")
        calls.append((step, path))
        if step == "up":
            (one,) = list_files(path)
            content = pathlib.Path(one).read_bytes()
            key = prefix + hashlib.sha256(content).hexdigest()
            if "Contents" not in client.list_objects_v2(Bucket=s3.bucket, Prefix=key):
                client.put_object(Bucket=s3.bucket, Key=key, Body=content)  # else found, not sent
        return {"seconds": float(len(calls)), "peak_mib": 50.0 + len(calls), "disk_mib": 0.0}

    monkeypatch.setattr("benchmarks._rounds.run_child", child)
    monkeypatch.setattr("benchmarks._rounds.settle", lambda: None)
    monkeypatch.setattr(
        "benchmarks._rounds.ROOT", str(tmp_path)
    )  # where the floor's download lands
    contents = [os.urandom(3000) for _ in range(3)]
    dirs = _large_dirs(tmp_path, contents)
    env = {"CAIRN_CACHE_DIR": str(tmp_path / "cache")}
    runs = large_rounds(s3, prefix, dirs, env, str(tmp_path / "out"))

    assert calls == [*[("up", d) for d in dirs], ("down", str(tmp_path / "out"))]
    assert runs["ours up"] == [1.0, 2.0, 3.0] and runs["ours down"] == [4.0]
    assert len(runs["floor up"]) == 3 and len(runs["floor down"]) == 1
    assert all(t > 0 for t in runs["floor up"] + runs["floor down"])
    for k, content in enumerate(contents):  # the floor's run k sent file k
        got = client.get_object(Bucket=s3.bucket, Key=f"floor/large-{k}")["Body"].read()
        assert got == content
    printed = capsys.readouterr().out
    assert "up, every run in order, s: floor " in printed
    assert "ours 1.00, ours 2.00, floor" in printed  # ABBA, every run's seconds
    assert "down, s: ours 4.00, floor " in printed

    # Round 3 of ours with round 1's content: the server has it, nothing is sent: refused.
    calls.clear()
    again = _large_dirs(tmp_path / "again", [os.urandom(3000), os.urandom(3000), contents[0]])
    with pytest.raises(RuntimeError, match="run 3 of ours up stored 0 bytes, not 3000"):
        large_rounds(s3, prefix, again, env, str(tmp_path / "out"))
    client.close()
