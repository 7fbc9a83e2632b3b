"""The code a version's and a file's pages offer to copy: Python, the command line, and on a
server the environment that points them at it. Each uses exactly that version (``name:vN``,
never an alias, which can move)."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from cairn.core import VersionRecord


@dataclass(frozen=True, slots=True)
class Snippet:
    id: str
    title: str
    code: str


def _py(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a Python string literal, escapes included


_FSSPEC = "import fsspec  # pip install 'cairn-artifacts[data]'\n\n"


def full_name(v: VersionRecord) -> str:
    return f"{v.entity}/{v.project}/{v.name}:{v.version}"


def _environment(server_url: str | None) -> list[Snippet]:
    if server_url is None:
        return []
    code = f"export CAIRN_BASE_URL={shlex.quote(server_url)}\nexport CAIRN_API_KEY=cairn_...   # your API key"
    return [Snippet("env", "Environment (this server)", code)]


def version_snippets(v: VersionRecord, server_url: str | None) -> list[Snippet]:
    """Snippets for a version page; ``server_url`` is the server's address (None: embedded)."""
    name = full_name(v)
    root = f"./{v.name}-{v.version}"
    return [
        *_environment(server_url),
        Snippet(
            "use-artifact",
            "Python: use it in a run (recorded as the run's input)",
            "import cairn as wandb\n\n"
            f"with wandb.init(project={_py(v.project)}, entity={_py(v.entity)}) as run:\n"
            f"    artifact = run.use_artifact({_py(name)})\n"
            "    path = artifact.download()\n",
        ),
        Snippet(
            "api-download",
            "Python: download it outside a run",
            "import cairn as wandb\n\n"
            f"artifact = wandb.Api().artifact({_py(name)})\n"
            f"path = artifact.download(root={_py(root)})\n",
        ),
        Snippet(
            "cairn-url",
            "Python: its cairn:// path (fsspec: pandas, pyarrow, DuckDB, ...)",
            f'{_FSSPEC}fs = fsspec.filesystem("cairn")\n'
            f"files = fs.find({_py(f'cairn://{name}/')})\n",
        ),
        Snippet(
            "cli-get",
            "Command line",
            f"cairn artifact get {shlex.quote(name)} --root {shlex.quote(root)}",
        ),
    ]


def file_snippets(v: VersionRecord, path: str, server_url: str | None) -> list[Snippet]:
    """Snippets for one file of a version."""
    name = full_name(v)
    root = f"./{v.name}-{v.version}"
    return [
        *_environment(server_url),
        Snippet(
            "get-entry",
            "Python: download this file",
            "import cairn as wandb\n\n"
            f"artifact = wandb.Api().artifact({_py(name)})\n"
            f"local_path = artifact.get_entry({_py(path)}).download(root={_py(root)})\n",
        ),
        Snippet(
            "cairn-url",
            "Python: its cairn:// path (fsspec: pandas, pyarrow, DuckDB, ...)",
            f'{_FSSPEC}with fsspec.open({_py(f"cairn://{name}/{path}")}, "rb") as f:\n'
            "    data = f.read()\n",
        ),
        Snippet(
            "cli-get",
            "Command line",
            f"cairn artifact get {shlex.quote(name)} --path-prefix {shlex.quote(path)}"
            f" --root {shlex.quote(root)}",
        ),
    ]
