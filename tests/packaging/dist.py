"""Checks of what we would publish: ``python -m tests.packaging.dist check|smoke DIST_DIR``.

``check`` (``make dist``, after ``python -m build`` and ``twine check``): the wheel and the sdist
hold every file under ``src/cairn`` (templates, static files, migrations, ``py.typed``), the
license, and metadata naming the distribution and the version of ``src/cairn/_version.py``.

``smoke`` (``make smoke``): installs the wheel into a fresh virtual environment (no editable
install, no dev extras) and runs it there as a user would: ``cairn --version``, ``cairn demo`` and
the README's quickstart on a temporary store, the hints of missing extras; then adds the
``server`` extra and has ``cairn ui`` and ``cairn server`` each answer requests.
"""

from __future__ import annotations

import email
import json
import os
import re
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
DIST_NAME = "cairn-artifacts"
# What the core install must not pull in: each comes with an extra.
EXTRA_ONLY = ("fastapi", "uvicorn", "jinja2", "boto3", "psycopg", "pandas", "pyarrow", "fsspec")


def source_version() -> str:
    text = (SRC / "cairn" / "_version.py").read_text()
    found = re.search(r'^__version__ = "([^"]+)"$', text, re.M)
    assert found, "src/cairn/_version.py has no __version__"
    return found.group(1)


def package_files() -> list[str]:
    """Every file of the package, relative to ``src`` (as git tracks them, else as on disk)."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", "src/cairn"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        files = [str(Path(f).relative_to("src")) for f in out]
    except (OSError, subprocess.CalledProcessError):
        files = []
    if not files:
        files = [
            str(p.relative_to(SRC))
            for p in (SRC / "cairn").rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        ]
    return sorted(f for f in files if (SRC / f).is_file())  # tracked, not deleted meanwhile


def find_dists(dist: Path) -> tuple[Path, Path]:
    version = source_version()
    wheels = sorted(dist.glob(f"cairn_artifacts-{version}-*.whl"))
    sdists = sorted(dist.glob(f"cairn_artifacts-{version}.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, f"expected one wheel and one sdist in {dist}"
    return wheels[0], sdists[0]


def check(dist: Path) -> None:
    version = source_version()
    wheel, sdist = find_dists(dist)
    wanted = package_files()
    problems: list[str] = []

    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        info = f"cairn_artifacts-{version}.dist-info"
        meta = email.message_from_bytes(zf.read(f"{info}/METADATA"))
        entry_points = zf.read(f"{info}/entry_points.txt").decode()
    problems += [f"wheel lacks {f}" for f in wanted if f not in names]
    tops = {n.split("/", 1)[0] for n in names}
    problems += [f"wheel has a stray top-level {t!r}" for t in tops - {"cairn", info}]
    problems += [f"wheel has {n}" for n in names if "__pycache__" in n or n.endswith(".pyc")]
    if f"{info}/licenses/LICENSE" not in names:
        problems.append("wheel lacks the LICENSE")
    expected = {
        "Name": DIST_NAME,
        "Version": version,
        "License-Expression": "Apache-2.0",
        "Requires-Python": ">=3.11",
    }
    for field, value in expected.items():
        if meta.get(field) != value:
            problems.append(f"wheel METADATA {field} is {meta.get(field)!r}, not {value!r}")
    extras = set(meta.get_all("Provides-Extra") or [])
    problems += [f"wheel lacks the {e!r} extra" for e in {"ui", "server", "s3", "data"} - extras]
    if not re.search(r"^cairn = cairn\.cli:main$", entry_points, re.M):
        problems.append("wheel has no `cairn` console script")

    with tarfile.open(sdist) as tf:
        prefix = f"cairn_artifacts-{version}/"
        members = {m.name.removeprefix(prefix) for m in tf.getmembers() if m.isfile()}
    problems += [f"sdist lacks src/{f}" for f in wanted if f"src/{f}" not in members]
    problems += [f"sdist has {m}" for m in members if m.startswith("tests/")]
    for f in ("LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml"):
        if f not in members:
            problems.append(f"sdist lacks {f}")

    if problems:
        sys.exit("dist check failed:\n  " + "\n  ".join(problems))
    print(f"dist check: {wheel.name} and {sdist.name} hold all {len(wanted)} package files")


def run(
    cmd: Sequence[str | Path], *, env: dict[str, str], cwd: Path, ok: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(c) for c in cmd], env=env, cwd=cwd, capture_output=True, text=True, timeout=600
    )
    if ok and result.returncode != 0:
        sys.exit(
            f"smoke: {' '.join(map(str, cmd))} exited {result.returncode}\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()


@contextmanager
def serving(
    cmd: Sequence[str | Path], url: str, *, env: dict[str, str], cwd: Path
) -> Iterator[str]:
    """Start ``cmd``, wait until ``url`` answers (at most 60 s), yield it, stop the process."""
    log = cwd / f"server-{len(list(cwd.glob('server-*.log')))}.log"
    with log.open("w") as out:
        proc = subprocess.Popen([str(c) for c in cmd], env=env, cwd=cwd, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                sys.exit(f"smoke: {' '.join(map(str, cmd))} exited early:\n{log.read_text()}")
            try:
                get(url)
                break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit(f"smoke: {url} did not answer:\n{log.read_text()}")
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


STARTED = time.monotonic()


def expect(condition: bool, what: str, detail: str = "") -> None:
    if not condition:
        sys.exit(f"smoke: FAILED: {what}\n{detail}")
    print(f"smoke: ok ({time.monotonic() - STARTED:4.0f} s): {what}", flush=True)


def quickstart(work: Path) -> str:
    """The README's quickstart, with the files it reads (as tests/test_readme.py makes them)."""
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme.split("## Quickstart", 1)[1], re.S)
    assert code is not None, "README has no quickstart"
    files = {f"data/images/{i}.png": f"image {i}" for i in range(3)}
    files |= {
        "data/images/duplicates/0.png": "image 0",
        "data/labels.csv": "id,label\n0,cat\n",
        "fixed/labels.csv": "id,label\n0,dog\n",
        "shard-3.parquet": "PAR1",
    }
    for name, text in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    return code.group(1)


