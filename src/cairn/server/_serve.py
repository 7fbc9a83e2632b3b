"""Running the app with uvicorn."""

from __future__ import annotations

from cairn.server._app import create_app
from cairn.server._backend import Backend, ServerConfig


def serve(config: ServerConfig, host: str, port: int, *, log_level: str = "warning") -> None:
    """Serve until interrupted. The catalog's schema must be current (``cairn server migrate``)."""
    import uvicorn

    backend = Backend.open(config)
    try:
        uvicorn.run(
            create_app(backend),
            host=host,
            port=port,
            log_level=log_level,
            access_log=False,
            timeout_keep_alive=30,
        )
    finally:
        backend.close()
