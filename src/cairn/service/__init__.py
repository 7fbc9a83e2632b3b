"""The seam between the SDK and a store: the Service protocol and its implementations."""

from cairn.service._local import LocalService, local_user
from cairn.service._maintenance import (
    DEFAULT_GRACE_SECONDS,
    FileMaintenanceLock,
    GcReport,
    MaintenanceLock,
    ProgressFactory,
    ThreadMaintenanceLock,
    VerifyProblem,
    VerifyReport,
)
from cairn.service._protocol import (
    CommitRequest,
    CommitResult,
    FinishRequest,
    Service,
    StageRequest,
)

__all__ = [
    "DEFAULT_GRACE_SECONDS",
    "CommitRequest",
    "CommitResult",
    "FileMaintenanceLock",
    "FinishRequest",
    "GcReport",
    "LocalService",
    "MaintenanceLock",
    "ProgressFactory",
    "Service",
    "StageRequest",
    "ThreadMaintenanceLock",
    "VerifyProblem",
    "VerifyReport",
    "local_user",
]
