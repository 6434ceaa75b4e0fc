"""The tenant component of cache keys, from an explicit argument or a context variable.

Example::

    >>> from kit_cache import MemoryCache, tenant_context
    >>> cache = MemoryCache()
    >>> with tenant_context("acme"):
    ...     cache.set("plan", "pro")
    ...     cache.key_for("plan")
    True
    'kit:default:@acme:plan'
    >>> cache.get("plan")  # outside the tenant: another key
    MISSING
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from ._keys import check_segment

__all__ = ["current_tenant", "tenant_context"]

_tenant: ContextVar[str | None] = ContextVar("kit_cache_tenant", default=None)


@contextmanager
def tenant_context(tenant: str | None) -> Iterator[None]:
    """Scope every cache key built inside the block to ``tenant`` (``None`` clears it)."""
    if tenant is not None:
        check_segment(tenant, "tenant")
    token = _tenant.set(tenant)
    try:
        yield
    finally:
        _tenant.reset(token)


def current_tenant() -> str | None:
    """The tenant set by the innermost :func:`tenant_context`, or ``None``."""
    return _tenant.get()
