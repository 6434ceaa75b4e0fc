"""How entries are laid out as bytes in shared stores (Redis).

``<versions>|<body>`` where ``versions`` is the comma-joined values of the entry's version
keys (namespace, then tags) when it was written, and ``body`` is::

    [32-byte HMAC-SHA256 over key + body, when a secret is set] b"K" fresh_until:f64 delta:f32 payload

Integers written by ``set`` or ``incr`` are counters, ``<versions>|=<int>``, so that Redis
(in Lua) can add to them; a raw integer without ``|`` is read back as an ``int`` too.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from typing import Any

from .exceptions import SerializationError, SignatureError
from .serializers import Serializer

_HEADER = struct.Struct(">df")
_MAGIC = b"K"
_SIG_LEN = 32


Entry = tuple[Any, float, float]
"""``(value, fresh_until, delta)``: ``fresh_until`` on the cache's clock (0 = forever) and
``delta``, the seconds the value took to compute (for early recomputation)."""


class Envelope:
    """Encodes entries for one cache configuration (serializer and optional secret)."""

    __slots__ = ("_secret", "_serializer")

    def __init__(self, serializer: Serializer, secret: bytes | None) -> None:
        self._serializer = serializer
        self._secret = secret

    def encode(
        self, key: str, versions: bytes, value: Any, fresh_until: float, delta: float
    ) -> bytes:
        body = _MAGIC + _HEADER.pack(fresh_until, delta) + self._serializer.dumps(value)
        if self._secret is not None:
            body = self._sign(key, body) + body
        return versions + b"|" + body

    def decode(self, key: str, raw: bytes, versions: bytes) -> Entry | None:
        """Return the entry, or ``None`` when it was written under older versions."""
        stored, sep, body = raw.partition(b"|")
        if not sep:
            try:
                return (int(raw), 0.0, 0.0)
            except ValueError:
                raise SerializationError(
                    f"cache entry {key!r} was not written by kit-cache"
                ) from None
        if stored != versions:
            return None
        # a counter: "<versions>|=<int>". A signed entry can start with "=" too (its HMAC's
        # first byte, 1 time in 256), so only an all-digit body is a counter.
        if body[:1] == b"=" and body[1:].lstrip(b"-").isdigit():
            return (int(body[1:]), 0.0, 0.0)
        if self._secret is not None:
            signature, body = body[:_SIG_LEN], body[_SIG_LEN:]
            if not hmac.compare_digest(signature, self._sign(key, body)):
                raise SignatureError(
                    f"cache entry {key!r} failed HMAC verification: it was tampered with "
                    "or written with another secret; it is ignored"
                )
        if body[:1] != _MAGIC:
            raise SerializationError(
                f"cache entry {key!r} is not in kit-cache format (signed with a secret "
                "this cache does not have, or written by another program)"
            )
        fresh_until, delta = _HEADER.unpack_from(body, 1)
        return (self._serializer.loads(body[1 + _HEADER.size :]), fresh_until, delta)

    def _sign(self, key: str, body: bytes) -> bytes:
        assert self._secret is not None
        return hmac.new(self._secret, key.encode() + b"\x00" + body, hashlib.sha256).digest()
