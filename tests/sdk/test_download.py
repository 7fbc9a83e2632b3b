"""Downloads: default roots, verification, skipping present files, prefixes, checkout, verify."""

from __future__ import annotations

import os
import pathlib

import pytest

import cairn
from cairn.errors import DigestMismatchError, ValidationError
from tests.conftest import write


def logged(files: dict[str, bytes | str], name: str = "ds") -> cairn.Artifact:
    art = cairn.Artifact(name, "dataset")
    for path, content in files.items():
        art.add_file(write(f"src/{path}", content), name=path)
    with cairn.init() as run:
        run.log_artifact(art)
    return art


def test_default_root_and_content(cairn_env: pathlib.Path) -> None:
    big = os.urandom(300_000)
    art = logged({"a.txt": "alpha", "deep/er/b.bin": big})
    root = art.download()
    assert root == os.path.join(str(cairn_env / "artifacts"), "ds:v0")
    assert pathlib.Path(root, "a.txt").read_text() == "alpha"
    assert pathlib.Path(root, "deep", "er", "b.bin").read_bytes() == big
    art.verify()


def test_present_files_are_not_copied_again(tmp_path: pathlib.Path) -> None:
    art = logged({"a.txt": "alpha", "b.txt": "beta"})
    root = art.download(root=str(tmp_path / "out"))
    a = pathlib.Path(root, "a.txt")
    ino = a.stat().st_ino
    pathlib.Path(root, "b.txt").write_text("tampered")
    art.download(root=root)
    assert a.stat().st_ino == ino  # untouched
    assert pathlib.Path(root, "b.txt").read_text() == "beta"  # repaired


def test_path_prefix_and_single_entries(tmp_path: pathlib.Path) -> None:
    art = logged({"train/1.txt": "1", "train/2.txt": "2", "test/1.txt": "t"})
    root = art.download(root=str(tmp_path / "p"), path_prefix="train/")
    assert sorted(os.listdir(os.path.join(root, "train"))) == ["1.txt", "2.txt"]
    assert not os.path.exists(os.path.join(root, "test"))
    path = art.get_entry("test/1.txt").download(root=str(tmp_path / "one"))
    assert pathlib.Path(path).read_text() == "t"
    single = logged({"model.pt": "w"}, name="m")
    assert pathlib.Path(single.file(root=str(tmp_path / "f"))).read_text() == "w"
    with pytest.raises(ValueError, match="exactly one"):
        art.file()


def test_checkout_removes_extra_files_and_verify_names_problems(tmp_path: pathlib.Path) -> None:
    art = logged({"a.txt": "alpha", "d/b.txt": "beta"})
    root = str(tmp_path / "co")
    write(os.path.join(root, "extra.txt"), "x")
    art.checkout(root)
    assert sorted(os.listdir(root)) == ["a.txt", "d"]
    art.verify(root)
    write(os.path.join(root, "stray.txt"), "s")
    with pytest.raises(ValueError, match=r"stray\.txt"):
        art.verify(root)
    os.remove(os.path.join(root, "stray.txt"))
    write(os.path.join(root, "a.txt"), "ALPHA")
    with pytest.raises(ValueError, match=r"a\.txt"):
        art.verify(root)
    os.remove(os.path.join(root, "a.txt"))
    with pytest.raises(ValueError, match="missing"):
        art.verify(root)


@pytest.mark.embedded_only
def test_corrupted_store_content_is_detected(
    cairn_env: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    big = os.urandom(1_200_000)  # a blob file (under 1 MiB: packed)
    art = logged({"big.bin": big})
    blob = cairn_env / "store" / "blobs" / "sha256" / art.manifest.entries["big.bin"].digest[7:9]
    (path,) = list(blob.iterdir())
    path.chmod(0o644)
    path.write_bytes(bytes([big[0] ^ 0xFF]) + big[1:])  # flipped: random bytes may begin with "X"
    with pytest.raises(DigestMismatchError, match="damaged"):
        art.download(root=str(tmp_path / "bad"))
    assert not (tmp_path / "bad" / "big.bin").exists()


def test_downloads_never_escape_the_root_through_symlinks(tmp_path: pathlib.Path) -> None:
    art = logged({"d/secret.txt": "s"})
    root = tmp_path / "r"
    outside = tmp_path / "outside"
    outside.mkdir()
    root.mkdir()
    (root / "d").symlink_to(outside)
    with pytest.raises(ValidationError, match="symbolic link"):
        art.download(root=str(root))
    assert list(outside.iterdir()) == []


def test_file_references(tmp_path: pathlib.Path) -> None:
    data_dir = tmp_path / "nfs"
    write(data_dir / "x.csv", "1,2")
    write(data_dir / "sub" / "y.csv", "3,4")
    art = cairn.Artifact("refs", "dataset")
    entries = art.add_reference(f"file://{data_dir}", name="data")
    assert sorted(e.path for e in entries) == ["data/sub/y.csv", "data/x.csv"]
    art.add_reference(f"file://{data_dir}/x.csv", name="plain", checksum=False)
    with pytest.raises(ValueError, match="max_objects"):
        cairn.Artifact("r2", "dataset").add_reference(f"file://{data_dir}", max_objects=1)
    (kept,) = cairn.Artifact("r3", "dataset").add_reference("ftp://host/x")  # kept by URI
    assert (kept.digest, kept.size) == ("ftp://host/x", None)
    with pytest.raises(ValueError, match="URI"):
        cairn.Artifact("r4", "dataset").add_reference("/no/scheme")
    with cairn.init() as run:
        run.log_artifact(art)
    assert art.manifest.entries["data/x.csv"].ref == f"file://{data_dir}/x.csv"
    root = art.download(root=str(tmp_path / "dl"))
    assert pathlib.Path(root, "data", "sub", "y.csv").read_text() == "3,4"
    assert pathlib.Path(root, "plain").read_text() == "1,2"
    write(data_dir / "x.csv", "changed!")
    with pytest.raises(DigestMismatchError, match=r"data/x\.csv"):
        art.download(root=str(tmp_path / "dl2"))
    with pytest.warns(UserWarning, match="skipped"):
        art.download(root=str(tmp_path / "dl3"), allow_missing_references=True)
