"""A run's history and summary (W&B's ``run.log``, ``run.summary``, ``Run.history()``).

Values are encoded as W&B's client encodes history: numbers, bools, strings and None as they
are; Python floats keep NaN and the infinities (JSON's ``NaN``/``Infinity`` tokens, as in W&B's
history files); numpy scalars become Python numbers (a numpy float that is not a ``float``
subclass and is NaN becomes None, as in W&B); a numpy array of one element becomes that element,
of up to 32 elements a list, of more a histogram of 32 bins (``{"_type": "histogram", "values",
"bins"}``); tuples and sets become lists, bytes text, dates ISO strings, nested dicts stay nested.
A set summary value that is a large array is summarised (W&B's ``numpy.ndarray`` statistics).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import threading
import time
from collections.abc import Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from cairn.errors import ValidationError

if TYPE_CHECKING:
    from cairn.service import Service

_ARRAY_LIST_LIMIT = 32  # W&B: arrays of up to 32 elements are logged as lists
_HISTOGRAM_BINS = 32
_FLUSH_ROWS = 1000
_FLUSH_SECONDS = 1.0
_MAX_DEPTH = 32


def _typename(value: Any) -> str:
    return f"{type(value).__module__}.{type(value).__qualname__}"


def _tensor_to_numpy(value: Any) -> Any:
    """A PyTorch/TensorFlow/JAX tensor as numpy (a 0-d tensor as its Python number)."""
    name = _typename(value)
    if name.startswith("torch.") and hasattr(value, "detach"):
        value = value.detach().cpu()
        return value.item() if value.dim() == 0 else value.numpy()
    if hasattr(value, "numpy"):
        return value.numpy()
    return value.__array__()


def _is_tensor(value: Any) -> bool:
    name = _typename(value)
    return name.startswith(("torch.", "tensorflow.", "jax.", "jaxlib.")) and (
        hasattr(value, "numpy") or hasattr(value, "__array__")
    )


def encode(value: Any, *, summary: bool = False, depth: int = 0) -> Any:
    """``value`` as W&B encodes it into a history row (``summary``: into the summary)."""
    if depth > _MAX_DEPTH:
        raise ValidationError(f"logged values may be nested at most {_MAX_DEPTH} levels deep")
    if value is None or isinstance(value, (str, bool, int, float)):
        return value  # numpy.float64 is a float: kept, NaN included, as W&B's encoder keeps it
    if isinstance(value, Mapping):
        return {str(k): encode(v, summary=summary, depth=depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [encode(v, summary=summary, depth=depth + 1) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8")
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    if _is_tensor(value):
        return encode(_tensor_to_numpy(value), summary=summary, depth=depth + 1)
    module = type(value).__module__
    if module == "numpy":
        return _numpy(value, summary, depth)
    if callable(value):
        name = getattr(value, "__qualname__", None)
        return f"{value.__module__}.{name}" if name and hasattr(value, "__module__") else str(value)
    raise TypeError(
        f"cannot log a {type(value).__name__}: log numbers, strings, bools, None, lists, dicts,"
        " numpy values or cairn.Table"
    )


def _numpy(value: Any, summary: bool, depth: int) -> Any:
    import numpy as np

    if isinstance(value, np.ndarray):
        if value.size == 1:  # its one element, as a scalar of its dtype would be
            return encode(value.flatten()[0], summary=summary, depth=depth + 1)
        if value.size <= _ARRAY_LIST_LIMIT:
            return encode(value.tolist(), summary=summary, depth=depth + 1)
        if summary:
            return {
                "_type": "numpy.ndarray",
                "var": np.var(value).item(),
                "mean": np.mean(value).item(),
                "min": np.amin(value).item(),
                "max": np.amax(value).item(),
                "10%": float(np.percentile(value, 10)),
                "25%": float(np.percentile(value, 25)),
                "75%": float(np.percentile(value, 75)),
                "90%": float(np.percentile(value, 90)),
                "size": int(value.size),
            }
        try:
            counts, bins = np.histogram(value, bins=_HISTOGRAM_BINS)
        except ValueError as exc:  # non-finite values have no histogram range
            raise ValueError(f"cannot log an array of {value.size} values: {exc}") from None
        return {"_type": "histogram", "values": counts.tolist(), "bins": bins.tolist()}
    if isinstance(value, np.generic):
        item = value.item()
        if isinstance(item, float) and math.isnan(item):
            return None  # W&B's conversion of numpy scalars turns NaN into None
        if isinstance(value, np.floating) and not isinstance(item, float):
            item = float(value)  # float128 and the like
        return encode(item, summary=summary, depth=depth + 1)
    raise TypeError(f"cannot log a {type(value).__name__}")


def dumps(value: Any) -> str:
    """JSON text of an encoded value, NaN and infinities as JSON's tokens (as W&B writes them)."""
    return json.dumps(value, allow_nan=True, separators=(",", ":"))


