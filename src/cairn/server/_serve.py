"""Running the app with uvicorn (one process, or several that share the port)."""

from __future__ import annotations

import os

from fastapi import FastAPI

from cairn.server._app import create_app
from cairn.server._backend import Backend
from cairn.server._config import ServerConfig


def app_from_env() -> FastAPI:
    """The app for a uvicorn worker process: its entry point, which reads the environment
    (``CAIRN_SERVER_*``, set by ``serve`` for the command-line options) once."""
    return create_app(Backend.open(ServerConfig.from_env(os.environ)))


def serve(
    config: ServerConfig, host: str, port: int, *, workers: int = 1, log_level: str = "warning"
) -> None:
    """Serve until interrupted. The catalog's schema must be current (``cairn server migrate``).

    With ``workers`` > 1, uvicorn runs that many processes on the port (each with its own
    connections), which is how one machine uses more than one core for the API."""
    import uvicorn

    common = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "access_log": False,
        "timeout_keep_alive": 30,
    }
    if workers > 1:
        Backend.open(config).close()  # fail here, once, if the catalog or store is not usable
        os.environ["CAIRN_SERVER_DB"] = config.db
        os.environ["CAIRN_SERVER_STORE"] = config.store
        if config.admin_key:
            os.environ["CAIRN_ADMIN_KEY"] = config.admin_key
        uvicorn.run("cairn.server._serve:app_from_env", factory=True, workers=workers, **common)  # type: ignore[arg-type]
        return
    backend = Backend.open(config)
    try:
        uvicorn.run(create_app(backend), **common)  # type: ignore[arg-type]
    finally:
        backend.close()
