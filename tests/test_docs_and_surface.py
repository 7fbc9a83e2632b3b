"""Docs are tested: the CLI reference is current, the public surface is documented and sorted."""

from __future__ import annotations

import pathlib
import re

import cairn
import cairn.errors
from cairn.cli.docs import render

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_public_all_is_sorted_and_complete() -> None:
    assert cairn.__all__ == sorted(cairn.__all__)
    for name in cairn.__all__:
        assert name == "run" or hasattr(cairn, name), name
    assert cairn.errors.__all__ == sorted(cairn.errors.__all__)


def test_error_tree_subclasses_builtins() -> None:
    e = cairn.errors
    assert issubclass(e.ValidationError, ValueError)
    assert issubclass(e.ArtifactNotFoundError, LookupError)
    assert issubclass(e.BlobNotFoundError, FileNotFoundError)
    assert issubclass(e.ArtifactNotLoggedError, AttributeError)
    assert issubclass(e.ArtifactFinalizedError, AttributeError)
    assert all(issubclass(getattr(e, n), e.CairnError) for n in e.__all__)
    for name in e.__all__:
        assert name in (e.__doc__ or ""), f"{name} missing from the tree in cairn/errors.py"


def test_cli_reference_is_current() -> None:
    assert (ROOT / "docs" / "cli.md").read_text() == render(), "run `make docs`"


def test_every_public_name_and_method_is_documented() -> None:
    api_doc = (ROOT / "docs" / "api.md").read_text()
    for name in cairn.__all__:
        if name not in ("__version__", "errors"):
            assert re.search(rf"\b{re.escape(name)}\b", api_doc), f"docs/api.md lacks {name}"
    for cls in (cairn.Artifact, cairn.Run, cairn.Api, cairn.Table):
        for attr in dir(cls):
            if not attr.startswith("_"):
                assert f"`{attr}" in api_doc or f" {attr}" in api_doc, (
                    f"docs/api.md lacks {cls.__name__}.{attr}"
                )


def test_readme_shows_the_two_commands_and_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    from cairn.sdk._settings import Settings

    src = (ROOT / "src" / "cairn" / "sdk" / "_settings.py").read_text()
    # The server's settings (one read of the environment, server/_config.py) and the CLI's.
    server = (ROOT / "src" / "cairn" / "server" / "_config.py").read_text()
    cli = (ROOT / "src" / "cairn" / "cli" / "_server.py").read_text()
    for text in (src, server, cli):
        for var in set(re.findall(r'"((?:CAIRN|WANDB)_[A-Z_]+)"', text)):
            assert f"`{var}`" in readme, f"README's configuration table lacks {var}"
    assert "WANDB_MODE" in src and "AWS_S3_ENDPOINT_URL" in readme
    for never in ("WANDB_API_KEY", "WANDB_BASE_URL", ".netrc"):
        assert never in readme  # named as never read ...
        for module in (ROOT / "src" / "cairn").rglob("*.py"):
            text = module.read_text()
            # ... and read by no code (docstrings may say so).
            assert f'"{never}"' not in text and f"'{never}'" not in text, module
    assert Settings.from_env()
