"""Records to and from JSON: one typed mechanism for the frozen dataclasses that travel.

``to_json(record)`` gives a JSON value with the dataclass's field names (tuples as lists, nested
records as objects); ``from_json(cls, value)`` reads one back, checking each field against its
annotation (``str``, ``int``, ``float``, ``bool``, ``X | None``, ``tuple[X, ...]``,
``Sequence[X]``, ``Mapping[str, X]``, nested dataclasses, ``Any``). A field that is absent takes
its default; an absent field without one, or a value of another type, is a ``ValidationError``
naming the field. The plan for each class is worked out once from its annotations.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from cairn.errors import ValidationError

T = TypeVar("T")
_Encode = Callable[[Any], Any]
_Decode = Callable[[Any], Any]

_encoders: dict[Any, _Encode] = {}
_decoders: dict[Any, _Decode] = {}


def to_json(record: Any) -> Any:
    """The JSON value of a dataclass instance (field names as keys)."""
    return _encoder(type(record))(record)


def from_json(cls: type[T], value: Any) -> T:
    """A ``cls`` read from its JSON value (see the module's docstring)."""
    try:
        decoded: T = _decoder(cls)(value)
    except _Bad as bad:
        where = cls.__name__ + "".join(
            f"[{p}]" if isinstance(p, int) else f".{p}" for p in reversed(bad.path)
        )
        raise ValidationError(f"{where} {bad.problem}") from None
    return decoded


class _Bad(Exception):
    """A value of the wrong kind; ``path`` is built innermost first on the way out."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        self.path: list[str | int] = []


def _wrong(what: str, value: Any) -> _Bad:
    return _Bad(f"must be {what}, not {type(value).__name__}")


# -- encoding ------------------------------------------------------------------------------------


def _same(value: Any) -> Any:
    return value


def _encoder(tp: Any) -> _Encode:
    found = _encoders.get(tp)
    if found is None:
        found = _encoders[tp] = _make_encoder(tp)
    return found


def _make_encoder(tp: Any) -> _Encode:
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _record_encoder(tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [_encoder(a) for a in args if a is not type(None)]
        if len(inner) == 1 and inner[0] is not _same:
            one = inner[0]
            return lambda v: None if v is None else one(v)
        return _same
    if origin in (tuple, list, Sequence) or tp in (tuple, list):
        item = _encoder(args[0]) if args and (len(args) == 1 or args[-1] is Ellipsis) else _same
        if item is _same:
            return list
        return lambda v: [item(x) for x in v]
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        value = _encoder(args[1]) if len(args) == 2 else _same
        if value is _same:
            return dict
        return lambda v: {k: value(x) for k, x in v.items()}
    return _same


def _record_encoder(cls: type[Any]) -> _Encode:
    """One generated function per class: ``{"a": r.a, "b": E1(r.b), ...}`` (as fast as a
    hand-written one)."""
    hints = typing.get_type_hints(cls)
    env: dict[str, Any] = {}
    items = []
    for i, f in enumerate(dataclasses.fields(cls)):
        enc = _encoder(hints[f.name])
        if enc is _same:
            items.append(f"{f.name!r}: r.{f.name}")
        else:
            env[f"E{i}"] = enc
            items.append(f"{f.name!r}: E{i}(r.{f.name})")
    source = "def encode(r):\n    return {" + ", ".join(items) + "}\n"
    exec(source, env)
    encode: _Encode = env["encode"]
    return encode


# -- decoding ------------------------------------------------------------------------------------


def _decoder(tp: Any) -> _Decode:
    found = _decoders.get(tp)
    if found is None:
        found = _decoders[tp] = _make_decoder(tp)
    return found


def _any(v: Any) -> Any:
    return v


def _text(v: Any) -> str:
    if not isinstance(v, str):
        raise _wrong("text", v)
    return v


def _flag(v: Any) -> bool:
    if not isinstance(v, bool):
        raise _wrong("true or false", v)
    return v


def _whole(v: Any) -> int:
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, bool) or not isinstance(v, int):
        raise _wrong("an integer", v)
    return v


def _number(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _wrong("a number", v)
    return float(v)


_PRIMITIVES: dict[Any, _Decode] = {Any: _any, str: _text, bool: _flag, int: _whole, float: _number}


def _make_decoder(tp: Any) -> _Decode:
    if tp in _PRIMITIVES:
        return _PRIMITIVES[tp]
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _record_decoder(tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return _union_decoder(args)
    if origin is tuple and args and args[-1] is not Ellipsis:
        items = [_decoder(a) for a in args]

        def fixed(v: Any) -> tuple[Any, ...]:
            if not isinstance(v, (list, tuple)) or len(v) != len(items):
                raise _wrong(f"a list of {len(items)}", v)
            return tuple(_at(i, d, x) for i, (d, x) in enumerate(zip(items, v, strict=True)))

        return fixed
    if origin in (tuple, list, Sequence) or tp in (tuple, list):
        item = _decoder(args[0]) if args else _any

        def many(v: Any) -> tuple[Any, ...]:
            if not isinstance(v, (list, tuple)):
                raise _wrong("a list", v)
            if item is _any:
                return tuple(v)
            return tuple(_at(i, item, x) for i, x in enumerate(v))

        return many
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        value = _decoder(args[1]) if len(args) == 2 else _any

        def mapping(v: Any) -> dict[str, Any]:
            if not isinstance(v, Mapping):
                raise _wrong("an object", v)
            if value is _any:
                return dict(v)
            return {str(k): _at(str(k), value, x) for k, x in v.items()}

        return mapping
    raise TypeError(f"no JSON decoding for {tp!r}")


def _at(where: str | int, decode: _Decode, value: Any) -> Any:
    try:
        return decode(value)
    except _Bad as bad:
        bad.path.append(where)
        raise


def _union_decoder(args: tuple[Any, ...]) -> _Decode:
    options = [_decoder(a) for a in args if a is not type(None)]
    optional = type(None) in args
    if len(options) == 1:
        one = options[0]
        if optional:
            return lambda v: None if v is None else one(v)
        return one

    def either(v: Any) -> Any:
        if v is None and optional:
            return None
        for option in options[:-1]:
            try:
                return option(v)
            except _Bad:
                continue
        return options[-1](v)

    return either


_FAST = {
    str: "str",
    int: "int",
    float: "float",
    bool: "bool",
    str | None: "str",
    int | None: "int",
    float | None: "float",
    bool | None: "bool",
}


def _optional(tp: Any) -> bool:
    return type(None) in typing.get_args(tp)


def _record_decoder(cls: type[Any]) -> _Decode:
    """One generated function per class: each field read, checked by its annotation, and given
    its default when absent."""
    hints = typing.get_type_hints(cls)
    env: dict[str, Any] = {"Mapping": Mapping, "cls": cls, "_Bad": _Bad, "_wrong": _wrong}
    lines = [
        "def decode(v):",
        "    if not isinstance(v, Mapping):",
        "        raise _wrong('an object', v)",
        "    kw = {}",
        "    name = None",
        "    try:",
    ]
    for i, f in enumerate(dataclasses.fields(cls)):
        tp = hints[f.name]
        env[f"D{i}"] = dec = _decoder(tp)
        # The common case (the value has the annotation's exact type) costs one comparison.
        fast = _FAST.get(tp)
        if dec is _any:
            value = "x"
        elif fast is not None:
            value = (
                f"x if x.__class__ is {fast}{' or x is None' if _optional(tp) else ''} else D{i}(x)"
            )
            env[fast] = {"str": str, "int": int, "float": float, "bool": bool}[fast]
        else:
            value = f"D{i}(x)"
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        lines += [f"        name = {f.name!r}", f"        if {f.name!r} in v:"]
        lines += [f"            x = v[{f.name!r}]", f"            kw[{f.name!r}] = {value}"]
        if required:
            lines += ["        else:", "            raise _Bad('is missing')"]
    lines += [
        "    except _Bad as bad:",
        "        bad.path.append(name)",
        "        raise",
        "    return cls(**kw)",
    ]
    exec("\n".join(lines) + "\n", env)
    decode: _Decode = env["decode"]
    return decode