class Venv:
    """A fresh virtual environment of the base interpreter (nothing of the dev venv in it), into
    which this pip installs ``spec`` in the background (two installs overlap their downloads)."""

    def __init__(self, path: Path, spec: str, env: dict[str, str]) -> None:
        self.path, self.spec, self.env = path, spec, env
        self.python, self.cairn = path / "bin" / "python", path / "bin" / "cairn"
        base = getattr(sys, "_base_executable", sys.executable)
        run([base, "-m", "venv", "--without-pip", path], env=env, cwd=path.parent)
        self.log = path.parent / f"{path.name}-pip.log"
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [*self.pip(), "install", "-q", spec], env=env, stdout=out, stderr=out
            )

    def pip(self) -> list[str | Path]:
        return [sys.executable, "-m", "pip", "--disable-pip-version-check", "--python", self.python]

    def ready(self) -> None:
        if self.proc.wait() != 0:
            sys.exit(f"smoke: pip install {self.spec} failed:\n{self.log.read_text()}")
        run([*self.pip(), "check"], env=self.env, cwd=self.path.parent)


def smoke(dist: Path) -> None:
    version = source_version()
    wheel, _ = find_dists(dist)
    with tempfile.TemporaryDirectory(prefix="cairn-smoke-") as tmp:
        base = Path(tmp)
        keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
        env = {k: v for k, v in os.environ.items() if k in keep or k.startswith("PIP_")}
        env |= {
            "CAIRN_DIR": str(base / "store"),
            "CAIRN_CACHE_DIR": str(base / "cache"),
            "CAIRN_ARTIFACT_DIR": str(base / "artifacts"),
            "CAIRN_SILENT": "true",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        work = base / "work"
        work.mkdir()
        core = Venv(base / "core", str(wheel), env)
        full = Venv(base / "server", f"{wheel}[server]", env)
        core.ready()
        smoke_core(core, version, work, env)
        full.ready()
        smoke_servers(full, version, base, work, env)
    print(f"smoke: the wheel works in a fresh environment ({time.monotonic() - STARTED:.0f} s)")


def smoke_core(venv: Venv, version: str, work: Path, env: dict[str, str]) -> None:
    """The install without extras: the embedded store, the SDK and the CLI, and the hints."""
    py, cairn = venv.python, venv.cairn
    out = run([cairn, "--version"], env=env, cwd=work).stdout.strip()
    expect(out == f"cairn, version {version}", f"cairn --version says {version}", out)
    out = run([py, "-c", "import cairn; print(cairn.__version__)"], env=env, cwd=work).stdout
    expect(out.strip() == version, "cairn.__version__ is the same", out)
    probe = f"import importlib.util as u; print([m for m in {EXTRA_ONLY!r} if u.find_spec(m)])"
    out = run([py, "-c", probe], env=env, cwd=work).stdout.strip()
    expect(out == "[]", "the core install pulls in no extra's packages", out)
    where = "import cairn, pathlib; print(pathlib.Path(cairn.__file__).parent)"
    package = Path(run([py, "-c", where], env=env, cwd=work).stdout.strip())
    expect(package.parent.name == "site-packages", "cairn comes from the wheel", str(package))
    expect((package / "py.typed").is_file(), "py.typed is installed")

    out = run([cairn, "demo", "--workdir", work / "demo"], env=env, cwd=work).stdout
    expect("v0" in out and "v1" in out, "cairn demo runs on a temporary store", out)
    result = run([py, "-c", quickstart(work)], env=env, cwd=work)
    expect(
        "['v1', 'v0']" in result.stdout,
        "the README's quickstart runs",
        result.stdout + result.stderr,
    )

    for what, cmd, extra in (
        ("cairn ui", [cairn, "ui", "--port", "0"], "ui"),
        ("cairn server", [cairn, "server", "--db", "s.db", "--store", "blobs"], "server"),
        ("import cairn.server", [py, "-c", "import cairn.server"], "server"),
        ("import cairn.ui", [py, "-c", "import cairn.ui"], "ui"),
    ):
        result = run(cmd, env=env, cwd=work, ok=False)
        hint = f"pip install '{DIST_NAME}[{extra}]'"
        expect(
            result.returncode == 1 and hint in result.stderr,
            f"{what} without the extra says {hint}",
            result.stderr,
        )
    result = run([cairn, "server", "--help"], env=env, cwd=work, ok=False)
    expect(result.returncode == 0, "cairn server --help works without the extra")


def smoke_servers(venv: Venv, version: str, base: Path, work: Path, env: dict[str, str]) -> None:
    """With the server extra (which brings ui and s3): `cairn ui` and `cairn server` answer."""
    cairn = venv.cairn
    port = free_port()
    ui = [cairn, "ui", "--port", port]
    with serving(ui, f"http://127.0.0.1:{port}/", env=env, cwd=work) as url:
        status, page = get(url)
        expect(
            status == 200 and "seed-single" in page and "mnist" in page,
            "cairn ui serves the projects of the demo and the quickstart",
            page[:500],
        )
        status, css = get(url + "-/static/style.css")
        expect(status == 200 and len(css) > 100, "cairn ui serves its static files")

    db = base / "server.db"
    run([cairn, "server", "migrate", "--db", db], env=env, cwd=work)
    port = free_port()
    key = "smoke-admin-key-0123456789abcdef0123456789"
    server = [cairn, "server", "--db", db, "--store", base / "blobs", "--port", port]
    api = f"http://127.0.0.1:{port}/api/v1/"
    with serving(server, api + "openapi.json", env=env | {"CAIRN_ADMIN_KEY": key}, cwd=work):
        status, _ = get(api + "projects")
        expect(status == 401, "cairn server refuses a request without a key")
        status, body = get(api + "whoami", {"Authorization": f"Bearer {key}"})
        expect(
            status == 200 and '"admin":true' in body.replace(" ", ""),
            "cairn server answers the admin key",
            body,
        )
        status, body = get(api + "openapi.json", {"Authorization": f"Bearer {key}"})
        shown = json.loads(body)["info"]["version"] if status == 200 else None
        expect(shown == version, f"cairn server's OpenAPI document says {version}", body[:300])
        status, page = get(f"http://127.0.0.1:{port}/-/login")
        expect(status == 200 and "<form" in page, "cairn server serves the UI's sign-in page")


def main(argv: Sequence[str]) -> None:
    if len(argv) != 2 or argv[0] not in ("check", "smoke"):
        sys.exit("usage: python -m tests.packaging.dist check|smoke DIST_DIR")
    {"check": check, "smoke": smoke}[argv[0]](Path(argv[1]).resolve())


if __name__ == "__main__":
    main(sys.argv[1:])
