"""Every error kit-cache raises derives from :class:`KitCacheError`.

::

    KitCacheError
    ├── ConfigurationError      bad option, URL, key template or tenant/namespace name
    ├── CacheKeyError           a key that cannot be used (empty, not a string, control chars)
    ├── SerializationError      a value the serializer cannot encode, or bytes it cannot decode
    │   └── SignatureError      signed data whose HMAC does not match (tampered or wrong secret)
    └── BackendError            the cache server failed (connection, timeout, protocol)
        └── BackendUnavailable  the circuit breaker is open: calls fail fast until it recovers

With the default fail-open policy, :class:`BackendError` never escapes a read or a write:
reads miss and writes are skipped. ``on_error="raise"`` (fail-closed) lets it through.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "BackendUnavailable",
    "CacheKeyError",
    "ConfigurationError",
    "KitCacheError",
    "SerializationError",
    "SignatureError",
]


class KitCacheError(Exception):
    """Base class of every kit-cache error."""


class ConfigurationError(KitCacheError, ValueError):
    """An option, URL, key template, namespace or tenant is invalid."""


class CacheKeyError(KitCacheError, ValueError):
    """A cache key cannot be used as given."""


class SerializationError(KitCacheError, TypeError):
    """A value cannot be serialized, or stored bytes cannot be deserialized."""


class SignatureError(SerializationError):
    """Signed cache data failed HMAC verification."""


class BackendError(KitCacheError):
    """The cache backend failed (connection refused, timeout, protocol error)."""


class BackendUnavailable(BackendError):
    """The circuit breaker is open after repeated backend failures."""