def loads(text: str) -> Any:
    return json.loads(text)


class Summary(MutableMapping[str, Any]):
    """A run's summary (W&B's ``run.summary``): the last logged value of each key, and whatever
    is set with ``summary[key] = value`` or ``summary.update({...})``. Keys also read as
    attributes (``summary.loss``)."""

    def __init__(self, data: Mapping[str, Any] | None = None, on_change: Any = None) -> None:
        object.__setattr__(self, "_data", dict(data or {}))
        object.__setattr__(self, "_on_change", on_change)

    def _set_encoded(self, values: Mapping[str, Any]) -> None:
        self._data.update(values)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        del self._data[key]
        if self._on_change is not None:
            self._on_change()

    def update(self, *args: Any, **kwargs: Any) -> None:
        given = dict(*args, **kwargs)
        for key in given:
            if not isinstance(key, str):
                raise TypeError(f"summary keys must be strings, not {key!r}")
        self._data.update(loads(dumps(encode(given, summary=True))))
        if self._on_change is not None:
            self._on_change()

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        try:
            return self._data[key]
        except KeyError:
            raise AttributeError(f"summary has no key {key!r}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def _as_dict(self) -> dict[str, Any]:
        return dict(self._data)

    def __repr__(self) -> str:
        return repr(self._data)


_SUMMARY_OPTIONS = ("min", "max", "mean", "best", "last", "copy", "none", "first")


class Metric:
    """A metric defined with ``run.define_metric`` (W&B's ``wandb.Metric``): how its values are
    summarised (``summary``: any of ``min max mean best last first copy none``, comma-separated;
    ``best`` follows ``goal``, ``minimize`` unless ``maximize``) and which metric is its x axis
    (``step_metric``; with ``step_sync`` a row holding this metric also gets that metric's last
    logged value). A name ending in ``*`` applies to every key starting with the rest."""

    def __init__(
        self,
        name: str,
        step_metric: str | None = None,
        step_sync: bool | None = None,
        hidden: bool | None = None,
        summary: str | None = None,
        goal: str | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValidationError("define_metric() needs a metric name")
        if "*" in name[:-1]:
            raise ValidationError(f"invalid metric name {name!r}: '*' may only end it (a glob)")
        if step_metric is not None and (not isinstance(step_metric, str) or "*" in step_metric):
            raise ValidationError(f"invalid step_metric {step_metric!r}: name one metric")
        options = set()
        for part in (summary or "").split(","):
            part = part.strip().lower()
            if part and part not in _SUMMARY_OPTIONS:
                raise ValidationError(
                    f"invalid summary {summary!r}: use {', '.join(_SUMMARY_OPTIONS)}"
                    " (comma-separated)"
                )
            if part:
                options.add(part)
        if goal is not None and goal not in ("minimize", "maximize"):
            raise ValidationError(f"invalid goal {goal!r}: use 'minimize' or 'maximize'")
        self.name = name
        self.step_metric = step_metric
        self.step_sync = bool(step_metric) if step_sync is None else bool(step_sync)
        self.hidden = bool(hidden)
        self.summary = options
        self.goal = goal

    def _merge(self, other: Metric) -> None:
        self.summary |= other.summary
        self.step_metric = other.step_metric or self.step_metric
        self.step_sync = other.step_sync if other.step_metric else self.step_sync
        self.goal = other.goal or self.goal
        self.hidden = other.hidden or self.hidden

    def __repr__(self) -> str:
        return f"<Metric {self.name} summary={sorted(self.summary)} goal={self.goal}>"


class HistoryWriter:
    """The logging side of a run: W&B's step rules, rows buffered and written in batches (at
    least every second or 1,000 rows, and at ``flush``), the summary with them."""

    def __init__(
        self,
        service: Service,
        entity: str,
        project: str,
        run_id: str,
        started: float,
        summary: Mapping[str, Any] | None = None,
    ) -> None:
        self._service = service
        self._where = (entity, project, run_id)
        self._started = started
        self._lock = threading.RLock()
        self._rows: list[str] = []
        self._pending: dict[str, Any] = {}
        self._summary_dirty = False
        self._last_flush = time.monotonic()
        stored = dict(summary or {})
        last = stored.get("_step")
        self.step = last + 1 if isinstance(last, int) and not isinstance(last, bool) else 0
        self.summary = Summary(stored, self._summary_changed)
        self._metrics: dict[str, Metric] = {}  # define_metric, by name (globs end in "*")
        self._track: dict[tuple[str, ...], float] = {}  # min/max/mean/first state, per key path
        self._last: dict[str, Any] = {}  # each top-level key's last logged value (step_sync)

    def define_metric(self, metric: Metric, overwrite: bool | None) -> Metric:
        with self._lock:
            known = self._metrics.get(metric.name)
            if known is None or overwrite:
                self._metrics[metric.name] = metric
                return metric
            known._merge(metric)
            return known

    def _metric(self, key: str) -> Metric | None:
        found = self._metrics.get(key)
        if found is not None or key.startswith("_"):
            return found
        for name, metric in self._metrics.items():
            if name.endswith("*") and key.startswith(name[:-1]):
                return metric
        return None

    def _summary_changed(self) -> None:
        with self._lock:
            self._summary_dirty = True
        self._maybe_flush()

    def log(self, values: Mapping[str, Any], step: int | None, commit: bool | None) -> bool:
        """Add ``values`` (already encoded) to the row of the current step; False if the step
        is behind the current one (W&B drops such data with a warning)."""
        with self._lock:
            if step is not None:
                if step < self.step:
                    return False
                if step > self.step:
                    self._commit()
                    self.step = step
            if commit is None:
                commit = step is None
            self._pending.update(values)
            if commit:
                self._commit()
        self._maybe_flush()
        return True

    def _commit(self) -> None:
        """Write the pending row as the current step's, and update the summary from it."""
        if not self._pending:
            return
        row = dict(self._pending)
        if self._metrics:  # step_sync: a metric's row also gets its x axis's last value
            for key in list(row):
                metric = self._metric(key)
                axis = metric.step_metric if metric and metric.step_sync else None
                if axis and axis not in row and axis in self._last:
                    row[axis] = self._last[axis]
        now = time.time()
        row |= {"_step": self.step, "_timestamp": now, "_runtime": max(0.0, now - self._started)}
        self._rows.append(dumps(row))
        self._last.update(row)
        self._summarise(row)
        self._summary_dirty = True
        self._pending = {}
        self.step += 1

    def _summarise(self, row: Mapping[str, Any]) -> None:
        """The summary after a row, by W&B's rules: each key's last value, unless a defined
        metric asks for ``min``/``max``/``mean``/``best``/``first``/``last`` (then the summary
        holds ``{"min": ...}`` and so on) or ``none``."""
        if not self._metrics:
            self.summary._set_encoded(row)
            return
        for key, value in row.items():
            self._summarise_leaf([key], value, self._metric(key))

    def _summarise_leaf(self, path: list[str], value: Any, metric: Metric | None) -> None:
        dotted = ".".join(p.replace(".", "\\.") for p in path)
        metric = self._metrics.get(dotted, metric) if len(path) > 1 else metric
        if isinstance(value, dict) and "_type" not in value:
            for k, v in value.items():
                self._summarise_leaf([*path, k], v, metric)
            return
        options = metric.summary if metric is not None else set()
        if len(path) == 1 and (not options or "copy" in options):
            self.summary._data[path[0]] = value
            return
        if not options or "none" in options:
            return
        if "copy" in options:
            _nested_set(self.summary._data, path, value)
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            return
        number = float(value)
        maximize = metric is not None and metric.goal == "maximize"
        key = tuple(path)
        if "last" in options:
            _nested_set(self.summary._data, [*path, "last"], value)
        if "first" in options and (*key, "first") not in self._track:
            self._track[(*key, "first")] = number
            _nested_set(self.summary._data, [*path, "first"], value)
        for option, better in (("max", number.__gt__), ("min", number.__lt__)):
            wanted = option in options or ("best" in options and maximize == (option == "max"))
            old = self._track.get((*key, option))
            if wanted and (old is None or better(old)):
                self._track[(*key, option)] = number
                if option in options:
                    _nested_set(self.summary._data, [*path, option], value)
                if "best" in options and maximize == (option == "max"):
                    _nested_set(self.summary._data, [*path, "best"], value)
        if "mean" in options:
            total = self._track.get((*key, "tot"), 0.0) + number
            count = self._track.get((*key, "num"), 0.0) + 1
            self._track[(*key, "tot")], self._track[(*key, "num")] = total, count
            _nested_set(self.summary._data, [*path, "mean"], total / count)

    def _maybe_flush(self) -> None:
        due = len(self._rows) >= _FLUSH_ROWS or (
            time.monotonic() - self._last_flush >= _FLUSH_SECONDS
        )
        if due:
            self.flush(commit=False)

    def flush(self, commit: bool = True) -> None:
        """Write buffered rows and the summary (``commit``: the pending row first)."""
        with self._lock:
            if commit:
                self._commit()
            rows, self._rows = self._rows, []
            dirty, self._summary_dirty = self._summary_dirty, False
            self._last_flush = time.monotonic()
            if not rows and not dirty:
                return
            summary = dumps(self.summary._as_dict()) if dirty else None
            try:
                self._service.log_history(*self._where, rows, summary)
            except BaseException:
                self._rows = rows + self._rows
                self._summary_dirty = self._summary_dirty or dirty
                raise


def _nested_set(target: dict[str, Any], path: list[str], value: Any) -> None:
    for part in path[:-1]:
        child = target.get(part)
        if not isinstance(child, dict):
            child = target[part] = {}
        target = child
    target[path[-1]] = value


def sample(rows: list[dict[str, Any]], samples: int) -> list[dict[str, Any]]:
    """At most ``samples`` rows, evenly spread, the first and the last included."""
    if samples <= 0:
        return []
    if len(rows) <= samples:
        return rows
    if samples == 1:
        return [rows[-1]]
    last = len(rows) - 1
    picks = sorted({round(i * last / (samples - 1)) for i in range(samples)})
    return [rows[i] for i in picks]


def select_keys(
    rows: Iterator[dict[str, Any]] | list[dict[str, Any]], keys: list[str] | None
) -> Iterator[dict[str, Any]]:
    """W&B's ``keys=``: only rows holding every key, with only those keys."""
    for row in rows:
        if keys is None:
            yield row
        elif all(k in row for k in keys):
            yield {k: row[k] for k in keys}
