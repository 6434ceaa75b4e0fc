"""OAuth-style scopes with wildcard segments.

Grammar: one or more segments separated by ``:``; a segment is letters, digits, ``_``,
``-`` or ``.`` (``users``, ``users:read``, ``billing:invoices:write``). The last segment
may be ``*``, a wildcard, and ``*`` alone is the "everything" scope. Empty segments
(``"users:"``, ``"a::b"``), wildcards elsewhere (``"*:read"``, ``"user*"``), spaces and
other characters are refused. At most 200 characters.

Matching (``granted`` grants ``required``):

* equal strings match;
* ``*`` grants every scope;
* ``p:*`` grants every scope *below* ``p``, at any depth: ``users:*`` grants
  ``users:read``, ``users:write:all`` and ``users:x:*``, but not ``users`` itself nor
  ``userspace:read``.

A granted scope that is malformed is matched literally and so never grants a valid
required scope; required scopes are validated (:class:`~kit_auth.exceptions.InvalidInput`).

Example::

    >>> from kit_auth.scopes import has_scopes, scope_matches
    >>> scope_matches("users:*", "users:write:all"), scope_matches("users:*", "users")
    (True, False)
    >>> has_scopes({"users:read", "billing:*"}, ["users:read", "billing:refund"])
    True
    >>> has_scopes({"users:read"}, ["users:write"])
    False
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from functools import lru_cache

from kit_auth.exceptions import InvalidInput

__all__ = [
    "MAX_SCOPE_LENGTH",
    "has_scopes",
    "missing_scopes",
    "parse_scopes",
    "scope_matches",
    "validate_scope",
]

MAX_SCOPE_LENGTH = 200
_SEGMENT = r"[A-Za-z0-9_.\-]+"
_SCOPE = re.compile(rf"\*|{_SEGMENT}(?::{_SEGMENT})*(?::\*)?")


def validate_scope(scope: str) -> str:
    """Return ``scope`` if it follows the grammar above, else raise
    :class:`~kit_auth.exceptions.InvalidInput` saying why.

    >>> validate_scope("users:*")
    'users:*'
    >>> validate_scope("a::b")
    Traceback (most recent call last):
    ...
    kit_auth.exceptions.InvalidInput: scope 'a::b' is invalid: use ':'-separated segments of letters, digits, '_', '-' or '.', with an optional final '*' (e.g. 'users:read', 'users:*')
    """
    _candidates(scope)
    return scope


@lru_cache(maxsize=4096)
def _compiled(scope: str) -> tuple[str, ...]:
    if len(scope) > MAX_SCOPE_LENGTH:
        raise InvalidInput(f"scope is longer than {MAX_SCOPE_LENGTH} characters")
    if _SCOPE.fullmatch(scope) is None:
        raise InvalidInput(
            f"scope {scope!r} is invalid: use ':'-separated segments of letters, digits, "
            "'_', '-' or '.', with an optional final '*' (e.g. 'users:read', 'users:*')"
        )
    # Every granted scope that would grant this one: itself, then "*", "a:*", "a:b:*", ...
    segments = scope.split(":")
    candidates = [scope]
    candidates.extend(":".join([*segments[:depth], "*"]) for depth in range(len(segments)))
    return tuple(dict.fromkeys(candidates))


def _candidates(scope: object) -> tuple[str, ...]:
    if not isinstance(scope, str):
        raise InvalidInput(f"a scope must be a string, not {type(scope).__name__}")
    return _compiled(scope)


def _as_set(granted: Iterable[str]) -> Collection[str]:
    if isinstance(granted, str):
        raise InvalidInput(
            "granted scopes must be a collection of scope strings, not one string "
            "(use parse_scopes() for a space-separated list)"
        )
    if isinstance(granted, (set, frozenset)):
        return granted
    return frozenset(granted)


def scope_matches(granted: str, required: str) -> bool:
    """Whether the single scope ``granted`` grants ``required`` (both validated).

    >>> scope_matches("*", "anything:at:all"), scope_matches("users:read", "users:write")
    (True, False)
    """
    validate_scope(granted)
    return granted in _candidates(required)


def missing_scopes(granted: Iterable[str], required: Iterable[str]) -> tuple[str, ...]:
    """The required scopes that ``granted`` does not grant, in the order given.

    >>> missing_scopes(["users:read"], ["users:read", "users:write"])
    ('users:write',)
    """
    have = _as_set(granted)
    if isinstance(required, str):
        raise InvalidInput("required scopes must be a collection of scope strings, not one string")
    missing: list[str] = []
    for scope in required:
        candidates = _candidates(scope)
        if scope in have:
            continue
        if not any(candidate in have for candidate in candidates):
            missing.append(scope)
    return tuple(missing)


def has_scopes(granted: Iterable[str], required: Iterable[str]) -> bool:
    """Whether ``granted`` grants *every* scope in ``required`` (an empty ``required`` is
    always granted).

    >>> has_scopes(["*"], ["users:read", "admin:purge"])
    True
    """
    return not missing_scopes(granted, required)


def parse_scopes(value: str) -> frozenset[str]:
    """Split an OAuth ``scope`` claim (space-separated, RFC 6749 §3.3) and validate each.

    >>> sorted(parse_scopes("users:read  billing:*"))
    ['billing:*', 'users:read']
    """
    if not isinstance(value, str):
        raise InvalidInput(
            f"a scope list must be a space-separated string, not {type(value).__name__}"
        )
    return frozenset(validate_scope(scope) for scope in value.split())
