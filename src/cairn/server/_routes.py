"""The routes of ``/api/v1``: each validates its input and makes one call on the request key's
``ScopedService`` (``_scoped.py``; every permission rule once, in ``_key_rules.py``).

One module per concept: ``_routes_runs`` (identity, runs), ``_routes_blobs`` (presence, batches,
uploads), ``_routes_versions`` (commits and queries), ``_routes_search`` (search),
``_routes_sync`` (copying between stores), ``_routes_keys`` (API keys), ``_routes_history`` (a
run's history and summary); ``_common`` holds what they share.
"""

from __future__ import annotations

from cairn.server import (
    _routes_blobs,
    _routes_history,
    _routes_keys,
    _routes_runs,
    _routes_search,
    _routes_sync,
    _routes_versions,
    _routes_wandb,
)

ROUTERS = (
    _routes_runs.router,
    _routes_blobs.router,
    _routes_versions.router,
    _routes_search.router,
    _routes_sync.router,
    _routes_keys.router,
    _routes_wandb.router,  # W&B parity: collections, runs of a project (issue 11)
    _routes_history.router,  # W&B parity: a run's history and summary (issue 11)
)
