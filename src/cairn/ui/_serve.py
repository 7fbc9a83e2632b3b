"""``cairn ui``: the UI over the embedded store, for one user on this machine."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from cairn.service import LocalService
from cairn.ui._app import create_ui_app
from cairn.ui._backend import LocalUiBackend


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve_local(
    store_dir: str,
    host: str,
    port: int,
    *,
    allow_network_fs: bool = False,
    out: Callable[[str], None] = print,
) -> None:
    """Serve the UI over the store at ``store_dir`` until interrupted (on a network file system
    only if ``allow_network_fs``: the settings' ``CAIRN_ALLOW_NETWORK_FS``)."""
    import uvicorn

    service = LocalService.open(store_dir, allow_network_fs=allow_network_fs)
    # Only requests naming this server are answered: a web page elsewhere cannot point a host
    # name of its own at 127.0.0.1 and read the store through the browser (DNS rebinding).
    hosts = ["127.0.0.1", "localhost", "[::1]", host]
    app = create_ui_app(LocalUiBackend(service), secure_cookies=False, allowed_hosts=hosts)
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    out(f"cairn ui: serving the store at {service.location} on http://{shown}:{port}/")
    if not is_loopback(host):
        out(
            "cairn ui: warning: there is no sign-in; anyone who can reach this address can read"
            " and change the store (use cairn server to share a store)"
        )
    out("Press Ctrl-C to stop.")
    try:
        uvicorn.run(app, host=host.strip("[]"), port=port, log_level="warning")
    finally:
        service.close()
