"""Serializers turn cached values into bytes for shared stores (Redis) and back.

:class:`JsonSerializer` is the default. Beyond plain JSON it round-trips ``datetime``,
``date``, ``time``, ``timedelta``, ``UUID``, ``Decimal``, ``bytes``, ``set``/``frozenset``,
enums, dataclasses and pydantic models. Tuples come back as lists and dict keys must be
strings, as in JSON. A dataclass, pydantic model or enum is rebuilt only from a module that
is already imported, and only if the named object really is such a class: cached bytes can
never make kit-cache import a module or call an arbitrary callable.

:class:`MsgpackSerializer` (extra ``kit-cache[msgpack]``) is more compact with the same
types. :class:`PickleSerializer` handles anything picklable and is only accepted together
with a ``secret``: every entry is then signed with HMAC-SHA256, and unsigned or tampered
data is refused rather than unpickled.

Example::

    >>> from datetime import date
    >>> s = JsonSerializer()
    >>> s.loads(s.dumps({"day": date(2026, 1, 2)}))
    {'day': datetime.date(2026, 1, 2)}
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import json
import pickle
import sys
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from .exceptions import ConfigurationError, SerializationError

__all__ = [
    "JsonSerializer",
    "MsgpackSerializer",
    "PickleSerializer",
    "Serializer",
    "resolve_serializer",
]

_TAG = "__kit__"


@runtime_checkable
class Serializer(Protocol):
    """Turns values into bytes and back. ``requires_secret`` marks unsafe formats."""

    name: str
    requires_secret: bool

    def dumps(self, value: Any) -> bytes:
        """Encode ``value``; raise :class:`SerializationError` naming the bad type."""
        ...

    def loads(self, data: bytes) -> Any:
        """Decode bytes made by :meth:`dumps`; raise :class:`SerializationError` if invalid."""
        ...


def _qualified(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _resolve_class(path: str) -> type:
    module_name, _, qualname = path.partition(":")
    module = sys.modules.get(module_name)
    if module is None:
        raise SerializationError(
            f"cached value refers to {path!r}, but module {module_name!r} is not imported; "
            "kit-cache never imports modules named by cached data"
        )
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if not isinstance(obj, type):
        raise SerializationError(f"cached value refers to {path!r}, which is not a class")
    return obj


def _is_pydantic_model(obj: object) -> bool:
    cls = type(obj)
    return hasattr(cls, "model_validate") and hasattr(cls, "model_fields")


def _encode_special(obj: Any) -> dict[str, Any]:
    """Encode one non-JSON value as a tagged dict (called by the JSON/msgpack ``default``)."""
    if isinstance(obj, int):  # only reached from msgpack, for ints beyond 64 bits
        return {_TAG: "int", "v": str(obj)}
    if isinstance(obj, dt.datetime):
        return {_TAG: "datetime", "v": obj.isoformat()}
    if isinstance(obj, dt.date):
        return {_TAG: "date", "v": obj.isoformat()}
    if isinstance(obj, dt.time):
        return {_TAG: "time", "v": obj.isoformat()}
    if isinstance(obj, dt.timedelta):
        return {_TAG: "timedelta", "v": [obj.days, obj.seconds, obj.microseconds]}
    if isinstance(obj, uuid.UUID):
        return {_TAG: "uuid", "v": str(obj)}
    if isinstance(obj, Decimal):
        return {_TAG: "decimal", "v": str(obj)}
    if isinstance(obj, bytes | bytearray):
        return {_TAG: "bytes", "v": base64.b64encode(obj).decode("ascii")}
    if isinstance(obj, frozenset):
        return {_TAG: "frozenset", "v": list(obj)}
    if isinstance(obj, set):
        return {_TAG: "set", "v": list(obj)}
    if isinstance(obj, enum.Enum):
        return {_TAG: "enum", "t": _qualified(type(obj)), "v": obj.value}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.init}
        return {_TAG: "dataclass", "t": _qualified(type(obj)), "v": fields}
    if _is_pydantic_model(obj):
        return {_TAG: "pydantic", "t": _qualified(type(obj)), "v": obj.model_dump(mode="json")}
    raise SerializationError(
        f"cannot serialize a value of type {type(obj).__module__}.{type(obj).__qualname__}: "
        "cache JSON-compatible data, datetimes, UUIDs, Decimals, dataclasses or pydantic models, "
        "or configure serializer='pickle' together with a secret"
    )


def _decode_special(d: dict[str, Any]) -> Any:
    """``object_hook``: rebuild a tagged dict made by :func:`_encode_special`."""
    tag = d.get(_TAG)
    if tag is None:
        return d
    value: Any = d.get("v")
    try:
        match tag:
            case "int":
                return int(value)
            case "datetime":
                return dt.datetime.fromisoformat(value)
            case "date":
                return dt.date.fromisoformat(value)
            case "time":
                return dt.time.fromisoformat(value)
            case "timedelta":
                return dt.timedelta(days=value[0], seconds=value[1], microseconds=value[2])
            case "uuid":
                return uuid.UUID(value)
            case "decimal":
                return Decimal(value)
            case "bytes":
                return base64.b64decode(value)
            case "set":
                return set(value)
            case "frozenset":
                return frozenset(value)
            case "enum":
                cls = _resolve_class(d["t"])
                if not issubclass(cls, enum.Enum):
                    raise SerializationError(f"{d['t']!r} is not an Enum")
                return cls(value)
            case "dataclass":
                cls = _resolve_class(d["t"])
                if not dataclasses.is_dataclass(cls):
                    raise SerializationError(f"{d['t']!r} is not a dataclass")
                return cls(**value)
            case "pydantic":
                cls = _resolve_class(d["t"])
                validate: Callable[[Any], Any] | None = getattr(cls, "model_validate", None)
                if validate is None:
                    raise SerializationError(f"{d['t']!r} is not a pydantic model")
                return validate(value)
    except SerializationError:
        raise
    except (TypeError, ValueError, KeyError, IndexError) as exc:
        raise SerializationError(f"corrupt cached {tag!r} value: {exc}") from exc
    raise SerializationError(f"unknown type tag {tag!r} in cached data")


class JsonSerializer:
    """JSON with tagged extensions; plain JSON values decode at ``json.loads`` speed.

    The first byte says whether any tagged value is inside (``t``) or not (``j``), so that
    plain data skips the per-object hook when read back.
    """

    name: str = "json"
    requires_secret: bool = False

    def dumps(self, value: Any) -> bytes:
        """Encode ``value`` to bytes."""
        tagged = False

        def default(obj: Any) -> Any:
            nonlocal tagged
            tagged = True
            return _encode_special(obj)

        try:
            text = json.dumps(value, default=default, separators=(",", ":"), ensure_ascii=False)
        except SerializationError:
            raise
        except (TypeError, ValueError) as exc:
            raise SerializationError(f"cannot serialize value as JSON: {exc}") from exc
        return (b"t" if tagged else b"j") + text.encode()

    def loads(self, data: bytes) -> Any:
        """Decode bytes made by :meth:`dumps`."""
        marker = data[:1]
        try:
            if marker == b"j":
                return json.loads(data[1:])
            if marker == b"t":
                return json.loads(data[1:], object_hook=_decode_special)
        except ValueError as exc:
            raise SerializationError(f"corrupt cached JSON: {exc}") from exc
        raise SerializationError("cached bytes were not written by JsonSerializer")


class MsgpackSerializer:
    """msgpack with the same tagged types as :class:`JsonSerializer` (``kit-cache[msgpack]``)."""

    name: str = "msgpack"
    requires_secret: bool = False

    def __init__(self) -> None:
        try:
            import msgpack
        except ImportError as exc:  # pragma: no cover - exercised by the slim session
            raise ImportError(
                'MsgpackSerializer needs msgpack: pip install "kit-cache[msgpack]"'
            ) from exc
        self._msgpack: Any = msgpack

    def dumps(self, value: Any) -> bytes:
        """Encode ``value`` to bytes."""
        try:
            packed: bytes = self._msgpack.packb(
                value, default=_encode_special, use_bin_type=True, datetime=False
            )
        except SerializationError:
            raise
        except (TypeError, ValueError, OverflowError) as exc:
            raise SerializationError(f"cannot serialize value with msgpack: {exc}") from exc
        return packed

    def loads(self, data: bytes) -> Any:
        """Decode bytes made by :meth:`dumps`."""
        try:
            return self._msgpack.unpackb(
                data, raw=False, object_hook=_decode_special, strict_map_key=False
            )
        except SerializationError:
            raise
        except (ValueError, TypeError, self._msgpack.ExtraData) as exc:
            raise SerializationError(f"corrupt cached msgpack data: {exc}") from exc


class PickleSerializer:
    """pickle for arbitrary objects. Only accepted with a ``secret``: entries are signed."""

    name: str = "pickle"
    requires_secret: bool = True

    def dumps(self, value: Any) -> bytes:
        """Encode ``value`` with the highest pickle protocol."""
        try:
            return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise SerializationError(
                f"cannot pickle a value of type {type(value).__qualname__}: {exc}"
            ) from exc

    def loads(self, data: bytes) -> Any:
        """Decode bytes made by :meth:`dumps`. Callers verify the signature first."""
        try:
            return pickle.loads(data)  # noqa: S301 - only reached after HMAC verification
        except Exception as exc:
            raise SerializationError(f"corrupt cached pickle data: {exc}") from exc


_BY_NAME: dict[str, Callable[[], Serializer]] = {
    "json": JsonSerializer,
    "msgpack": MsgpackSerializer,
    "pickle": PickleSerializer,
}


def resolve_serializer(serializer: str | Serializer | None) -> Serializer:
    """Return a serializer instance from a name (``json``, ``msgpack``, ``pickle``) or object."""
    if serializer is None:
        return JsonSerializer()
    if isinstance(serializer, str):
        factory = _BY_NAME.get(serializer)
        if factory is None:
            raise ConfigurationError(
                f"unknown serializer {serializer!r}: use one of {sorted(_BY_NAME)} "
                "or an object with dumps() and loads()"
            )
        return factory()
    if not isinstance(serializer, Serializer):
        raise ConfigurationError(
            f"serializer {serializer!r} lacks dumps()/loads()/name/requires_secret"
        )
    return serializer
