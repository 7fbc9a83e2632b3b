"""Print pip constraints pinning each runtime dependency at its lower bound (``make test-min``).

Every range in ``[project] dependencies`` and in the runtime extras (not ``dev``: the test tools
take their newest versions) must name a lower bound, and that lower bound must work: `make
test-min` installs these pins into a separate environment and runs the tests there.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_EXTRAS = ("ui", "s3", "server", "data")
REQUIREMENT = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*(.*)$")


def lower_bounds(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in RUNTIME_EXTRAS:
        requirements += project["optional-dependencies"][extra]
    pins: dict[str, str] = {}
    for requirement in requirements:
        found = REQUIREMENT.match(requirement)
        assert found, f"cannot read the requirement {requirement!r}"
        name, spec = found.groups()
        if name == project["name"]:
            continue  # an extra that includes other extras
        bound = re.search(r">=\s*([^,\s;]+)", spec)
        assert bound, f"{requirement!r} has no lower bound (>=)"
        if pins.setdefault(name.lower(), bound.group(1)) != bound.group(1):
            sys.exit(f"{name} has two lower bounds in pyproject.toml")
    return pins


def release(version: str) -> tuple[int, ...]:
    """``1.13`` and ``1.13.0`` are the same release."""
    parts = [int(p) for p in re.findall(r"\d+", version.split("+")[0])]
    while parts and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def check_installed() -> None:
    """Fail unless this environment has exactly the lower bounds installed."""
    from importlib.metadata import PackageNotFoundError, version

    wrong = []
    for name, bound in sorted(lower_bounds().items()):
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = "nothing"
        if installed == "nothing" or release(installed) != release(bound):
            wrong.append(f"{name}: {installed} installed, lower bound {bound}")
        else:
            print(f"{name}=={installed}")
    if wrong:
        sys.exit("not at the lower bounds:\n  " + "\n  ".join(wrong))


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        check_installed()
    else:
        for name, bound in sorted(lower_bounds().items()):
            print(f"{name}=={bound}")
