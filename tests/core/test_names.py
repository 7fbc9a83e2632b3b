from __future__ import annotations

import pytest

from cairn.core import (
    entry_names_ok,
    entry_path_problem,
    normalize_entry_path,
    parse_artifact_path,
    validate_alias,
    validate_aliases,
    validate_artifact_name,
    validate_project,
    validate_tags,
    validate_type,
)
from cairn.errors import ValidationError


@pytest.mark.parametrize("name", ["a", "my-dataset_v2.1", "A" * 128])
def test_valid_artifact_names(name: str) -> None:
    assert validate_artifact_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "a/b", "a:b", "spaces here", "ü", "A" * 129, None, 3, ".", "..", "..."]
)
def test_invalid_artifact_names_say_what_is_allowed(name: object) -> None:
    with pytest.raises(ValidationError) as info:
        validate_artifact_name(name)
    assert isinstance(info.value, ValueError)


def test_reserved_and_bad_types() -> None:
    assert validate_type("dataset") == "dataset"
    for bad in ("job", "wandb-history", "a/b", "a:b", ""):
        with pytest.raises(ValidationError):
            validate_type(bad)


def test_aliases() -> None:
    assert validate_aliases(["best", "best", "prod"]) == ["best", "prod"]
    assert validate_aliases("x") == ["x"]
    assert validate_alias(".best") == ".best"
    for bad in ("v3", "a/b", "a:b", "", ".", "..", "...."):
        with pytest.raises(ValidationError):
            validate_alias(bad)


def test_tags() -> None:
    assert validate_tags(["a-b", "two words", "a-b"]) == ["a-b", "two words"]
    with pytest.raises(ValidationError):
        validate_tags(["bad!tag"])


def test_projects() -> None:
    assert validate_project("my project") == "my project"
    assert validate_project("a.b") == "a.b"
    # '*' is the grant pattern of API keys; dot-only names mean directories in paths and URLs.
    for bad in ("a/b", "a#b", "a?b", "a%b", "a:b", "", "*", "a*", ".", "..", "..."):
        with pytest.raises(ValidationError):
            validate_project(bad)
        with pytest.raises(ValidationError):
            validate_project(bad, "entity")


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("a.txt", "a.txt"),
        ("./d/a.txt", "d/a.txt"),
        ("d/e/f", "d/e/f"),
        ("naïve ü.txt", "naïve ü.txt"),
    ],
)
def test_entry_paths_normalise(raw: str, normal: str) -> None:
    assert normalize_entry_path(raw) == normal


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "/etc/passwd",
        "../x",
        "a/../../x",
        "a//b",
        "a/",
        "a\x00b",
        "a\\b",
        "C:/x",
        "a/./b",
        ".",
        "x" * 300,
    ],
)
def test_unsafe_entry_paths_are_refused(bad: str) -> None:
    assert entry_path_problem(bad) is not None
    with pytest.raises(ValidationError, match="invalid entry path"):
        normalize_entry_path(bad)


def test_parse_artifact_paths() -> None:
    p = parse_artifact_path("ent/proj/name:v3")
    assert (p.entity, p.project, p.name, p.label, p.version_index) == (
        "ent",
        "proj",
        "name",
        "v3",
        3,
    )
    p = parse_artifact_path("proj/name:best")
    assert (p.entity, p.project, p.name, p.label, p.version_index) == (
        None,
        "proj",
        "name",
        "best",
        None,
    )
    p = parse_artifact_path("name")
    assert (p.project, p.label) == (None, None)
    assert str(parse_artifact_path("a/b/c:latest")) == "a/b/c:latest"
    for bad in ("a/b/c/d", "name:", "bad name", ":v1"):
        with pytest.raises(ValidationError):
            parse_artifact_path(bad)


_NAMES = [
    "f00001.bin",
    "a b",
    ".hidden",
    "c:",
    "x:y",
    "back\\slash",
    "é.txt",
    "tab\tname",
    "..",
    "n" * 255,
    "n" * 200,
    "ok-1",
    "~tmp",
    "-",
    "%20",
]
_PREFIXES = ["", "data/", "d000/sub/", ".git/", "c:/", "a:b/", "é/", "p" * 100 + "/", "x/../"]


@pytest.mark.parametrize("prefix", _PREFIXES)
def test_a_directory_whose_names_pass_at_once_holds_no_bad_path(prefix: str) -> None:
    import itertools

    for size in (1, 2, 3):
        for names in itertools.combinations(_NAMES, size):
            if entry_names_ok(prefix, list(names)):
                assert all(entry_path_problem(prefix + n) is None for n in names), (prefix, names)


def test_common_names_pass_at_once_and_a_bad_one_does_not() -> None:
    names = [f"f{i:05}.bin" for i in range(200)]
    assert entry_names_ok("", names)
    assert entry_names_ok("d000/sub/", names)
    assert entry_names_ok("data/", [])
    assert not entry_names_ok("d000/", [*names, ".env"])
    assert not entry_names_ok("", [*names, "c:"])
    assert not entry_names_ok(".git/", names)
    assert not entry_names_ok("d000/", [*names, "n" * 252])  # 257 characters: checked one by one
