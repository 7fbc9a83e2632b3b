"""The distribution's name, its one version source, its extras and the hints naming them.

The built wheel itself is checked and run in a fresh environment by `make smoke` (in CI):
tests/packaging/dist.py.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

import cairn
from cairn._extras import DIST_NAME, MissingExtraError, install_hint, require
from cairn._version import __version__
from cairn.cli import cli
from tests.packaging.dist import source_version
from tests.packaging.lower_bounds import RUNTIME_EXTRAS, lower_bounds, release

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
EXTRAS = PROJECT["optional-dependencies"]


def test_one_version_source() -> None:
    assert PROJECT["name"] == DIST_NAME == "cairn-artifacts"
    assert "version" not in PROJECT and PROJECT["dynamic"] == ["version"]
    dynamic = PYPROJECT["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "cairn._version.__version__"}
    assert cairn.__version__ == __version__ == source_version()
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.dev\d+)?", __version__)
    # The installed metadata (the dev install) says the same.
    assert importlib.metadata.version(DIST_NAME) == __version__
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and result.output == f"cairn, version {__version__}\n"


def test_command_and_import_stay_cairn() -> None:
    assert PROJECT["scripts"] == {"cairn": "cairn.cli:main"}
    assert PROJECT["license"] == "Apache-2.0" and PROJECT["license-files"] == ["LICENSE"]
    assert "Apache License" in (ROOT / "LICENSE").read_text()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["cairn"]


def test_changelog_has_a_section_per_version() -> None:
    """`## Unreleased` on top while the version in _version.py is being prepared; a release
    renames it `## X.Y.Z (YYYY-MM-DD)`; versions go down the file and none is past the source's."""
    headings = re.findall(r"^## (.+)$", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert headings, "CHANGELOG.md has no sections"
    released = headings[1:] if headings[0] == "Unreleased" else headings
    versions = []
    for heading in released:
        found = re.fullmatch(r"(\d+\.\d+\.\d+\S*) \(\d{4}-\d\d-\d\d\)", heading)
        assert found, f"CHANGELOG.md heading {heading!r} is not `X.Y.Z (YYYY-MM-DD)`"
        versions.append(release(found.group(1)))
    assert versions == sorted(versions, reverse=True), "CHANGELOG.md's versions are not in order"
    if versions:
        assert versions[0] <= release(__version__), "a released version is newer than the source's"
    if headings[0] != "Unreleased":
        assert versions[0] == release(__version__), "the newest section is not the source's version"


def test_extras_fit() -> None:
    assert set(EXTRAS) >= {"ui", "server", "s3", "data", "dev"}
    names = {
        extra: {re.split(r"[\[<>=; ]", r, maxsplit=1)[0].lower() for r in reqs}
        for extra, reqs in EXTRAS.items()
    }
    core = {re.split(r"[\[<>=; ]", r, maxsplit=1)[0].lower() for r in PROJECT["dependencies"]}
    # The core install is the embedded store, the SDK (also as an HTTP client) and the CLI.
    assert core == {"sqlalchemy", "alembic", "platformdirs", "rich", "click", "httpx"}
    assert {"fastapi", "uvicorn", "jinja2"} <= names["ui"]
    assert names["s3"] == {"boto3"}
    assert "cairn-artifacts[ui,s3]" in EXTRAS["server"] and "psycopg" in names["server"]
    assert {"fsspec", "pandas", "pyarrow"} <= names["data"]
    assert {"build", "twine"} <= names["dev"]
    assert f"{DIST_NAME}[server,ui,s3,data]" in EXTRAS["dev"]
    # Every runtime range has a lower bound (make test-min installs them).
    bounds = lower_bounds()
    for extra in RUNTIME_EXTRAS:
        assert names[extra] - {DIST_NAME} <= set(bounds)


def _hints(text: str) -> list[tuple[str, str]]:
    """(name, extras) of each `pip install NAME[EXTRAS]`, but of a file (dist/...whl)."""
    found = re.findall(r"pip install '?([A-Za-z0-9_./*-]+)(?:\[([a-z0-9,]+)\])?", text)
    return [(name, extras) for name, extras in found if "/" not in name]


def test_every_install_line_names_the_distribution() -> None:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    files += sorted((ROOT / "src" / "cairn").rglob("*.py"))
    seen = 0
    for path in files:
        for name, extras in _hints(path.read_text()):
            seen += 1
            assert name == DIST_NAME, f"{path.relative_to(ROOT)}: `pip install {name}`"
            for extra in filter(None, extras.split(",")):
                assert extra in EXTRAS, f"{path.relative_to(ROOT)}: no extra {extra!r}"
    assert seen >= 6


def test_require_names_the_extra() -> None:
    require("the test", "ui", "json", "sqlite3")  # present: nothing happens
    with pytest.raises(MissingExtraError) as caught:
        require("the test", "data", "json", "cairn_no_such_module")
    assert isinstance(caught.value, ImportError) and caught.value.name == "cairn_no_such_module"
    assert str(caught.value) == (
        "the test needs the 'data' extra (cairn_no_such_module is not installed): "
        "pip install 'cairn-artifacts[data]'"
    )
    assert install_hint("s3") == "pip install 'cairn-artifacts[s3]'"


def _without(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """As if ``modules`` were not installed, and the cairn packages needing them not imported."""
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)
    for name in list(sys.modules):
        if name in ("cairn.ui", "cairn.server") or name.startswith(("cairn.ui.", "cairn.server.")):
            monkeypatch.delitem(sys.modules, name)


def test_server_without_its_extra_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _without(monkeypatch, "fastapi")
    args = ["server", "--db", str(tmp_path / "c.db"), "--store", str(tmp_path / "blobs")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert "cairn server needs the 'server' extra (fastapi is not installed)" in result.output
    assert "pip install 'cairn-artifacts[server]'" in result.output
    with pytest.raises(MissingExtraError, match=re.escape("pip install 'cairn-artifacts[ui]'")):
        import cairn.ui  # noqa: F401
    assert CliRunner().invoke(cli, ["server", "--help"]).exit_code == 0


def test_postgresql_without_psycopg_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from cairn.server._backend import catalog_url

    assert catalog_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(MissingExtraError, match=re.escape("pip install 'cairn-artifacts[server]'")):
        catalog_url("postgresql://u@h/db")


def test_dataframe_without_pandas_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    table = cairn.Table(columns=["a"], data=[[1]])
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=re.escape("pip install 'cairn-artifacts[data]'")):
        table.get_dataframe()


def test_history_without_pandas_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    with cairn.init(project="p") as run:
        run.log({"a": 1})
        path = run.path
    api_run = cairn.Api().run(path)
    monkeypatch.setitem(sys.modules, "pandas", None)
    assert [r["a"] for r in api_run.history(pandas=False)] == [1]  # needs no pandas
    with pytest.raises(ImportError, match=re.escape("pip install 'cairn-artifacts[data]'")):
        api_run.history()


def _fake_dists(dist: Path, leave_out: str) -> None:
    """A wheel and an sdist as setuptools makes them, without ``leave_out``."""
    import tarfile
    import zipfile

    from tests.packaging.dist import package_files

    version = source_version()
    info = f"cairn_artifacts-{version}.dist-info"
    metadata = (
        f"Metadata-Version: 2.4\nName: cairn-artifacts\nVersion: {version}\n"
        "License-Expression: Apache-2.0\nRequires-Python: >=3.11\n"
        + "".join(f"Provides-Extra: {e}\n" for e in ("ui", "server", "s3", "data", "dev"))
    )
    with zipfile.ZipFile(dist / f"cairn_artifacts-{version}-py3-none-any.whl", "w") as zf:
        for name in package_files():
            if name != leave_out:
                zf.writestr(name, (ROOT / "src" / name).read_bytes())
        zf.writestr(f"{info}/METADATA", metadata)
        zf.writestr(f"{info}/entry_points.txt", "[console_scripts]\ncairn = cairn.cli:main\n")
        zf.writestr(f"{info}/licenses/LICENSE", (ROOT / "LICENSE").read_text())
    with tarfile.open(dist / f"cairn_artifacts-{version}.tar.gz", "w:gz") as tf:
        prefix = f"cairn_artifacts-{version}"
        for name in ("LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml"):
            tf.add(ROOT / name, f"{prefix}/{name}")
        for name in package_files():
            tf.add(ROOT / "src" / name, f"{prefix}/src/{name}")


def test_dist_check_fails_on_a_missing_package_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.packaging.dist import check

    complete, broken = tmp_path / "complete", tmp_path / "broken"
    complete.mkdir()
    broken.mkdir()
    _fake_dists(complete, leave_out="")
    check(complete)
    assert "hold all" in capsys.readouterr().out
    _fake_dists(broken, leave_out="cairn/ui/static/style.css")
    with pytest.raises(SystemExit, match=r"wheel lacks cairn/ui/static/style\.css"):
        check(broken)


def test_nothing_asks_for_the_old_distribution_name() -> None:
    """The version comes from cairn._version; the metadata of "cairn" is another project's."""
    for path in sorted((ROOT / "src" / "cairn").rglob("*.py")):
        text = path.read_text()
        assert not re.search(
            r"""(version|metadata|distribution|files)\(\s*["']cairn["']""", text
        ), f"{path.relative_to(ROOT)} reads the metadata of the distribution 'cairn'"
