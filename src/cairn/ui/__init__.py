"""The web UI: server-rendered pages over a Service, for ``cairn ui`` and ``cairn server``.

``create_ui_app(backend)`` returns an ASGI app; ``backend`` (a ``UiBackend``) says who a request
acts for and gives the Service limited to what they may read. See docs/design.md, "Web UI".
"""

from cairn._extras import require

require("the web UI", "ui", "fastapi", "uvicorn", "jinja2")

from cairn.ui._app import CONTENT_SECURITY_POLICY, create_ui_app  # noqa: E402
from cairn.ui._backend import LocalUiBackend, Principal, UiBackend  # noqa: E402
from cairn.ui._serve import serve_local  # noqa: E402

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "LocalUiBackend",
    "Principal",
    "UiBackend",
    "create_ui_app",
    "serve_local",
]
