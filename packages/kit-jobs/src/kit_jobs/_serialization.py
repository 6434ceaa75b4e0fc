"""JSON arguments: checked at enqueue time, so a bad argument fails in the caller's
stack, not hours later in a worker.

Every backend passes the JSON round trip of the arguments to the job (a tuple arrives
as a list), so code that works on the thread backend works the same on RQ.
"""

from __future__ import annotations

import json
from typing import Any

from .exceptions import SerializationError

__all__ = ["check_arguments", "dumps", "find_unserializable", "loads"]

_encoder = json.JSONEncoder(allow_nan=False, separators=(",", ":"), ensure_ascii=False)
_decoder = json.JSONDecoder()


def dumps(value: Any) -> str:
    """Compact JSON, refusing NaN and infinities (not JSON, and not portable)."""
    return _encoder.encode(value)


def loads(text: str | bytes) -> Any:
    return _decoder.decode(text.decode() if isinstance(text, bytes) else text)


def _describe(value: Any) -> str:
    kind = type(value)
    return (
        f"{kind.__module__}.{kind.__qualname__}" if kind.__module__ != "builtins" else kind.__name__
    )


def find_unserializable(value: Any, path: str) -> str | None:
    """The path and type of the first value JSON cannot carry, for the error message."""
    if value is None or isinstance(value, bool | str):
        return None
    if isinstance(value, int | float):
        if (isinstance(value, float) and value != value) or value in (float("inf"), float("-inf")):
            return f"{path} ({value!r}: NaN and infinity are not JSON)"
        if type(value) not in (int, float):
            return f"{path} ({_describe(value)})"
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = find_unserializable(item, f"{path}[{index}]")
            if found:
                return found
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path} (dict key {key!r} of type {_describe(key)}: keys must be str)"
            found = find_unserializable(item, f"{path}[{key!r}]")
            if found:
                return found
        return None
    return f"{path} ({_describe(value)})"


def check_arguments(
    task_name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[list[Any], dict[str, Any]]:
    """Validate job arguments and return their JSON round trip.

    Raises :class:`SerializationError` naming the argument and its type.

    Example::

        >>> check_arguments("send", (1, (2, 3)), {"to": "a@b.c"})
        ([1, [2, 3]], {'to': 'a@b.c'})
        >>> import datetime
        >>> check_arguments("send", (datetime.date(2026, 1, 1),), {})
        Traceback (most recent call last):
        ...
        kit_jobs.exceptions.SerializationError: job 'send': argument args[0] (datetime.date) is not JSON-serializable; pass str, int, float, bool, None, lists and dicts of them (e.g. an id or date.isoformat()), and load objects inside the job
    """
    if not args and not kwargs:
        return [], {}
    bad = find_unserializable(list(args), "args") or find_unserializable(kwargs, "kwargs")
    if bad is not None:
        raise SerializationError(
            f"job {task_name!r}: argument {bad} is not JSON-serializable; pass str, int, "
            "float, bool, None, lists and dicts of them (e.g. an id or date.isoformat()), "
            "and load objects inside the job"
        )
    text = dumps([args, kwargs])
    loaded_args, loaded_kwargs = loads(text)
    return loaded_args, loaded_kwargs
