"""The userspace engine: the shield's parser and decision (the same C headers as the XDP
program) over in-process tables, for machines without XDP rights and for per-request
checks in WSGI/ASGI middleware.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from kit_netcore import _layout
from kit_netcore._addresses import parse_address
from kit_netcore._health import check_timeout
from kit_netcore._maps import EngineMaps
from kit_netcore._native import ffi, lib
from kit_netcore._rules import RuleSet
from kit_netcore.exceptions import InvalidRule

__all__ = ["Decision", "UserspaceShield"]

_PROTOCOLS = {None: 0, "tcp": 6, "udp": 17}
_MAPPED_PREFIX = bytes(10) + b"\xff\xff"


@dataclass(frozen=True, slots=True)
class Decision:
    """What the shield decided for one request: ``allowed``, the ``reason`` (``pass``,
    ``allow``, ``block``, ``rate``) and, when over a rate limit, ``retry_after`` seconds."""

    allowed: bool
    reason: str
    retry_after: float | None = None


_ALLOWED = tuple(Decision(True, reason) for reason in _layout.REASONS)


def _pack_address(address: str) -> tuple[int, bytes]:
    """(family, packed) for an address string: inet_pton first (fast), ipaddress for the
    rest (IPv4-mapped IPv6, zones) and for the error message."""
    try:
        return 4, socket.inet_pton(socket.AF_INET, address)
    except (OSError, TypeError):
        pass
    try:
        packed = socket.inet_pton(socket.AF_INET6, address)
    except (OSError, TypeError):
        target = parse_address(address)
        return target.family, target.addr[:4] if target.family == 4 else target.addr
    if packed.startswith(_MAPPED_PREFIX):
        return 4, packed[12:]
    return 6, packed


class UserspaceShield(RuleSet):
    """The shield's rules and decision in this process: no root, no kernel program.

    Same rule API as :class:`~kit_netcore.Shield` (``block``, ``allow``, ``rate_limit``,
    ``load_list``, ``stats``, ...), plus :meth:`check` for one request. Thread-safe.

    Example::

        >>> from kit_netcore import UserspaceShield
        >>> shield = UserspaceShield()
        >>> _ = shield.block("203.0.113.0/24")
        >>> shield.check("203.0.113.50", port=443)
        Decision(allowed=False, reason='block', retry_after=None)
        >>> shield.check("192.0.2.1", port=443)
        Decision(allowed=True, reason='pass', retry_after=None)
    """

    def __init__(self, *, drop_malformed: bool = False, track_sources: bool = False) -> None:
        self._maps = EngineMaps()
        self._engine: Any = self._maps.engine
        self._local = threading.local()  # one int* per thread for the reason
        self._set_flags(drop_malformed=drop_malformed, track_sources=track_sources)

    def ping(self, timeout: float = 2.0) -> bool:
        """Health check: always True (the rules live in this process; nothing to reach).

        Example::

            >>> from kit_netcore import UserspaceShield
            >>> UserspaceShield().ping()
            True
        """
        check_timeout(timeout)
        return True

    def check(
        self, address: str, *, port: int | None = None, proto: str | None = "tcp"
    ) -> Decision:
        """Decide for a request from ``address`` to ``port`` (``proto`` "tcp", "udp" or
        None), and count it like a packet.

        Example::

            >>> from kit_netcore import UserspaceShield
            >>> UserspaceShield().check("2001:db8::1", port=80).allowed
            True
        """
        family, packed = _pack_address(address)
        protocol = _PROTOCOLS.get(proto, -1)
        if protocol < 0:
            raise InvalidRule(f"proto must be 'tcp', 'udp' or None, not {proto!r}.")
        dport = 0 if port is None else port
        if dport.__class__ is not int or not 0 <= dport <= 65535:
            raise InvalidRule(f"port must be an integer 0..65535 or None, not {port!r}.")
        reason_out = self._local.__dict__.get("reason")
        if reason_out is None:
            reason_out = self._local.reason = ffi.new("int *")
        verdict = lib.nc_engine_check(self._engine, family, packed, protocol, dport, 0, reason_out)
        if verdict == _layout.XDP_PASS:
            return _ALLOWED[int(reason_out[0])]
        reason = _layout.REASONS[int(reason_out[0])]
        if reason != "rate":
            return Decision(False, reason)
        return Decision(False, reason, self._retry_after(family, packed, protocol, dport))

    def _retry_after(self, family: int, packed: bytes, protocol: int, dport: int) -> float | None:
        now = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        rule = 0
        if protocol in (6, 17) and dport:
            raw = self._maps.lookup(_layout.PORT_RULE, _layout.U32.pack(dport))
            rule = _layout.U32.unpack(raw)[0] if raw else 0
        if not rule:
            rule = self._config()[1]
        raw_rule = self._maps.lookup(_layout.RATE_RULES, _layout.U32.pack(rule))
        addr = packed + bytes(16 - len(packed))
        raw_tat = self._maps.lookup(_layout.BUCKETS, _layout.BUCKET_KEY.pack(addr, family, rule))
        if raw_rule is None or raw_tat is None:
            return None
        tolerance = _layout.RATE_RULE.unpack(raw_rule)[1]
        tat: int = _layout.U64.unpack(raw_tat)[0]
        return max(0.0, (tat - int(tolerance) - now) / 1e9)

    def run_frame(self, frame: bytes) -> int:
        """Run one Ethernet frame through the parser and decision: the XDP verdict
        (1 drop, 2 pass), counted like the kernel program counts it."""
        now = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        return int(lib.nc_engine_run(self._engine, frame, len(frame), now))
