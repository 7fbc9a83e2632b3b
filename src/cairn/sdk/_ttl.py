"""W&B's ``ArtifactTTL``: the sentinel for "inherit the default time to live"."""

from __future__ import annotations

import datetime as _dt
import enum

from cairn.errors import ValidationError


class ArtifactTTL(enum.Enum):
    """``artifact.ttl = ArtifactTTL.INHERIT``: use the default TTL. cairn has no team default,
    so an inherited TTL is none: the version is kept until deleted."""

    INHERIT = 0


TtlValue = _dt.timedelta | None | ArtifactTTL


def check_ttl(value: object) -> TtlValue:
    """A valid value for ``Artifact.ttl``: a positive ``timedelta``, None or ``INHERIT``."""
    if value is None or value is ArtifactTTL.INHERIT:
        return value
    if not isinstance(value, _dt.timedelta):
        raise ValidationError(
            f"ttl must be a datetime.timedelta, None or ArtifactTTL.INHERIT, got {value!r}"
        )
    if value.total_seconds() <= 0:
        raise ValidationError("Artifact TTL Duration has to be positive.")
    return value


def ttl_seconds(value: TtlValue) -> float | None:
    return value.total_seconds() if isinstance(value, _dt.timedelta) else None
