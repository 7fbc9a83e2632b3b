"""``cairn server``: the REST API over PostgreSQL (or SQLite) and S3 (or a local directory)."""

from cairn.server._app import create_app
from cairn.server._backend import Backend, ServerConfig, migrate
from cairn.server._serve import serve

__all__ = ["Backend", "ServerConfig", "create_app", "migrate", "serve"]
