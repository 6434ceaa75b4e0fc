"""kit-netcore: the in-process shield the middleware asks about every request, plus the
kernel (XDP) shield when ``NETCORE_IFACE`` names an interface a privileged
``kit-netcore attach`` prepared. Blocks and bans go to both; only the userspace shield
answers per-request checks (the kernel sees packets, not requests)."""

from __future__ import annotations

from typing import Any

import structlog

from kit_auth import Decision as RateDecision
from kit_netcore import Rule, Shield, UserspaceShield

__all__ = ["Shields"]

log = structlog.get_logger("app.shields")


class Shields:
    def __init__(self, iface: str | None = None) -> None:
        self.userspace = UserspaceShield()
        self.kernel: Shield | None = Shield.open(iface) if iface else None

    def block(self, target: str, ttl: float | None) -> Rule:
        """Block an address or CIDR (``InvalidRule``, a 422, for a bad one)."""
        rule = self.userspace.block(target, ttl=ttl)
        if self.kernel is not None:
            self.kernel.block(target, ttl=ttl)
        return rule

    def unblock(self, target: str) -> bool:
        removed = self.userspace.unblock(target)
        if self.kernel is not None:
            removed = self.kernel.unblock(target) or removed
        return removed

    def rules(self) -> list[Rule]:
        return self.userspace.rules()

    def ban_rate_offender(self, key: str, decision: RateDecision, *, ttl: float) -> None:
        """kit-auth's ``RateLimiter(on_exceeded=...)``: ban the address of a key made by
        ``by_ip`` (``"ip:203.0.113.7"``). kit-auth logs (never raises) what this raises."""
        address = key.removeprefix("ip:")
        self.userspace.ban(address, ttl)
        if self.kernel is not None:
            self.kernel.ban(address, ttl)
        log.warning("client_banned", address=address, ttl=ttl, policy=decision.policy)

    def ping(self) -> bool | None:
        ping: Any = getattr(self.kernel or self.userspace, "ping", None)
        return None if ping is None else bool(ping())

    def close(self) -> None:
        if self.kernel is not None:
            self.kernel.close()
