"""The rule manager shared by :class:`~kit_netcore.Shield` (kernel maps) and
:class:`~kit_netcore.UserspaceShield` (engine tables): block and allow lists, CIDR
expansion onto 8-bit strides, rate rules, counters and source tracking.

How a CIDR is stored: a rule ``/L`` goes into ``nc_ranges`` (the list of rules) and is
expanded into the keys of length ``S = ceil(L/8)*8`` it covers (``2**(S-L)`` of them, at
most 256) in the list's net map. A key's value carries the longest covering rule of its
band (``S-7..S``) as ``origin_len`` and the latest expiry of all of them, so a lookup needs
one hash probe per stride in use. Single addresses (``/32``, ``/128``) go straight into the
exact map. Adding or removing a rule recomputes exactly the keys it covers.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from kit_netcore import _layout
from kit_netcore._addresses import (
    IPAddress,
    IPNetwork,
    Target,
    check_burst,
    check_ports,
    check_pps,
    check_ttl,
    parse_list_line,
    parse_target,
)
from kit_netcore._maps import MapBackend
from kit_netcore.exceptions import InvalidRule, ShieldFull

__all__ = ["RateRule", "Rule", "RuleSet", "SourceCount", "Stats"]

Action = Literal["allow", "block"]
_LIST_OF: dict[str, int] = {"allow": _layout.LIST_ALLOW, "block": _layout.LIST_BLOCK}


@dataclass(frozen=True, slots=True)
class Rule:
    """One allow or block rule as stored: the network, when it expires (Unix time, None =
    never) and how many packets (or requests) it matched."""

    action: Action
    network: IPNetwork
    expires_at: float | None
    hits: int


@dataclass(frozen=True, slots=True)
class RateRule:
    """A per-source rate limit: ``pps`` with bursts of ``burst``, on ``ports`` (None = all
    traffic). ``id`` is its slot; ``drops`` counts packets it dropped (when listed)."""

    id: int
    pps: float
    burst: int
    ports: tuple[int, ...] | None
    drops: int = 0


@dataclass(frozen=True, slots=True)
class Stats:
    """Counters summed over CPUs: packets and bytes per reason (``pass``, ``allow``,
    ``block``, ``rate``, ``malformed``, ``control``) and drops per rate rule id."""

    packets: dict[str, int]
    bytes: dict[str, int]
    rate_drops: dict[int, int] = field(default_factory=dict)

    #: malformed packets dropped (all of them with ``drop_malformed``, else none)
    malformed_dropped: int = 0

    @property
    def dropped(self) -> int:
        """Packets dropped, for any reason."""
        return self.packets["block"] + self.packets["rate"] + self.malformed_dropped

    @property
    def total(self) -> int:
        """Every packet (or request) seen."""
        return sum(self.packets.values())


@dataclass(frozen=True, slots=True)
class SourceCount:
    """Packets seen from one source, and how many of them were dropped."""

    address: IPAddress
    packets: int
    dropped: int


def _mono_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def _expires_ns(ttl: float | None) -> int:
    return 0 if ttl is None else _mono_ns() + int(ttl * 1e9)


def _stride(prefixlen: int) -> int:
    return max(8, (prefixlen + 7) // 8 * 8)


def _masked(family: int, addr: bytes, prefixlen: int) -> bytes:
    bits = 32 if family == 4 else 128
    value = int.from_bytes(addr[: bits // 8], "big")
    mask = ((1 << bits) - 1) ^ ((1 << (bits - prefixlen)) - 1) if prefixlen else 0
    packed = (value & mask).to_bytes(bits // 8, "big")
    return packed + bytes(16 - len(packed))


def _expanded(target: Target) -> Iterator[bytes]:
    """The 16-byte addresses of the stride keys a range covers."""
    stride = _stride(target.prefixlen)
    bits = 32 if target.family == 4 else 128
    base = int.from_bytes(target.addr[: bits // 8], "big")
    step = 1 << (bits - stride)
    for i in range(1 << (stride - target.prefixlen)):
        packed = (base + i * step).to_bytes(bits // 8, "big")
        yield packed + bytes(16 - len(packed))


def _first16(target: Target) -> range:
    """The values of the first 16 address bits a target covers."""
    p16 = int.from_bytes(target.addr[:2], "big")
    if target.prefixlen >= 16:
        return range(p16, p16 + 1)
    return range(p16, p16 + (1 << (16 - target.prefixlen)))


def _network(family: int, addr: bytes, prefixlen: int) -> IPNetwork:
    if family == 4:
        return ipaddress.IPv4Network((addr[:4], prefixlen))
    return ipaddress.IPv6Network((addr, prefixlen))


class RuleSet:
    """The rule API over a :class:`~kit_netcore._maps.MapBackend` (``self._maps``)."""

    _maps: MapBackend

    # ------------------------------------------------------------------ configuration

    def _config(self) -> list[int]:
        raw = self._maps.lookup(_layout.CONFIG, _layout.U32.pack(0))
        return list(_layout.CONFIG_FMT.unpack(raw or bytes(_layout.CONFIG_FMT.size)))

    def _write_config(self, config: list[int]) -> None:
        self._maps.update(_layout.CONFIG, _layout.U32.pack(0), _layout.CONFIG_FMT.pack(*config))

    def _set_flags(self, *, drop_malformed: bool, track_sources: bool) -> None:
        config = self._config()
        flags = config[0] & ~(_layout.F_DROP_MALFORMED | _layout.F_TRACK_SOURCES)
        if drop_malformed:
            flags |= _layout.F_DROP_MALFORMED
        if track_sources:
            flags |= _layout.F_TRACK_SOURCES
        config[0] = flags
        self._write_config(config)

    def _mark_prefilter(self, list_id: int, family: int, values: Iterable[range]) -> None:
        """Set the prefilter bits of the first-16-bit values given, before inserting."""
        slot = _layout.prefilter_slot(list_id, family)
        words: dict[int, int] = {}
        for span in values:
            for p16 in span:
                index = (slot << 10) | (p16 >> 6)
                words[index] = words.get(index, 0) | (1 << (p16 & 63))
        for index, bits in words.items():
            key = _layout.U32.pack(index)
            raw = self._maps.lookup(_layout.PREFILTER, key)
            current = _layout.U64.unpack(raw)[0] if raw else 0
            if current | bits != current:
                self._maps.update(_layout.PREFILTER, key, _layout.U64.pack(current | bits))

    def _set_mask_bits(self, list_id: int, family: int, bits: int) -> None:
        """Mark strides in use before inserting (a stale bit costs a probe, never a miss)."""
        field_index = _layout.LISTS[(list_id, family)][2]
        config = self._config()
        if config[field_index] & bits != bits:
            config[field_index] |= bits
            self._write_config(config)

    # ------------------------------------------------------------------ lists

    def block(self, target: object, *, ttl: float | None = None) -> Rule:
        """Drop everything from an address or CIDR range, for ``ttl`` seconds or for good.

        Example::

            >>> from kit_netcore import UserspaceShield
            >>> shield = UserspaceShield()
            >>> shield.block("198.51.100.0/24", ttl=600).network
            IPv4Network('198.51.100.0/24')
            >>> shield.check("198.51.100.9").reason
            'block'
        """
        return self._add("block", parse_target(target), check_ttl(ttl))

    def allow(self, target: object, *, ttl: float | None = None) -> Rule:
        """Never drop an address or range: the allow-list is checked before anything else.

        Example::

            >>> from kit_netcore import UserspaceShield
            >>> shield = UserspaceShield()
            >>> _ = shield.block("10.0.0.0/8"); _ = shield.allow("10.1.2.3")
            >>> shield.check("10.1.2.3").allowed, shield.check("10.9.9.9").allowed
            (True, False)
        """
        return self._add("allow", parse_target(target), check_ttl(ttl))

    def unblock(self, target: object) -> bool:
        """Remove a block rule given exactly as it was added; False if there was none."""
        return self._remove("block", parse_target(target))

    def disallow(self, target: object) -> bool:
        """Remove an allow rule given exactly as it was added; False if there was none."""
        return self._remove("allow", parse_target(target))

    def ban(self, address: object, ttl: float) -> None:
        """Block an address (or the network a limiter keys IPv6 clients by, such as a
        ``/64``) for ``ttl`` seconds: ``block`` as a plain ``(address, ttl)`` callable,
        for code that bans offenders. A rate limiter's hook usually gets its own key and
        decision, so wrap it: kit-auth's ``RateLimiter(on_exceeded=...)`` passes keys like
        ``"ip:198.51.100.7"``.

        Example::

            >>> from kit_netcore import UserspaceShield
            >>> shield = UserspaceShield()
            >>> shield.ban("203.0.113.7", 300)
            >>> shield.check("203.0.113.7").allowed
            False
            >>> def on_exceeded(key: str, decision: object) -> None:
            ...     shield.ban(key.removeprefix("ip:"), 300)
            >>> on_exceeded("ip:2001:db8:1:2::/64", None)
            >>> shield.check("2001:db8:1:2::99").reason
            'block'
        """
        self._add("block", parse_target(address, what="address"), check_ttl(ttl))

    def _add(self, action: Action, target: Target, ttl: float | None) -> Rule:
        list_id = _LIST_OF[action]
        exact_map, _, _ = _layout.LISTS[(list_id, target.family)]
        expires = _expires_ns(ttl)
        self._mark_prefilter(list_id, target.family, [_first16(target)])
        if target.prefixlen == target.network.max_prefixlen:
            self._set_mask_bits(list_id, target.family, 1)
            key = _layout.exact_key(target.family, target.addr)
            old = self._maps.lookup(exact_map, key)
            hits = _layout.ENTRY.unpack(old)[1] if old else 0
            self._maps.update(
                exact_map, key, _layout.ENTRY.pack(expires, hits, target.prefixlen, 0)
            )
        else:
            self._maps.update(
                _layout.RANGES,
                self._range_key(list_id, target),
                _layout.RANGE_VAL.pack(expires, time.time_ns()),
            )
            self._set_mask_bits(list_id, target.family, 1 << (_stride(target.prefixlen) // 8))
            self._refresh(list_id, target)
        return Rule(action, target.network, self._unix(expires), self._hits(list_id, target))

    def _remove(self, action: Action, target: Target) -> bool:
        list_id = _LIST_OF[action]
        exact_map, _, _ = _layout.LISTS[(list_id, target.family)]
        if target.prefixlen == target.network.max_prefixlen:
            return self._maps.delete(exact_map, _layout.exact_key(target.family, target.addr))
        if not self._maps.delete(_layout.RANGES, self._range_key(list_id, target)):
            return False
        self._refresh(list_id, target)
        return True

    @staticmethod
    def _range_key(list_id: int, target: Target) -> bytes:
        return _layout.RANGE_KEY.pack(list_id, target.family, target.prefixlen, target.addr)

    def _refresh(self, list_id: int, target: Target) -> None:
        """Recompute every stride key the range covers from the rules of its band."""
        _, net_map, _ = _layout.LISTS[(list_id, target.family)]
        stride = _stride(target.prefixlen)
        for addr in _expanded(target):
            key = _layout.net_key(target.family, stride, addr)
            covering: list[tuple[int, int]] = []  # (prefixlen, expires)
            for length in range(stride, stride - 8, -1):
                probe = _layout.RANGE_KEY.pack(
                    list_id, target.family, length, _masked(target.family, addr, length)
                )
                raw = self._maps.lookup(_layout.RANGES, probe)
                if raw is not None:
                    covering.append((length, _layout.RANGE_VAL.unpack(raw)[0]))
            if stride == 8:  # the first band also holds /0
                probe = _layout.RANGE_KEY.pack(list_id, target.family, 0, bytes(16))
                raw = self._maps.lookup(_layout.RANGES, probe)
                if raw is not None:
                    covering.append((0, _layout.RANGE_VAL.unpack(raw)[0]))
            if not covering:
                self._maps.delete(net_map, key)
                continue
            old = self._maps.lookup(net_map, key)
            hits = _layout.ENTRY.unpack(old)[1] if old else 0
            expiries = [e for _, e in covering]
            expires = 0 if 0 in expiries else max(expiries)
            origin = max(length for length, _ in covering)
            self._maps.update(net_map, key, _layout.ENTRY.pack(expires, hits, origin, 0))

    def _hits(self, list_id: int, target: Target) -> int:
        exact_map, net_map, _ = _layout.LISTS[(list_id, target.family)]
        if target.prefixlen == target.network.max_prefixlen:
            raw = self._maps.lookup(exact_map, _layout.exact_key(target.family, target.addr))
            return _layout.ENTRY.unpack(raw)[1] if raw else 0
        stride = _stride(target.prefixlen)
        total = 0
        for addr in _expanded(target):
            raw = self._maps.lookup(net_map, _layout.net_key(target.family, stride, addr))
            if raw:
                _, hits, origin, _ = _layout.ENTRY.unpack(raw)
                if origin == target.prefixlen:
                    total += hits
        return total

    @staticmethod
    def _unix(expires_ns: int) -> float | None:
        if not expires_ns:
            return None
        return time.time() + (expires_ns - _mono_ns()) / 1e9

    def load_list(
        self,
        source: str | os.PathLike[str] | Iterable[str],
        *,
        action: Action = "block",
        ttl: float | None = None,
    ) -> int:
        """Add every address and range of a list file (or an iterable of lines) in bulk:
        one batch update per map for single addresses. ``#`` and ``;`` start comments.
        Returns how many entries were loaded; an invalid line loads nothing.

        Example::

            >>> from kit_netcore import UserspaceShield
            >>> UserspaceShield().load_list(["192.0.2.1", "# scanners", "198.51.100.0/24"])
            2
        """
        if action not in _LIST_OF:
            raise InvalidRule(f"action must be 'block' or 'allow', not {action!r}.")
        list_id = _LIST_OF[action]
        expires = _expires_ns(check_ttl(ttl))
        if isinstance(source, str | os.PathLike):
            path = Path(source)
            try:
                lines: Iterable[str] = path.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise InvalidRule(f"cannot read the list {path}: {exc.strerror}.") from None
            origin = str(path)
        else:
            lines, origin = source, "<list>"
        exact: dict[int, tuple[list[bytes], list[bytes]]] = {4: ([], []), 6: ([], [])}
        ranges: list[Target] = []
        entry4 = _layout.ENTRY.pack(expires, 0, 32, 0)
        v4_keys, v4_values = exact[4]
        count = 0
        for number, line in enumerate(lines, 1):
            # fast path: a bare IPv4 address (most of any big list), no ipaddress object
            text = line.strip()
            if text and "/" not in text and "#" not in text and ";" not in text:
                try:
                    v4_keys.append(socket.inet_pton(socket.AF_INET, text))
                except (OSError, ValueError):
                    pass
                else:
                    v4_values.append(entry4)
                    count += 1
                    continue
            try:
                network = parse_list_line(line)
            except InvalidRule as exc:
                raise InvalidRule(f"{origin}:{number}: {exc}") from None
            if network is None:
                continue
            count += 1
            target = parse_target(network)
            if target.prefixlen == target.network.max_prefixlen:
                keys, values = exact[target.family]
                keys.append(_layout.exact_key(target.family, target.addr))
                values.append(_layout.ENTRY.pack(expires, 0, target.prefixlen, 0))
            else:
                ranges.append(target)
        for family, (keys, values) in exact.items():
            if keys:
                self._mark_prefilter(
                    list_id,
                    family,
                    (range(p, p + 1) for p in {int.from_bytes(k[:2], "big") for k in keys}),
                )
                self._set_mask_bits(list_id, family, 1)
                self._maps.update_batch(_layout.LISTS[(list_id, family)][0], keys, values)
        now_unix = time.time_ns()
        for family in (4, 6):
            spans = [_first16(t) for t in ranges if t.family == family]
            if spans:
                self._mark_prefilter(list_id, family, spans)
        for target in ranges:
            self._maps.update(
                _layout.RANGES,
                self._range_key(list_id, target),
                _layout.RANGE_VAL.pack(expires, now_unix),
            )
            self._set_mask_bits(list_id, target.family, 1 << (_stride(target.prefixlen) // 8))
            self._refresh(list_id, target)
        return count

    def rules(self) -> list[Rule]:
        """Every allow and block rule, with expiry and hit count (expired ones included
        until :meth:`gc` removes them).

        Example::

            >>> from kit_netcore import UserspaceShield
            >>> shield = UserspaceShield()
            >>> _ = shield.block("2001:db8::/32")
            >>> [(r.action, str(r.network), r.hits) for r in shield.rules()]
            [('block', '2001:db8::/32', 0)]
        """
        found: list[Rule] = []
        for (list_id, family), (exact_map, _, _) in _layout.LISTS.items():
            action: Action = "allow" if list_id == _layout.LIST_ALLOW else "block"
            for key in self._maps.keys(exact_map):
                raw = self._maps.lookup(exact_map, key)
                if raw is None:
                    continue
                expires, hits, _, _ = _layout.ENTRY.unpack(raw)
                addr = key + bytes(16 - len(key))
                network = _network(family, addr, 32 if family == 4 else 128)
                found.append(Rule(action, network, self._unix(expires), hits))
        for key in self._maps.keys(_layout.RANGES):
            raw = self._maps.lookup(_layout.RANGES, key)
            if raw is None:
                continue
            list_id, family, prefixlen, addr = _layout.RANGE_KEY.unpack(key)
            target = Target(family, prefixlen, addr, _network(family, addr, prefixlen))
            action = "allow" if list_id == _layout.LIST_ALLOW else "block"
            expires = _layout.RANGE_VAL.unpack(raw)[0]
            found.append(
                Rule(action, target.network, self._unix(expires), self._hits(list_id, target))
            )
        found.sort(key=lambda r: (r.action, r.network.version, r.network))
        return found

    def gc(self) -> int:
        """Remove expired rules (they already stopped matching); returns how many.

        Example::

            >>> from kit_netcore import UserspaceShield
            >>> UserspaceShield().gc()
            0
        """
        now = _mono_ns()
        removed = 0
        for exact_map, _, _ in _layout.LISTS.values():
            for key in self._maps.keys(exact_map):
                raw = self._maps.lookup(exact_map, key)
                if raw is not None:
                    expires = _layout.ENTRY.unpack(raw)[0]
                    if expires and expires <= now and self._maps.delete(exact_map, key):
                        removed += 1
        for key in self._maps.keys(_layout.RANGES):
            raw = self._maps.lookup(_layout.RANGES, key)
            if raw is None:
                continue
            expires = _layout.RANGE_VAL.unpack(raw)[0]
            if expires and expires <= now and self._maps.delete(_layout.RANGES, key):
                list_id, family, prefixlen, addr = _layout.RANGE_KEY.unpack(key)
                network = _network(family, addr, prefixlen)
                self._refresh(list_id, Target(family, prefixlen, addr, network))
                removed += 1
        return removed

    # ------------------------------------------------------------------ rate limits

    def rate_limit(
        self, *, pps: float, burst: int, ports: Iterable[int] | int | None = None
    ) -> RateRule:
        """Limit every source to ``pps`` packets per second with bursts of ``burst``, on
        the given TCP/UDP destination ports (None: all traffic, any protocol). A port has
        one rule: a new rule on it replaces the old one for that port; a new all-traffic
        rule replaces the previous all-traffic rule.

        Example::

            >>> from kit_netcore import UserspaceShield
            >>> shield = UserspaceShield()
            >>> rule = shield.rate_limit(pps=1, burst=2, ports=[443])
            >>> [shield.check("192.0.2.1", port=443).allowed for _ in range(3)]
            [True, True, False]
        """
        rate = check_pps(pps)
        size = check_burst(burst)
        chosen = check_ports(ports)
        slot = self._free_rate_slot()
        interval = max(1, round(1e9 / rate))
        self._maps.update(
            _layout.RATE_RULES,
            _layout.U32.pack(slot),
            _layout.RATE_RULE.pack(interval, interval * (size - 1), 0, 0),
        )
        if chosen is None:
            config = self._config()
            previous = config[1]
            config[1] = slot
            self._write_config(config)
            if previous:
                self._release_rate_slot(previous)
        else:
            for port in chosen:
                self._maps.update(_layout.PORT_RULE, _layout.U32.pack(port), _layout.U32.pack(slot))
        return RateRule(slot, rate, size, chosen)

    def _free_rate_slot(self) -> int:
        in_use = set(self._rate_slots_in_use())
        for slot in range(1, _layout.MAX_RATE_RULES):
            raw = self._maps.lookup(_layout.RATE_RULES, _layout.U32.pack(slot))
            if slot not in in_use and (raw is None or _layout.RATE_RULE.unpack(raw)[0] == 0):
                return slot
        raise ShieldFull(
            f"all {_layout.MAX_RATE_RULES - 1} rate-limit rules are in use: remove one "
            "(remove_rate_limit) or cover more ports with one rule."
        )

    def _rate_slots_in_use(self) -> Iterator[int]:
        config = self._config()
        if config[1]:
            yield config[1]

    def _release_rate_slot(self, slot: int) -> None:
        self._maps.update(
            _layout.RATE_RULES, _layout.U32.pack(slot), _layout.RATE_RULE.pack(0, 0, 0, 0)
        )

    def remove_rate_limit(self, rule: RateRule) -> None:
        """Remove a rate rule returned by :meth:`rate_limit`."""
        if rule.ports is None:
            config = self._config()
            if config[1] == rule.id:
                config[1] = 0
                self._write_config(config)
        else:
            for port in rule.ports:
                key = _layout.U32.pack(port)
                raw = self._maps.lookup(_layout.PORT_RULE, key)
                if raw is not None and _layout.U32.unpack(raw)[0] == rule.id:
                    self._maps.update(_layout.PORT_RULE, key, _layout.U32.pack(0))
        self._release_rate_slot(rule.id)

    def rate_limits(self) -> list[RateRule]:
        """Every rate rule in use, with the packets it dropped.

        Example::

            >>> from kit_netcore import UserspaceShield
            >>> shield = UserspaceShield()
            >>> _ = shield.rate_limit(pps=50, burst=100, ports=[80, 443])
            >>> shield.rate_limits()
            [RateRule(id=1, pps=50.0, burst=100, ports=(80, 443), drops=0)]
        """
        ports: dict[int, list[int]] = {}
        for port in range(1, 65536):
            raw = self._maps.lookup(_layout.PORT_RULE, _layout.U32.pack(port))
            slot = _layout.U32.unpack(raw)[0] if raw else 0
            if slot:
                ports.setdefault(slot, []).append(port)
        all_rule = self._config()[1]
        found: list[RateRule] = []
        for slot in range(1, _layout.MAX_RATE_RULES):
            raw = self._maps.lookup(_layout.RATE_RULES, _layout.U32.pack(slot))
            if raw is None:
                continue
            interval, tolerance, drops, _ = _layout.RATE_RULE.unpack(raw)
            if not interval or (slot != all_rule and slot not in ports):
                continue
            found.append(
                RateRule(
                    slot,
                    round(1e9 / interval, 6),
                    tolerance // interval + 1,
                    None if slot == all_rule else tuple(ports[slot]),
                    drops,
                )
            )
        return found

    def clear_rate_limits(self) -> None:
        """Remove every rate rule."""
        config = self._config()
        config[1] = 0
        self._write_config(config)
        zero = _layout.U32.pack(0)
        for port in range(65536):
            key = _layout.U32.pack(port)
            raw = self._maps.lookup(_layout.PORT_RULE, key)
            if raw is not None and raw != zero:
                self._maps.update(_layout.PORT_RULE, key, zero)
        for slot in range(1, _layout.MAX_RATE_RULES):
            self._release_rate_slot(slot)

    # ------------------------------------------------------------------ counters

    def stats(self) -> Stats:
        """Packets and bytes per reason, summed over CPUs, and drops per rate rule.

        Example::

            >>> from kit_netcore import UserspaceShield
            >>> shield = UserspaceShield()
            >>> _ = shield.check("192.0.2.1")
            >>> shield.stats().packets["pass"]
            1
        """
        packets: dict[str, int] = {}
        octets: dict[str, int] = {}
        for index, reason in enumerate(_layout.REASONS):
            raw = self._maps.lookup(_layout.STATS, _layout.U32.pack(index)) or b""
            total_packets = total_bytes = 0
            for offset in range(0, len(raw), _layout.COUNTER.size):
                p, b = _layout.COUNTER.unpack_from(raw, offset)
                total_packets += p
                total_bytes += b
            packets[reason] = total_packets
            octets[reason] = total_bytes
        drops: dict[int, int] = {}
        for slot in range(1, _layout.MAX_RATE_RULES):
            rule_raw = self._maps.lookup(_layout.RATE_RULES, _layout.U32.pack(slot))
            if rule_raw is not None:
                interval, _, dropped, _ = _layout.RATE_RULE.unpack(rule_raw)
                if interval:
                    drops[slot] = dropped
        flags = self._config()[0]
        malformed_dropped = packets["malformed"] if flags & _layout.F_DROP_MALFORMED else 0
        return Stats(packets, octets, drops, malformed_dropped)

    def top_sources(self, n: int = 10) -> list[SourceCount]:
        """The ``n`` sources that sent the most packets (needs ``track_sources=True``).

        Example::

            >>> from kit_netcore import UserspaceShield
            >>> shield = UserspaceShield(track_sources=True)
            >>> _ = [shield.check("192.0.2.1") for _ in range(3)]
            >>> shield.top_sources(1)
            [SourceCount(address=IPv4Address('192.0.2.1'), packets=3, dropped=0)]
        """
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise InvalidRule(f"n must be a positive integer, not {n!r}.")
        counts: list[SourceCount] = []
        for key in self._maps.keys(_layout.SOURCES):
            raw = self._maps.lookup(_layout.SOURCES, key)
            if raw is None:
                continue
            addr, family = _layout.SOURCE_KEY.unpack(key)
            packets = dropped = 0
            for offset in range(0, len(raw), _layout.SOURCE_VAL.size):
                p, d = _layout.SOURCE_VAL.unpack_from(raw, offset)
                packets += p
                dropped += d
            address: IPAddress = (
                ipaddress.IPv4Address(addr[:4]) if family == 4 else ipaddress.IPv6Address(addr)
            )
            counts.append(SourceCount(address, packets, dropped))
        counts.sort(key=lambda c: (-c.packets, -c.dropped, c.address.version, c.address))
        return counts[:n]
