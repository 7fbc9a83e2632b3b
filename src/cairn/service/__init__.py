"""The seam between the SDK and a store: the Service protocol and its implementations."""

from cairn.service._local import LocalService, local_user
from cairn.service._protocol import (
    CommitRequest,
    CommitResult,
    FinishRequest,
    Service,
    StageRequest,
)

__all__ = [
    "CommitRequest",
    "CommitResult",
    "FinishRequest",
    "LocalService",
    "Service",
    "StageRequest",
    "local_user",
]
