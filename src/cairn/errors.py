"""Every error cairn raises on purpose.

Errors from libraries underneath (sqlite3, SQLAlchemy, OS calls in the stores) are translated at the
layer that owns them, so callers only ever need to catch these. Where a builtin exception has the
same meaning, the cairn error also subclasses it, so code written for W&B (which raises ``ValueError``,
``FileNotFoundError``, ...) keeps working::

    CairnError
    ├── UsageError                      a call that is not allowed in the current state
    │   └── RunFinishedError            artifact call on a run that has finished
    ├── ValidationError (ValueError)    bad name, type, alias, tag, entry path or argument
    │   ├── TypeConflictError           a collection exists with another type
    │   └── ManifestFormatError         a manifest page this version cannot read, or a bad one
    ├── ArtifactStatusError (AttributeError)
    │   ├── ArtifactNotLoggedError      the property needs a logged artifact
    │   └── ArtifactFinalizedError      the artifact is committed and cannot change
    ├── CommError                       the store or server could not do what was asked
    │   ├── NotFoundError (LookupError)
    │   │   ├── ArtifactNotFoundError   no collection/version/alias of that name
    │   │   ├── RunNotFoundError
    │   │   ├── BlobNotFoundError (FileNotFoundError)   content missing from the store
    │   │   └── PathNotFoundError (FileNotFoundError)   no file or directory at a cairn:// path
    │   ├── ConflictError               a concurrent change won; retrying may succeed
    │   ├── UnavailableError            the catalog cannot be reached for now (HTTP 503)
    │   ├── AuthenticationError         no or bad API key (HTTP 401)
    │   └── PermissionDeniedError       the key may not do this (HTTP 403)
    ├── DigestMismatchError (ValueError)   content does not match its recorded digest
    └── WaitTimeoutError (TimeoutError)
"""

from __future__ import annotations

__all__ = [
    "ArtifactFinalizedError",
    "ArtifactNotFoundError",
    "ArtifactNotLoggedError",
    "ArtifactStatusError",
    "AuthenticationError",
    "BlobNotFoundError",
    "CairnError",
    "CommError",
    "ConflictError",
    "DigestMismatchError",
    "ManifestFormatError",
    "NotFoundError",
    "PathNotFoundError",
    "PermissionDeniedError",
    "RunFinishedError",
    "RunNotFoundError",
    "TypeConflictError",
    "UnavailableError",
    "UsageError",
    "ValidationError",
    "WaitTimeoutError",
]


class CairnError(Exception):
    """Base class of every error cairn raises on purpose."""

    # What a server answers instead of the text, when the text names the server's own detail
    # (a file's path, a process id): the server logs the text. None: the text is answered.
    public: str | None = None


class UsageError(CairnError):
    """A call that is not allowed in the current state (W&B: ``wandb.errors.UsageError``)."""


class RunFinishedError(UsageError):
    """An artifact call on a run that has already finished."""


class ValidationError(CairnError, ValueError):
    """A name, type, alias, tag, entry path or argument that breaks the rules."""


class TypeConflictError(ValidationError):
    """An artifact name that already exists in the project with another type."""


class ManifestFormatError(ValidationError):
    """A manifest page whose format this version of cairn does not know, or a damaged one."""


class ArtifactStatusError(CairnError, AttributeError):
    """The artifact is not in the state this operation needs."""

    def __init__(self, message: str, name: str | None = None, obj: object | None = None) -> None:
        super().__init__(message)
        # AttributeError carries the attribute name; keep it so hasattr()/getattr() behave.
        self.name = name
        self.obj = obj


class ArtifactNotLoggedError(ArtifactStatusError):
    """The property or method needs an artifact that has been logged (W&B's name)."""


class ArtifactFinalizedError(ArtifactStatusError):
    """The artifact is committed; its files can no longer change (W&B's name)."""


class CommError(CairnError):
    """The store or the server could not do what was asked (W&B: ``wandb.errors.CommError``)."""


class NotFoundError(CommError, LookupError):
    """Something named does not exist."""


class ArtifactNotFoundError(NotFoundError):
    """No artifact collection, version or alias matches the name."""


class RunNotFoundError(NotFoundError):
    """No run matches the path."""


class BlobNotFoundError(NotFoundError, FileNotFoundError):
    """Content that a manifest refers to is missing from the store."""


class PathNotFoundError(NotFoundError, FileNotFoundError):
    """No file or directory at a ``cairn://`` path (or no such artifact version)."""


class ConflictError(CommError):
    """A concurrent change won the race; the operation may be retried."""


class UnavailableError(CommError):
    """The catalog cannot be reached for now (restarting, failing over); a server answers 503 and
    clients retry for a while."""


class AuthenticationError(CommError):
    """The server refused the API key, or none was given."""


class PermissionDeniedError(CommError):
    """The API key is valid but may not do this."""


class DigestMismatchError(CairnError, ValueError):
    """Content does not match the digest it was recorded with."""


class WaitTimeoutError(CairnError, TimeoutError):
    """``Artifact.wait(timeout=...)`` ran out of time."""
