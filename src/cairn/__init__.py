"""cairn: versioned ML artifacts, self-hosted, with the Python API of W&B Artifacts.

``import cairn as wandb`` and W&B's artifact code runs unchanged::

    with wandb.init(project="demo") as run:
        artifact = wandb.Artifact("dataset", type="dataset")
        artifact.add_dir("data/")
        run.log_artifact(artifact)
"""

from __future__ import annotations

from cairn import errors
from cairn._lazy import TYPE_CHECKING, lazy_exports
from cairn._version import __version__

__all__ = [
    "Api",
    "Artifact",
    "ArtifactManifestEntry",
    "ArtifactTTL",
    "Config",
    "JoinedTable",
    "PartitionedTable",
    "Run",
    "Settings",
    "Table",
    "__version__",
    "data_types",
    "define_metric",
    "errors",
    "finish",
    "init",
    "log",
    "log_artifact",
    "log_model",
    "login",
    "run",
    "summary",
    "use_artifact",
    "use_model",
]

# The SDK loads on first use, so `import cairn` (and `cairn --help`) stays cheap; see cairn._lazy.
if TYPE_CHECKING:
    from typing import Any

    from cairn import data_types
    from cairn.sdk import (
        Api,
        Artifact,
        ArtifactManifestEntry,
        ArtifactTTL,
        Config,
        JoinedTable,
        PartitionedTable,
        Run,
        Settings,
        Table,
        define_metric,
        finish,
        init,
        log,
        log_artifact,
        log_model,
        login,
        use_artifact,
        use_model,
    )

_sdk_getattr, __dir__ = lazy_exports(
    __name__,
    {
        "cairn.sdk": [
            "Api",
            "Artifact",
            "ArtifactManifestEntry",
            "ArtifactTTL",
            "Config",
            "Run",
            "Settings",
            "Table",
            "finish",
            "define_metric",
            "init",
            "log",
            "log_artifact",
            "log_model",
            "login",
            "use_artifact",
            "use_model",
        ],
        "cairn.sdk._tables": ["JoinedTable", "PartitionedTable"],
    },
)


def __getattr__(name: str) -> Any:
    # ``cairn.run`` is the active run (or None), read at the moment it is asked for: never cached.
    if name == "run":
        from cairn.sdk import current_run

        return current_run()
    if name == "summary":  # W&B's wandb.summary: the active run's summary
        from cairn.sdk import active_summary

        return active_summary()
    if name == "data_types":  # a submodule: importing it binds it on the package
        import importlib

        return importlib.import_module("cairn.data_types")
    return _sdk_getattr(name)
