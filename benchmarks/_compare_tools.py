"""The tools ``benchmarks.compare`` runs side by side, each operation a whole process.

Every tool gets, per run, a fresh store (repository, cache, staging directory) under the run's
directory, made by untimed set-up commands (``git init``, ``dvc init``, creating cairn's store),
then the timed steps in order: log new, re-log unchanged, re-log with one file changed, and,
where the tool can, fetching the version back into a new directory. W&B's client and DVC are
not cairn's dependencies: they run from their own virtual environment (``make bench-compare``
makes it), and a tool that is not there is reported as missing, never left out.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field

from benchmarks._common import cairn_command

OPS = ("log new", "re-log unchanged", "re-log, 1 file changed", "fetch into a new directory")

# ``import cairn as wandb``: the same script runs on W&B's client (``mode`` offline there).
LOG_SCRIPT = (
    "import sys\n"
    "if sys.argv[1] == 'wandb':\n"
    "    import wandb\n"
    "else:\n"
    "    import cairn as wandb\n"
    "run = wandb.init(project='bench', mode=sys.argv[2] or None)\n"
    "art = wandb.Artifact(sys.argv[4], 'dataset')\n"
    "art.add_dir(sys.argv[3])\n"
    "run.log_artifact(art)\n"
    "run.finish()\n"
)
FETCH_SCRIPT = (
    "import sys\n"
    "import cairn as wandb\n"
    "wandb.Api().artifact('bench/' + sys.argv[1] + ':latest').download(root=sys.argv[2])\n"
)
MAKE_STORE = "from cairn.sdk import current_service\ncurrent_service()\n"
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
}


@dataclass
class Step:
    """One timed process (``op``), after its untimed ``setup`` commands."""

    op: str
    cmd: list[str]
    cwd: str
    setup: list[list[str]] = field(default_factory=list)


def logs(cmd: list[str], cwd: str, setup: list[list[str]]) -> list[Step]:
    """A tool's three logs, each the same command: new (after ``setup``), unchanged, and with
    one file changed (the harness changes it between the two)."""
    return [Step(OPS[0], cmd, cwd, setup), Step(OPS[1], cmd, cwd), Step(OPS[2], cmd, cwd)]


class Tool:
    """A tool and what it does per operation (``what``: for the table's notes)."""

    name = ""
    what = ""
    unavailable: dict[str, str] = {}  # noqa: RUF012 - operations the tool has not, and why

    def missing(self) -> str | None:
        """Why the tool cannot run here (None: it can)."""
        return None

    def tree(self, data: str, work: str) -> str:
        """The tree this tool logs (its one-file change is made there)."""
        return data

    def steps(self, tree: str, run: str, label: str) -> list[Step]:
        raise NotImplementedError

    def env(self, run: str) -> dict[str, str]:
        return {}

    def footprint(self, tree: str, run: str) -> list[str]:
        """Directories whose size after each step is reported (the store, caches, copies)."""
        return [run]


class CairnCli(Tool):
    name = "cairn (CLI)"
    what = (
        "`cairn artifact put DIR` on the embedded store (made before the run, untimed); "
        "`cairn artifact get NAME:latest --root NEW`"
    )

    def env(self, run: str) -> dict[str, str]:
        return {
            "CAIRN_DIR": os.path.join(run, "store"),
            "CAIRN_CACHE_DIR": os.path.join(run, "cache"),
            "CAIRN_PROJECT": "bench",
            "CAIRN_SILENT": "true",
        }

    def steps(self, tree: str, run: str, label: str) -> list[Step]:
        put = [*cairn_command(), "artifact", "put", tree, "-n", f"bench/{label}"]
        made = [[sys.executable, "-c", MAKE_STORE]]
        out = os.path.join(run, "out")
        get = [*cairn_command(), "artifact", "get", f"bench/{label}:latest", "--root", out]
        return [*logs(put, run, made), Step(OPS[3], get, run)]


class CairnScript(CairnCli):
    name = "cairn (script)"
    what = (
        "`import cairn as wandb`; init, Artifact, add_dir, log_artifact, finish; fetch:"
        " `Api().artifact(...).download(root=NEW)`"
    )

    def steps(self, tree: str, run: str, label: str) -> list[Step]:
        log = [sys.executable, "-c", LOG_SCRIPT, "cairn", "", tree, label]
        made = [[sys.executable, "-c", MAKE_STORE]]
        fetch = [sys.executable, "-c", FETCH_SCRIPT, label, os.path.join(run, "out")]
        return [*logs(log, run, made), Step(OPS[3], fetch, run)]


class Git(Tool):
    name = "git"
    what = (
        "`git init` (untimed; the repository outside the tree, `--work-tree` the tree), then "
        "`git add -A && git commit -q --allow-empty` (an unchanged re-log commits nothing new); "
        "fetch: `git clone --no-hardlinks` into a new directory (objects copied, files checked out)"
    )

    def missing(self) -> str | None:
        return None if shutil.which("git") else "no `git` on PATH"

    def env(self, run: str) -> dict[str, str]:
        return GIT_IDENTITY

    def steps(self, tree: str, run: str, label: str) -> list[Step]:
        repo = os.path.join(run, "repo")
        git = f"git --git-dir={repo} --work-tree={tree}"
        commit = ["sh", "-c", f"{git} add -A && {git} commit -q --allow-empty -m v"]
        init = [["git", "init", "-q", "--bare", repo]]
        clone = ["git", "clone", "-q", "--no-hardlinks", repo, os.path.join(run, "out")]
        return [*logs(commit, run, init), Step(OPS[3], clone, run)]


class Dvc(Tool):
    name = "DVC"
    what = (
        "`dvc init --no-scm` (untimed) in a workspace holding a copy of the tree, then "
        "`dvc add data` (hashes every file, copies it into the local cache `.dvc/cache`: "
        "no reflinks on ext4); fetch: a new workspace with the `.dvc` file and the cache, "
        "`dvc checkout` (copies out of the cache)"
    )

    def __init__(self, venv: str) -> None:
        self.bin = os.path.join(venv, "bin", "dvc")

    def missing(self) -> str | None:
        return None if os.path.exists(self.bin) else f"no {self.bin} (make bench-compare)"

    def tree(self, data: str, work: str) -> str:
        """A copy of the tree inside DVC's workspace (DVC adds data inside its repository)."""
        copy = os.path.join(work, "dvc-workspace", "data")
        marker = copy + ".complete"
        if not os.path.exists(marker):
            shutil.rmtree(os.path.dirname(copy), ignore_errors=True)
            os.makedirs(os.path.dirname(copy))
            subprocess.run(["cp", "-r", data, copy], check=True)
            open(marker, "w").close()
        return copy

    def env(self, run: str) -> dict[str, str]:
        return {"DVC_NO_ANALYTICS": "1", "DVC_SITE_CACHE_DIR": os.path.join(run, "site")}

    def steps(self, tree: str, run: str, label: str) -> list[Step]:
        ws = os.path.dirname(tree)
        # A fresh repository and cache per run (the copy of the tree stays).
        shutil.rmtree(os.path.join(ws, ".dvc"), ignore_errors=True)
        for leftover in (".dvcignore", "data.dvc"):
            if os.path.exists(os.path.join(ws, leftover)):
                os.remove(os.path.join(ws, leftover))
        add = [self.bin, "add", "-q", "data"]
        fresh = os.path.join(run, "out")
        fetch_setup = [
            [self.bin, "init", "-q", "--no-scm"],
            [self.bin, "config", "cache.dir", os.path.join(ws, ".dvc", "cache")],
            ["cp", os.path.join(ws, "data.dvc"), fresh],
        ]
        checkout = [self.bin, "checkout", "-q"]
        return [
            *logs(add, ws, [[self.bin, "init", "-q", "--no-scm"]]),
            Step(OPS[3], checkout, fresh, fetch_setup),
        ]

    def footprint(self, tree: str, run: str) -> list[str]:
        return [run, os.path.join(os.path.dirname(tree), ".dvc")]


class Wandb(Tool):
    name = "W&B client (offline)"
    unavailable = {OPS[3]: "not available: W&B offline cannot download"}  # noqa: RUF012
    what = (
        "the same script with `import wandb`, `mode='offline'` (hashes every file with MD5 and "
        "stages it as for an upload; WANDB_DIR, WANDB_CACHE_DIR, WANDB_DATA_DIR, "
        "WANDB_CONFIG_DIR fresh in the run's directory); no network. Offline W&B cannot "
        "download: no fetch"
    )

    def __init__(self, venv: str) -> None:
        self.python = os.path.join(venv, "bin", "python")

    def missing(self) -> str | None:
        if not os.path.exists(self.python):
            return f"no {self.python} (make bench-compare)"
        probe = subprocess.run(
            [self.python, "-c", "import importlib.util as u; print(bool(u.find_spec('wandb')))"],
            capture_output=True,
            text=True,
        )
        return None if probe.stdout.strip() == "True" else "wandb not installed in its venv"

    def env(self, run: str) -> dict[str, str]:
        return {
            "WANDB_DIR": os.path.join(run, "wandb-dir"),
            "WANDB_CACHE_DIR": os.path.join(run, "wandb-cache"),
            "WANDB_DATA_DIR": os.path.join(run, "wandb-data"),
            "WANDB_CONFIG_DIR": os.path.join(run, "wandb-config"),
            "WANDB_SILENT": "true",
            "WANDB_DISABLE_GIT": "true",
        }

    def steps(self, tree: str, run: str, label: str) -> list[Step]:
        made = [["mkdir", "-p", *(v for k, v in self.env(run).items() if k.endswith("DIR"))]]
        log = [self.python, "-c", LOG_SCRIPT, "wandb", "offline", tree, label]
        return logs(log, run, made)


def all_tools(venv: str) -> list[Tool]:
    return [CairnCli(), CairnScript(), Git(), Dvc(venv), Wandb(venv)]
