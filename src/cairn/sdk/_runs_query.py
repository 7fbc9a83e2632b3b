"""W&B's run filters for ``Api.runs``: a MongoDB-style query over a run's fields.

``{"jobType": "train"}``, ``{"group": "g", "state": "finished"}``,
``{"createdAt": {"$gte": "2024-01-01T00:00:00"}}``, ``{"config.lr": {"$lt": 0.1}}``,
``{"$or": [{"displayName": "a"}, {"displayName": {"$regex": "^b"}}]}``,
``{"summary_metrics.acc": {"$gt": 0.9}}``. Field names are W&B's (``jobType``, ``displayName``,
``createdAt``, ``name`` for the run id, ``summary_metrics.<key>``) or cairn's (``job_type``,
``created_at``, ``id``); operators ``$eq $ne $gt $gte $lt $lte $in $nin $regex $exists``, and
``$and $or $nor`` over lists of queries.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from cairn.core import RunRecord, iso_time_naive
from cairn.errors import ValidationError

_MISSING = object()


def _created(run: RunRecord) -> str:
    return iso_time_naive(run.created_at)


_FIELDS: dict[str, Callable[[RunRecord], Any]] = {
    "id": lambda r: r.id,
    "name": lambda r: r.id,  # W&B: "name" is the run id, "displayName" the name
    "displayName": lambda r: r.name,
    "display_name": lambda r: r.name,
    "group": lambda r: r.group,
    "jobType": lambda r: r.job_type,
    "job_type": lambda r: r.job_type,
    "state": lambda r: r.state,
    "createdAt": _created,
    "created_at": _created,
    "entity": lambda r: r.entity,
    "project": lambda r: r.project,
}


SUMMARY_PREFIX = "summary_metrics."
# Runs' summaries by run id, for ``summary_metrics.<key>``: read by ``Api.runs`` only when a
# filter or the order names one.
Summaries = Mapping[str, Mapping[str, Any]]


def names_summary(filters: Any, order: str) -> bool:
    """Whether a query or an order reads ``summary_metrics.<key>``."""
    return SUMMARY_PREFIX in repr(filters) or order.lstrip("+-").startswith(SUMMARY_PREFIX)


def _value(run: RunRecord, field: str, summaries: Summaries | None = None) -> Any:
    if field.startswith(SUMMARY_PREFIX):
        value: Any = (summaries or {}).get(run.id, {})
        for part in field[len(SUMMARY_PREFIX) :].split("."):
            if not isinstance(value, Mapping) or part not in value:
                return _MISSING
            value = value[part]
        return value
    if field.startswith("config."):
        value = run.config
        for part in field.split(".")[1:]:
            if isinstance(value, Mapping) and "value" in value and part not in value:
                value = value["value"]  # W&B's {"value": ...} wrapping of config entries
            if not isinstance(value, Mapping) or part not in value:
                return _MISSING
            value = value[part]
        return value
    getter = _FIELDS.get(field)
    if getter is None:
        raise ValidationError(
            f"cannot filter runs on {field!r}: use one of {', '.join(sorted(_FIELDS))},"
            " config.<key> or summary_metrics.<key>"
        )
    return getter(run)


def _compare(op: str, have: Any, want: Any) -> bool:
    if op == "$exists":
        return (have is not _MISSING and have is not None) == bool(want)
    if have is _MISSING:
        return op in ("$ne", "$nin")
    if op == "$eq":
        return bool(have == want)
    if op == "$ne":
        return bool(have != want)
    if op in ("$in", "$nin"):
        if not isinstance(want, (list, tuple, set)):
            raise ValidationError(f"{op} needs a list, got {want!r}")
        return (have in want) == (op == "$in")
    if op == "$regex":
        return isinstance(have, str) and re.search(str(want), have) is not None
    if op in ("$gt", "$gte", "$lt", "$lte"):
        if have is None:
            return False
        try:
            if op == "$gt":
                return bool(have > want)
            if op == "$gte":
                return bool(have >= want)
            if op == "$lt":
                return bool(have < want)
            return bool(have <= want)
        except TypeError:
            return False
    raise ValidationError(f"unknown operator {op!r} in a run filter")


def matches(run: RunRecord, query: Mapping[str, Any], summaries: Summaries | None = None) -> bool:
    """Whether ``run`` satisfies the W&B-style ``query``."""
    for key, cond in query.items():
        if key in ("$and", "$or", "$nor"):
            if not isinstance(cond, (list, tuple)):
                raise ValidationError(f"{key} needs a list of filters")
            results = [matches(run, sub, summaries) for sub in cond]
            ok = all(results) if key == "$and" else any(results)
            if (key == "$nor") == ok:
                return False
            continue
        have = _value(run, key, summaries)
        if isinstance(cond, Mapping) and cond and all(str(k).startswith("$") for k in cond):
            if not all(_compare(op, have, want) for op, want in cond.items()):
                return False
        elif not _compare("$eq", have, cond):
            return False
    return True


def ordered(
    runs: list[RunRecord], order: str, summaries: Summaries | None = None
) -> list[RunRecord]:
    """``runs`` in W&B's ``order``; runs without the field come last either way."""
    key, reverse = sort_key(order, summaries)
    present = [r for r in runs if not key(r)[0]]
    present.sort(key=key, reverse=reverse)
    return present + [r for r in runs if key(r)[0]]


def sort_key(
    order: str, summaries: Summaries | None = None
) -> tuple[Callable[[RunRecord], Any], bool]:
    """W&B's ``order``: ``+created_at`` / ``-created_at`` (also any field above); ``-`` is
    descending. Returns (key, reverse); a key is ``(missing, ...)``."""
    if not isinstance(order, str) or not order:
        raise ValidationError(f"invalid order {order!r}: e.g. '+created_at' or '-created_at'")
    reverse = order.startswith("-")
    field = order.lstrip("+-")

    def key(run: RunRecord) -> Any:
        if field in ("created_at", "createdAt"):
            return (False, 0, run.created_at, "")
        value = _value(run, field, summaries)
        missing = value is _MISSING or value is None
        if not missing and isinstance(value, (int, float)) and not isinstance(value, bool):
            return (False, 0, value, "")  # numbers by value (a summary metric, a config value)
        return (missing, 1, 0, "" if missing else str(value))

    _value(RunRecord(id="x", entity="e", project="p", name="n"), field)  # unknown fields refused
    return key, reverse
