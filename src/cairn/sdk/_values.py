"""What users pass to an artifact, checked and converted as W&B does: metadata, entry names,
link targets, the copy policy; and warnings that name the user's line, not cairn's."""

from __future__ import annotations

import datetime as _dt
import json
import os
import pathlib
import sys
import warnings
from collections.abc import Mapping
from typing import Any, Literal

from cairn.core import MAX_DEPTH, check_json_value, normalize_entry_path, parse_artifact_path
from cairn.errors import ValidationError
from cairn.sdk._settings import Settings

Policy = Literal["mutable", "immutable"]


MAX_METADATA_KEYS = 100  # W&B's limit


def normalize_metadata(metadata: object) -> dict[str, Any]:
    """W&B's rules: a mapping (else ``TypeError``) of at most 100 keys (else ``ValueError``) whose
    values are JSON (``TypeError`` otherwise); NaN is stored as null; infinities are refused
    (``ValueError``)."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a dict, not {type(metadata).__name__}")
    if len(metadata) > MAX_METADATA_KEYS:
        raise ValidationError(
            f"metadata has {len(metadata)} keys; at most {MAX_METADATA_KEYS} are allowed"
        )
    try:
        text = json.dumps(_nan_to_none(dict(metadata)), default=_json_default, allow_nan=False)
        # A copy that is plain JSON: what is stored is exactly what is read back.
        return dict(check_json_value(json.loads(text), "metadata"))
    except RecursionError:
        raise ValidationError(
            f"metadata is nested too deeply (more than {MAX_DEPTH} levels) or refers to itself"
        ) from None
    except ValidationError:
        raise
    except ValueError as exc:
        if "Out of range float" in str(exc):
            raise ValidationError(
                "metadata values may not be infinite (NaN is stored as null)"
            ) from None
        raise ValidationError(f"metadata must be JSON-serialisable: {exc}") from None


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, Mapping):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return _nan_to_none(value.tolist())
    return value


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


ARTIFACT_SCHEMES = ("cairn-artifact://", "wandb-artifact://")


def ref_name(name: object, default: str) -> str:
    return normalize_entry_path(default if name is None else entry_name(name))


def entry_name(name: object) -> str:
    """An entry name given as text or as a ``pathlib`` path of any flavour: a Windows path
    (``PureWindowsPath("a\\b")``) becomes ``a/b``, as in W&B."""
    if isinstance(name, pathlib.PureWindowsPath):
        return name.as_posix()
    if isinstance(name, os.PathLike):
        return pathlib.PurePath(os.fspath(name)).as_posix()
    if not isinstance(name, str):
        raise ValidationError(f"an entry name must be text or a path, got {name!r}")
    return name


def warn_user(message: str, category: type[Warning] = UserWarning) -> None:
    """Warn at the first caller outside cairn, so the warning names the user's line."""
    frame = sys._getframe(1)
    level = 2  # stacklevel 1 is this function, 2 its caller
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    warnings.warn(message, category, stacklevel=level)


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def link_target(target_path: str, entity: str, project: str) -> tuple[str, str, str]:
    """(entity, project, collection) of a link target: ``collection``, ``project/collection``,
    ``entity/project/collection``; ``[org/]wandb-registry-<name>/<collection>`` is a registry."""
    ref = parse_artifact_path(target_path)
    if ref.label is not None:
        raise ValidationError(
            f"link target {target_path!r} names a version; give the collection only (aliases go"
            " in aliases=[...])"
        )
    if ref.project is None:
        return entity, project, ref.name
    return ref.entity or entity, ref.project, ref.name


def staging_root(settings: Settings) -> str | None:
    """Where new_file() stages files: ``<CAIRN_DATA_DIR or WANDB_DATA_DIR>/artifacts/staging``
    (W&B's place for them), else the system's temporary directory."""
    data_dir = settings.data_dir
    if data_dir is None:
        return None
    root = os.path.join(os.path.expanduser(data_dir), "artifacts", "staging")
    os.makedirs(root, exist_ok=True)
    return root


def check_policy(policy: object) -> bool:
    """Whether the policy allows linking instead of copying."""
    if policy not in ("mutable", "immutable", None):
        raise ValidationError(f"invalid policy {policy!r}: use 'mutable' or 'immutable'")
    return policy == "immutable"
