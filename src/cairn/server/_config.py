"""A server's configuration (``ServerConfig``), built from one read of the environment.

The entry point reads the environment once and hands the mapping here (``cairn server``,
``cairn gc --db/--store``, each uvicorn worker process: ``_serve.app_from_env``); nothing below
reads the process's environment again. Every ``CAIRN_SERVER_*`` variable is listed in the README's
configuration table (tests/test_docs_and_surface.py). Yes/no values follow the one rule,
``cairn.core.is_true``.

Why not a section of ``cairn.Settings``: that is the SDK's class (W&B's settings of a client),
and the server never imports the SDK (an import-linter contract); a server's settings are an
operator's, read by the process that serves. The same environment read feeds both where one
process needs both (the CLI reads its ``Settings`` from the same variables).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cairn.core import is_true
from cairn.errors import UsageError
from cairn.server._transfers import PART_SIZE, UPLOAD_MAX_AGE
from cairn.service import DEFAULT_GRACE_SECONDS

MAX_JSON_BYTES = 256 << 20  # a commit of a million entries is about 130 MB of JSON
MAX_BATCH_BYTES = 64 << 20  # one request of small blobs, or one part
GC_INTERVAL = 3600.0  # the collector of expired versions looks once an hour
SWEEP_INTERVAL = 3600.0  # how often each server process sweeps killed writers' leftovers


@dataclass(frozen=True, slots=True)
class ServerConfig:
    db: str
    store: str
    admin_key: str | None = None
    max_json_bytes: int = MAX_JSON_BYTES
    max_batch_bytes: int = MAX_BATCH_BYTES
    part_size: int = PART_SIZE
    upload_max_age: float = UPLOAD_MAX_AGE
    # The collector of expired (TTL) versions (``_collector.py``): seconds between passes (0:
    # off) and the grace period of the garbage collection it runs.
    gc_interval: float = GC_INTERVAL
    gc_grace: float = DEFAULT_GRACE_SECONDS
    sweep_interval: float = SWEEP_INTERVAL
    # The web UI: the secret that signs its CSRF tokens (None: derived from the configuration,
    # see ``_ui.ui_secret``) and whether its cookies may travel over plain HTTP.
    secret: str | None = None
    insecure_cookies: bool = False
    # An s3:// store's object store: its endpoint (None: AWS) and region (None: the store's
    # default), from AWS's variables; the credentials are boto3's own.
    s3_endpoint: str | None = None
    s3_region: str | None = None

    @classmethod
    def from_env(
        cls, env: Mapping[str, str], *, db: str | None = None, store: str | None = None
    ) -> ServerConfig:
        """The configuration ``env`` (the environment, read once by the entry point) gives;
        ``db`` and ``store`` (command-line options) win over theirs."""
        db = db or env.get("CAIRN_SERVER_DB")
        store = store or env.get("CAIRN_SERVER_STORE")
        if not db or not store:
            raise UsageError(
                "cairn server needs --db (or CAIRN_SERVER_DB) and --store (or CAIRN_SERVER_STORE)"
            )
        part = env.get("CAIRN_SERVER_PART_SIZE")
        part_size = int(part) if part and part.isdigit() else PART_SIZE
        if not 5 << 20 <= part_size <= MAX_BATCH_BYTES:
            raise UsageError("CAIRN_SERVER_PART_SIZE must be between 5 MiB and 64 MiB (in bytes)")
        return cls(
            db=db,
            store=store,
            admin_key=env.get("CAIRN_ADMIN_KEY") or None,
            part_size=part_size,
            upload_max_age=_seconds(env, "CAIRN_SERVER_UPLOAD_MAX_AGE", UPLOAD_MAX_AGE),
            gc_interval=_seconds(env, "CAIRN_SERVER_GC_INTERVAL", GC_INTERVAL),
            gc_grace=_seconds(env, "CAIRN_SERVER_GC_GRACE", DEFAULT_GRACE_SECONDS),
            sweep_interval=_seconds(env, "CAIRN_SERVER_SWEEP_INTERVAL", SWEEP_INTERVAL),
            secret=env.get("CAIRN_SERVER_SECRET") or None,
            insecure_cookies=is_true(env.get("CAIRN_SERVER_INSECURE_COOKIES")),
            s3_endpoint=env.get("AWS_ENDPOINT_URL_S3")
            or env.get("AWS_ENDPOINT_URL")
            or env.get("AWS_S3_ENDPOINT_URL")  # W&B's name for it
            or None,
            s3_region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
        )


def _seconds(env: Mapping[str, str], var: str, default: float) -> float:
    text = env.get(var)
    try:
        value = float(text) if text else default
    except ValueError:
        value = -1.0
    if not 0 <= value < 1e9:
        raise UsageError(f"{var} must be a number of seconds (>= 0)")
    return value
