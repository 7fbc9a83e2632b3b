"""``cairn server``: the REST API over PostgreSQL (or SQLite) and S3 (or a local directory)."""

from cairn._extras import require

require("cairn server", "server", "fastapi", "uvicorn", "jinja2")

from cairn.server._app import create_app  # noqa: E402
from cairn.server._backend import Backend, migrate  # noqa: E402
from cairn.server._config import ServerConfig  # noqa: E402
from cairn.server._serve import serve  # noqa: E402

__all__ = ["Backend", "ServerConfig", "create_app", "migrate", "serve"]
