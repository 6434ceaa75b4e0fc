"""Cache keys: ``prefix:namespace[:@tenant]:key``, validation, hashing, key templates."""

from __future__ import annotations

import hashlib
import inspect
import re
import string
from collections.abc import Callable, Sequence
from typing import Any

from .exceptions import CacheKeyError, ConfigurationError

KEEP_READABLE = 64
"""How many characters of a too-long key stay readable before its hash."""

_FIELD_ROOT = re.compile(r"[^.\[]*")


def check_segment(value: object, what: str) -> str:
    """Validate a prefix, namespace, tenant or tag: a non-empty printable string without ``:``."""
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{what} must be a non-empty string, got {value!r}")
    if ":" in value or not value.isprintable() or " " in value or value[0] == "@":
        raise ConfigurationError(
            f"{what} {value!r} may not start with '@' (reserved for kit-cache's own keys) "
            "or contain ':', spaces or control characters"
        )
    return value


def check_tag(tag: object) -> str:
    """Validate a tag: a non-empty printable string (``:`` allowed, as in ``user:42``)."""
    if not isinstance(tag, str) or not tag or not tag.isprintable():
        raise ConfigurationError(f"tags are non-empty printable strings, got {tag!r}")
    return tag


def check_key(key: object) -> str:
    """Validate a key given by a caller: a non-empty printable string not starting with '@'."""
    if not isinstance(key, str):
        raise CacheKeyError(f"cache keys are strings, got {type(key).__name__} {key!r}")
    if not key or not key.isprintable() or key[0] == "@":
        raise CacheKeyError(
            f"invalid cache key {key!r}: use a non-empty string without control characters "
            "that does not start with '@' (reserved for the tenant segment)"
        )
    return key


def shorten(key: str, limit: int) -> str:
    """Return ``key`` if short enough, else a readable head plus a SHA-256 of the whole key."""
    if len(key) <= limit and key.isprintable() and not key.startswith("@"):
        return key
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    head = "".join(c if c.isprintable() else "?" for c in key[:KEEP_READABLE]).lstrip("@")
    return f"{head}#{digest}"


# --------------------------------------------------------------------------- templates


def _template_fields(template: str) -> list[str]:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigurationError(f"invalid key template {template!r}: {exc}") from exc
    roots = []
    for _, field, _, _ in parsed:
        if field is None:
            continue
        match = _FIELD_ROOT.match(field)
        root = match.group(0) if match else ""
        if not root or root.isdigit():
            raise ConfigurationError(
                f"key template {template!r} uses a positional field {{{field}}}: "
                "name the function's arguments instead, e.g. 'user:{user_id}'"
            )
        roots.append(root)
    return roots


KeyBinder = Callable[..., str]
TagBinder = Callable[..., tuple[str, tuple[str, ...]]]


def _params_source(sig: inspect.Signature, defaults: dict[str, Any]) -> str:
    parts: list[str] = []
    saw_kwonly_marker = False
    for i, p in enumerate(sig.parameters.values()):
        text = p.name
        if p.default is not inspect.Parameter.empty:
            defaults[f"_d{i}"] = p.default
            text += f"=_d{i}"
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            text = f"*{p.name}"
            saw_kwonly_marker = True
        elif p.kind is inspect.Parameter.VAR_KEYWORD:
            text = f"**{p.name}"
        elif p.kind is inspect.Parameter.KEYWORD_ONLY and not saw_kwonly_marker:
            parts.append("*")
            saw_kwonly_marker = True
        parts.append(text)
        if p.kind is inspect.Parameter.POSITIONAL_ONLY and (
            i + 1 == len(sig.parameters)
            or list(sig.parameters.values())[i + 1].kind is not inspect.Parameter.POSITIONAL_ONLY
        ):
            parts.append("/")
    return ", ".join(parts)


def _default_key_expr(func: Callable[..., Any], sig: inspect.Signature) -> str:
    """Source of an expression giving ``module.qualname(repr(arg), ...)``."""
    pieces: list[str] = []
    params = list(sig.parameters.values())
    for i, p in enumerate(params):
        if i == 0 and p.name in ("self", "cls"):
            continue
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            pieces.append(f"*map(_repr, {p.name})")
        elif p.kind is inspect.Parameter.VAR_KEYWORD:
            pieces.append(f"*(k + '=' + _repr(v) for k, v in sorted({p.name}.items()))")
        else:
            pieces.append(f"_repr({p.name})")
    inner = f"','.join(({', '.join(pieces)},))" if pieces else "''"
    return f"_name + '(' + {inner} + ')'"


def _format_expr(index: int, template: str) -> str:
    names = sorted(set(_template_fields(template)))
    call_args = ", ".join(f"{n}={n}" for n in names)
    return f"_t{index}.format({call_args})"


def compile_binder(
    func: Callable[..., Any], key: str | None, tags: Sequence[str]
) -> tuple[KeyBinder, TagBinder]:
    """Compile fast functions turning a call's arguments into its key and its tags.

    The generated functions have ``func``'s own signature, so Python binds the arguments in C
    and ``f(1)`` and ``f(a=1)`` make the same key. Template fields are checked here, at
    decoration time: a field naming an argument ``func`` does not have raises.
    """
    sig = inspect.signature(func)
    params = set(sig.parameters)
    name = getattr(func, "__qualname__", getattr(func, "__name__", "function"))
    for template in ([key] if key is not None else []) + list(tags):
        if not isinstance(template, str) or not template:
            raise ConfigurationError(f"key and tag templates are non-empty strings: {template!r}")
        for field in _template_fields(template):
            if field not in params:
                raise ConfigurationError(
                    f"key template {template!r} names {field!r}, but {name}() has no such "
                    f"argument; its arguments are: {', '.join(sig.parameters) or '(none)'}"
                )
    namespace: dict[str, Any] = {
        "_repr": repr,
        "_name": f"{func.__module__}.{name}",
    }
    params_src = _params_source(sig, namespace)
    key_expr = _default_key_expr(func, sig) if key is None else _format_expr(0, key)
    if key is not None:
        namespace["_t0"] = key
    tag_exprs = []
    for i, tag in enumerate(tags, start=1):
        namespace[f"_t{i}"] = tag
        tag_exprs.append(_format_expr(i, tag))
    fname = getattr(func, "__name__", "function")
    if not fname.isidentifier():
        fname = "function"
    source = (
        f"def {fname}({params_src}):\n    return {key_expr}\n"
        f"def {fname}_tags({params_src}):\n"
        f"    return {key_expr}, ({''.join(e + ', ' for e in tag_exprs)})\n"
    )
    exec(compile(source, f"<kit_cache key for {name}>", "exec"), namespace)  # noqa: S102
    return namespace[fname], namespace[f"{fname}_tags"]
