"""A deterministic corpus of Ethernet frames with the parse each one must give.

Every frame is built by hand with ``struct`` (no scapy) from a seeded ``random.Random``, so
the corpus is the same on every run and every machine. Frames built on purpose carry the
expected parse they were built for, and that expectation is checked against
:func:`reference_parse`, a plain-Python statement of the parser's rules; frames that are
random (garbage, mutations, truncations) take their expectation from the reference alone.

The parser's rules (``bpf/nc_parse.h``), as the reference implements them:

- Ethernet: 14 bytes or the frame is malformed. EtherType 0x8100 / 0x88A8 is a VLAN tag
  (4 bytes); up to two tags, a third tag or a truncated tag is malformed.
- 0x0800 is IPv4, 0x86DD is IPv6, anything else is ``family=0, control=1``.
- IPv4: 20 bytes, version 4, IHL >= 5, IHL*4 bytes present, IHL*4 <= total_length <= the
  bytes from the IP header on (Ethernet padding is fine). A fragment offset other than 0
  gives ``fragment=1`` and the protocol, nothing else. Otherwise the L4 header, bounded by
  total_length: TCP needs 20 bytes and 5 <= doff with doff*4 within the L4 bytes, UDP and
  ICMP need 8. TCP/UDP give the ports; other protocols only the protocol number.
- IPv6: 40 bytes, version 6, 40 + payload_length within the frame. At most 6 extension
  headers (0, 43, 60: (len+1)*8 bytes; 51 AH: (len+2)*4 bytes; 44 fragment: 8 bytes, a
  non-zero offset stops with ``fragment=1``), each wholly inside the payload; a 7th is
  malformed. 59 stops with proto 59. TCP/UDP as for IPv4, ICMPv6 (58) needs 8 bytes and
  its types 133-137 (neighbour discovery) give ``control=1``. Protocol 1 in IPv6 and 58 in
  IPv4 are "other" protocols (no length check).

Source addresses come from small pools (``V4_*``/``V6_*`` below) so that the rules the
differential test loads are hit often.
"""

from __future__ import annotations

import functools
import ipaddress
import random
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

__all__ = [
    "V4_ALLOW_NET",
    "V4_ALLOW_SINGLES",
    "V4_BLOCK_NETS",
    "V4_BLOCK_SINGLES",
    "V4_EDGES",
    "V4_EXPIRED",
    "V4_UNRULED",
    "V6_ALLOW_SINGLES",
    "V6_BLOCK_NETS",
    "V6_BLOCK_SINGLES",
    "V6_EXPIRED",
    "V6_UNRULED",
    "ExpectedParse",
    "Frame",
    "corpus",
    "reference_parse",
]

SEED = 0x6B6974_4E43  # "kitNC"

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
ETH_P_ARP = 0x0806
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8
VLAN_TPIDS = (ETH_P_8021Q, ETH_P_8021AD)

IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_GRE = 47
IPPROTO_ESP = 50
IPPROTO_AH = 51
IPPROTO_ICMPV6 = 58
IPPROTO_NONE = 59
IPPROTO_SCTP = 132
IPV6_HOPOPTS = 0
IPV6_ROUTING = 43
IPV6_FRAGMENT = 44
IPV6_DSTOPTS = 60
IPV6_EXT = (IPV6_HOPOPTS, IPV6_ROUTING, IPV6_DSTOPTS, IPPROTO_AH, IPV6_FRAGMENT)
MAX_VLAN = 2
MAX_EXTHDR = 6
ND_TYPES = range(133, 138)

# ---------------------------------------------------------------------------- address pools
# The differential test loads rules over these; the corpus draws its sources from them.
V4_ALLOW_NET = ipaddress.IPv4Network("192.0.2.0/24")
V4_ALLOW_SINGLES = tuple(ipaddress.IPv4Address(a) for a in ("198.51.100.7", "198.51.100.8"))
V4_BLOCK_SINGLES = tuple(
    ipaddress.IPv4Address(a) for a in ("203.0.113.7", "203.0.113.9", "198.51.100.200")
)
V4_BLOCK_NETS = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "10.0.0.0/7",  # 10.x and 11.x: expanded onto 2 /8 keys
        "172.16.0.0/23",  # 2 /24 keys
        "100.64.0.0/31",  # 2 /32 keys
        "128.0.0.0/1",  # the /0-ish edge: 128 /8 keys
        "224.0.0.0/3",  # inside the /1: 32 /8 keys expanded twice
        "192.0.2.128/25",  # inside the allowed /24: allow must win
    )
)
V4_EXPIRED = ipaddress.IPv4Address("100.64.0.50")  # blocked with a tiny ttl, then expired
V4_UNRULED = tuple(
    ipaddress.IPv4Address(a)
    for a in ("1.1.1.1", "9.9.9.9", "100.64.0.2", "12.0.0.1", "127.255.255.255", "0.0.0.0")
)
V4_EDGES = tuple(  # just inside or just outside a range
    ipaddress.IPv4Address(a)
    for a in ("172.16.2.1", "203.0.113.8", "128.0.0.0", "255.255.255.255", "9.255.255.255")
)

V6_ALLOW_SINGLES = tuple(ipaddress.IPv6Address(a) for a in ("2001:db8:aaaa::1",))
V6_BLOCK_SINGLES = tuple(ipaddress.IPv6Address(a) for a in ("2001:db8:ffff::7", "2001:db8:ffff::9"))
V6_BLOCK_NETS = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "2a00:1450::/32",
        "2001:db8:2::/47",  # 2001:db8:2:: and 2001:db8:3::
        "2001:db8:1::/64",
        "fd00::/127",
        "4000::/2",  # the wide edge: 64 /8 keys
    )
)
V6_EXPIRED = ipaddress.IPv6Address("2001:db8:ffff::50")
V6_UNRULED = tuple(
    ipaddress.IPv6Address(a)
    for a in ("2001:db8:ffff::100", "fe80::1", "fd00::2", "2001:db8:4::1", "2a00:1451::1")
)


# ---------------------------------------------------------------------------- data model
@dataclass(frozen=True)
class ExpectedParse:
    """What ``nc_parse`` must fill in; when ``malformed`` nothing else is specified."""

    family: int = 0
    proto: int = 0
    malformed: bool = False
    control: bool = False
    has_ports: bool = False
    fragment: bool = False
    sport: int = 0
    dport: int = 0
    src: bytes = bytes(16)  # network order, IPv4 in the first 4 bytes


MALFORMED = ExpectedParse(malformed=True)
NON_IP = ExpectedParse(family=0, control=True)


@dataclass(frozen=True)
class Frame:
    """One Ethernet frame, the parse it must give and the group it belongs to."""

    data: bytes
    expected: ExpectedParse
    kind: str = field(default="")


# ---------------------------------------------------------------------------- reference
def _be16(data: bytes, off: int) -> int:
    value: int = struct.unpack_from(">H", data, off)[0]
    return value


def reference_parse(data: bytes) -> ExpectedParse:
    """The parser's rules in plain Python (see the module docstring)."""
    n = len(data)
    if n < 14:
        return MALFORMED
    etype = _be16(data, 12)
    off = 14
    tags = 0
    while etype in VLAN_TPIDS:
        if tags == MAX_VLAN or off + 4 > n:
            return MALFORMED
        etype = _be16(data, off + 2)
        off += 4
        tags += 1
    if etype == ETH_P_IP:
        return _reference_ipv4(data, off)
    if etype == ETH_P_IPV6:
        return _reference_ipv6(data, off)
    return NON_IP


def _reference_ipv4(data: bytes, off: int) -> ExpectedParse:
    avail = len(data) - off
    if avail < 20:
        return MALFORMED
    version, ihl = data[off] >> 4, data[off] & 0x0F
    if version != 4 or ihl < 5:
        return MALFORMED
    hlen = ihl * 4
    if hlen > avail:
        return MALFORMED
    total = _be16(data, off + 2)
    if total < hlen or total > avail:
        return MALFORMED
    src = data[off + 12 : off + 16] + bytes(12)
    proto = data[off + 9]
    if _be16(data, off + 6) & 0x1FFF:
        return ExpectedParse(family=4, proto=proto, fragment=True, src=src)
    return _reference_l4(data, 4, proto, off + hlen, total - hlen, src)


def _reference_ipv6(data: bytes, off: int) -> ExpectedParse:
    avail = len(data) - off
    if avail < 40:
        return MALFORMED
    if data[off] >> 4 != 6:
        return MALFORMED
    plen = _be16(data, off + 4)
    if 40 + plen > avail:
        return MALFORMED
    src = data[off + 8 : off + 24]
    nh = data[off + 6]
    cur = off + 40
    end = cur + plen
    count = 0
    while nh in IPV6_EXT:
        if count == MAX_EXTHDR:
            return MALFORMED
        count += 1
        if nh == IPV6_FRAGMENT:
            if cur + 8 > end:
                return MALFORMED
            nxt = data[cur]
            if _be16(data, cur + 2) >> 3:
                return ExpectedParse(family=6, proto=nxt, fragment=True, src=src)
            nh = nxt
            cur += 8
            continue
        if cur + 2 > end:
            return MALFORMED
        length = (data[cur + 1] + 2) * 4 if nh == IPPROTO_AH else (data[cur + 1] + 1) * 8
        if cur + length > end:
            return MALFORMED
        nh = data[cur]
        cur += length
    if nh == IPPROTO_NONE:
        return ExpectedParse(family=6, proto=nh, src=src)
    return _reference_l4(data, 6, nh, cur, end - cur, src)


def _reference_l4(
    data: bytes, family: int, proto: int, off: int, remaining: int, src: bytes
) -> ExpectedParse:
    icmp = IPPROTO_ICMP if family == 4 else IPPROTO_ICMPV6
    if proto == IPPROTO_TCP:
        if remaining < 20:
            return MALFORMED
        doff = data[off + 12] >> 4
        if doff < 5 or doff * 4 > remaining:
            return MALFORMED
    elif proto in (IPPROTO_UDP, icmp) and remaining < 8:
        return MALFORMED
    if proto in (IPPROTO_TCP, IPPROTO_UDP):
        sport, dport = struct.unpack_from(">HH", data, off)
        return ExpectedParse(
            family=family, proto=proto, has_ports=True, sport=sport, dport=dport, src=src
        )
    control = proto == IPPROTO_ICMPV6 and family == 6 and data[off] in ND_TYPES
    return ExpectedParse(family=family, proto=proto, control=control, src=src)


# ---------------------------------------------------------------------------- builders
def _mac(rng: random.Random) -> bytes:
    return bytes([rng.randrange(256) & 0xFE | 0x02]) + rng.randbytes(5)


def eth(rng: random.Random, etype: int, tags: Sequence[int] = (), tci: int | None = None) -> bytes:
    """An Ethernet header (with VLAN tags given by their TPIDs) ending in ``etype``."""
    out = _mac(rng) + _mac(rng)
    for tpid in tags:
        out += struct.pack(">HH", tpid, rng.randrange(1, 4095) if tci is None else tci)
    return out + struct.pack(">H", etype)


def _checksum(header: bytes) -> int:
    if len(header) % 2:
        header += b"\0"
    total: int = sum(struct.unpack(f">{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4(
    rng: random.Random,
    src: bytes,
    proto: int,
    payload: bytes,
    *,
    ihl: int = 5,
    frag: int = 0,
    more_fragments: bool = False,
    total_length: int | None = None,
    version: int = 4,
    options: bytes | None = None,
) -> bytes:
    """An IPv4 header (``ihl`` words, random options) followed by ``payload``."""
    if options is None:
        options = _ipv4_options(rng, (ihl - 5) * 4) if ihl > 5 else b""
    total = 4 * ihl + len(payload) if total_length is None else total_length
    flags = (0x2000 if more_fragments else 0) | (frag & 0x1FFF)
    if not frag and not more_fragments and rng.random() < 0.5:
        flags |= 0x4000  # DF
    dst = bytes([192, 168, rng.randrange(256), rng.randrange(1, 255)])
    header = struct.pack(
        ">BBHHHBBH4s4s",
        (version << 4) | (ihl & 0x0F),
        rng.randrange(256) & 0xFC,
        total & 0xFFFF,
        rng.randrange(65536),
        flags,
        rng.randrange(1, 256),
        proto,
        0,
        src,
        dst,
    )
    header += options
    header = header[:10] + struct.pack(">H", _checksum(header)) + header[12:]
    return header + payload


def _ipv4_options(rng: random.Random, size: int) -> bytes:
    """Plausible options: NOPs, a record-route-ish block, end-of-list padding."""
    out = b""
    while len(out) < size:
        room = size - len(out)
        choice = rng.random()
        if choice < 0.3 or room < 4:
            out += b"\x01"  # NOP
        elif choice < 0.7:
            length = min(room, 4 * rng.randrange(1, 6) + 3)
            out += bytes([7, length, 4]) + rng.randbytes(length - 3)  # record route
        else:
            out += b"\x00" * room  # end of list, padding
    return out[:size]


def ipv6(
    rng: random.Random,
    src: bytes,
    nh: int,
    payload: bytes,
    *,
    payload_length: int | None = None,
    version: int = 6,
) -> bytes:
    """An IPv6 header followed by ``payload`` (extension headers included)."""
    plen = len(payload) if payload_length is None else payload_length
    word = (version << 28) | (rng.randrange(256) << 20) | rng.randrange(1 << 20)
    dst = bytes.fromhex("20010db8cafe0000") + rng.randbytes(8)
    return struct.pack(">IHBB16s16s", word, plen & 0xFFFF, nh, rng.randrange(1, 256), src, dst) + (
        payload
    )


def ext_header(rng: random.Random, kind: int, nh: int, *, size_units: int | None = None) -> bytes:
    """One IPv6 extension header of type ``kind`` whose next header is ``nh``."""
    if kind == IPV6_FRAGMENT:
        raise ValueError("use frag_header for fragment headers")
    if kind == IPPROTO_AH:
        units = rng.choice((1, 2, 4)) if size_units is None else size_units  # (units+2)*4 bytes
        return (
            bytes([nh, units, 0, 0])
            + rng.randbytes(8)  # SPI, sequence number
            + rng.randbytes((units + 2) * 4 - 12)
        )
    units = rng.choice((0, 0, 0, 1, 2)) if size_units is None else size_units  # (units+1)*8 bytes
    body = rng.randbytes((units + 1) * 8 - 2)
    if kind == IPV6_ROUTING:
        body = bytes([rng.choice((0, 2, 3, 4)), rng.randrange(4)]) + body[2:]
    elif len(body) - 2 <= 255:  # a PadN option filling the rest
        body = bytes([1, len(body) - 2]) + bytes(len(body) - 2)
    else:  # Pad1 options
        body = bytes(len(body))
    return bytes([nh, units]) + body


def frag_header(rng: random.Random, nh: int, offset: int, more: bool) -> bytes:
    """An IPv6 fragment header: offset in 8-byte units."""
    return struct.pack(">BBHI", nh, 0, (offset << 3) | (1 if more else 0), rng.randrange(1 << 32))


def tcp(
    rng: random.Random,
    sport: int,
    dport: int,
    *,
    doff: int = 5,
    payload: bytes = b"",
) -> bytes:
    """A TCP header of ``doff`` words (NOP options) followed by ``payload``."""
    flags = rng.choice((0x02, 0x10, 0x18, 0x12, 0x11, 0x04))
    header = struct.pack(
        ">HHIIBBHHH",
        sport,
        dport,
        rng.randrange(1 << 32),
        rng.randrange(1 << 32),
        (doff & 0x0F) << 4,
        flags,
        rng.randrange(65536),
        0,
        0,
    )
    return header + b"\x01" * max(0, doff * 4 - 20) + payload


def udp(rng: random.Random, sport: int, dport: int, payload: bytes = b"") -> bytes:
    """A UDP header followed by ``payload``."""
    return struct.pack(">HHHH", sport, dport, 8 + len(payload), rng.randrange(65536)) + payload


def icmp(rng: random.Random, icmp_type: int, code: int = 0, payload: bytes = b"") -> bytes:
    """An ICMP or ICMPv6 header (8 bytes) followed by ``payload``."""
    return struct.pack(">BBHI", icmp_type, code, 0, rng.randrange(1 << 32)) + payload


def arp(rng: random.Random) -> bytes:
    """An ARP request for IPv4 over Ethernet."""
    return struct.pack(
        ">HHBBH6s4s6s4s",
        1,
        ETH_P_IP,
        6,
        4,
        rng.choice((1, 2)),
        _mac(rng),
        bytes([192, 0, 2, rng.randrange(1, 255)]),
        bytes(6),
        bytes([192, 0, 2, rng.randrange(1, 255)]),
    )


def _pad(frame: bytes, rng: random.Random) -> bytes:
    """Ethernet padding up to 60 bytes, plus sometimes a few extra trailing bytes."""
    if len(frame) < 60:
        frame += bytes(60 - len(frame))
    if rng.random() < 0.1:
        frame += rng.randbytes(rng.randrange(1, 16))
    return frame


# ---------------------------------------------------------------------------- sources
def _v4_source(rng: random.Random) -> bytes:
    pick = rng.random()
    if pick < 0.25:
        addr = V4_ALLOW_NET[rng.randrange(256)]
    elif pick < 0.33:
        addr = rng.choice(V4_ALLOW_SINGLES)
    elif pick < 0.45:
        addr = rng.choice(V4_BLOCK_SINGLES)
    elif pick < 0.65:
        net = rng.choice(V4_BLOCK_NETS)
        addr = net[rng.randrange(net.num_addresses)]
    elif pick < 0.70:
        addr = V4_EXPIRED
    elif pick < 0.75:
        addr = rng.choice(V4_EDGES)
    else:
        addr = rng.choice(V4_UNRULED)
    return addr.packed


def _v6_source(rng: random.Random) -> bytes:
    pick = rng.random()
    if pick < 0.1:
        addr = rng.choice(V6_ALLOW_SINGLES)
    elif pick < 0.25:
        addr = rng.choice(V6_BLOCK_SINGLES)
    elif pick < 0.55:
        net = rng.choice(V6_BLOCK_NETS)
        if net.num_addresses <= 2:
            addr = net[rng.randrange(net.num_addresses)]
        else:  # first, last or a random host
            addr = rng.choice(
                (
                    net[0],
                    net[-1],
                    net[rng.randrange(1 << 16)],
                    ipaddress.IPv6Address(
                        int(net.network_address) | rng.randrange(net.num_addresses)
                    ),
                )
            )
    elif pick < 0.6:
        addr = V6_EXPIRED
    else:
        addr = rng.choice(V6_UNRULED)
    return addr.packed


_PORTS = (53, 443, 80, 22, 8080, 123, 0, 65535, 1024, 5353)


def _port(rng: random.Random) -> int:
    return rng.choice(_PORTS) if rng.random() < 0.8 else rng.randrange(65536)


# ---------------------------------------------------------------------------- generators
Gen = Callable[[random.Random], Iterable[Frame]]


class CorpusError(AssertionError):
    """A built frame's intended parse disagrees with the reference: a corpus bug."""


def _frame(data: bytes, expected: ExpectedParse, kind: str) -> Frame:
    reference = reference_parse(data)
    if expected.malformed != reference.malformed or (
        not expected.malformed and expected != reference
    ):
        raise CorpusError(f"{kind}: built for {expected}, reference says {reference}: {data.hex()}")
    return Frame(data, expected, kind)


def _l4_v4(rng: random.Random, proto: int) -> tuple[bytes, ExpectedParse]:
    """A random L4 payload for ``proto`` and the L4 part of the expected parse."""
    if proto == IPPROTO_TCP:
        sport, dport = rng.randrange(1024, 65536), _port(rng)
        doff = rng.choice((5, 5, 5, 6, 8, 10, 15))
        payload = tcp(rng, sport, dport, doff=doff, payload=rng.randbytes(rng.randrange(0, 64)))
        return payload, ExpectedParse(proto=proto, has_ports=True, sport=sport, dport=dport)
    if proto == IPPROTO_UDP:
        sport, dport = _port(rng), _port(rng)
        payload = udp(rng, sport, dport, rng.randbytes(rng.randrange(0, 64)))
        return payload, ExpectedParse(proto=proto, has_ports=True, sport=sport, dport=dport)
    if proto == IPPROTO_ICMP:
        payload = icmp(rng, rng.choice((0, 3, 8, 11)), payload=rng.randbytes(rng.randrange(32)))
        return payload, ExpectedParse(proto=proto)
    # other protocols: any payload, even empty or shorter than their header
    return rng.randbytes(rng.randrange(0, 40)), ExpectedParse(proto=proto)


_V4_PROTOS = (
    IPPROTO_TCP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    IPPROTO_UDP,
    IPPROTO_ICMP,
    IPPROTO_GRE,
    IPPROTO_ESP,
    IPPROTO_SCTP,
    IPPROTO_ICMPV6,  # "other" in IPv4
    0,
    255,
)


def _tags(rng: random.Random, weight: float = 0.2) -> tuple[int, ...]:
    if rng.random() >= weight:
        return ()
    return tuple(rng.choice(VLAN_TPIDS) for _ in range(rng.choice((1, 2))))


def gen_ipv4_valid(rng: random.Random) -> Iterable[Frame]:
    """TCP/UDP/ICMP/other over IPv4, with and without options and VLAN tags."""
    for _ in range(2400):
        proto = rng.choice(_V4_PROTOS)
        src = _v4_source(rng)
        ihl = rng.choice((5, 5, 5, 6, 7, 10, 15))
        l4, part = _l4_v4(rng, proto)
        packet = ipv4(rng, src, proto, l4, ihl=ihl, more_fragments=rng.random() < 0.05)
        data = _pad(eth(rng, ETH_P_IP, _tags(rng)) + packet, rng)
        yield _frame(data, replace(part, family=4, src=src + bytes(12)), "ipv4")


def gen_ipv4_fragments(rng: random.Random) -> Iterable[Frame]:
    """First fragments parse their L4 header; later ones only give the protocol."""
    for _ in range(250):  # first fragment: offset 0, MF set
        proto = rng.choice((IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, IPPROTO_GRE))
        src = _v4_source(rng)
        l4, part = _l4_v4(rng, proto)
        packet = ipv4(rng, src, proto, l4, ihl=rng.choice((5, 6)), more_fragments=True)
        data = _pad(eth(rng, ETH_P_IP, _tags(rng)) + packet, rng)
        yield _frame(data, replace(part, family=4, src=src + bytes(12)), "ipv4-frag-first")
    for _ in range(300):  # non-first: whatever follows the header is not an L4 header
        proto = rng.choice((IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, IPPROTO_ESP))
        src = _v4_source(rng)
        offset = rng.choice((1, 2, 185, 0x1FFF, rng.randrange(1, 0x2000)))
        payload = rng.randbytes(rng.choice((0, 1, 4, 7, 8, 19, 48)))  # even too short for L4
        packet = ipv4(rng, src, proto, payload, frag=offset, more_fragments=rng.random() < 0.5)
        data = _pad(eth(rng, ETH_P_IP, _tags(rng)) + packet, rng)
        expected = ExpectedParse(family=4, proto=proto, fragment=True, src=src + bytes(12))
        yield _frame(data, expected, "ipv4-frag-later")


def _v6_l4(rng: random.Random, nh: int) -> tuple[bytes, ExpectedParse]:
    if nh == IPPROTO_ICMPV6:
        icmp_type = rng.choice((1, 2, 3, 128, 129, 130, 133, 134, 135, 136, 137, 143))
        payload = icmp(rng, icmp_type, payload=rng.randbytes(rng.randrange(0, 32)))
        return payload, ExpectedParse(proto=nh, control=icmp_type in ND_TYPES)
    if nh == IPPROTO_NONE:
        return rng.randbytes(rng.choice((0, 0, 5))), ExpectedParse(proto=nh)
    if nh in (IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP):
        payload, part = _l4_v4(rng, nh)
        if nh == IPPROTO_ICMP:  # "other" in IPv6: any length
            payload = payload[: rng.choice((0, 3, 8, 20))]
        return payload, part
    return rng.randbytes(rng.randrange(0, 40)), ExpectedParse(proto=nh)


_V6_L4 = (
    IPPROTO_TCP,
    IPPROTO_TCP,
    IPPROTO_UDP,
    IPPROTO_UDP,
    IPPROTO_ICMPV6,
    IPPROTO_ICMPV6,
    IPPROTO_NONE,
    IPPROTO_ESP,
    IPPROTO_GRE,
    IPPROTO_SCTP,
    IPPROTO_ICMP,
)
_EXT_KINDS = (IPV6_HOPOPTS, IPV6_ROUTING, IPV6_DSTOPTS, IPPROTO_AH, IPV6_FRAGMENT)


def _ext_chain(rng: random.Random, kinds: Sequence[int], final: int) -> bytes:
    """Extension headers of the given kinds (fragments with offset 0), ending in ``final``."""
    out = b""
    for index, kind in enumerate(kinds):
        nh = kinds[index + 1] if index + 1 < len(kinds) else final
        if kind == IPV6_FRAGMENT:
            out += frag_header(rng, nh, 0, True)
        else:
            out += ext_header(rng, kind, nh)
    return out


def gen_ipv6_valid(rng: random.Random) -> Iterable[Frame]:
    """IPv6 with 0 to 6 extension headers of every kind, then every kind of L4."""
    for _ in range(2400):
        count = rng.choice((0, 0, 0, 1, 1, 2, 3, 4, 5, 6))
        kinds = [rng.choice(_EXT_KINDS) for _ in range(count)]
        final = rng.choice(_V6_L4)
        l4, part = _v6_l4(rng, final)
        first = kinds[0] if kinds else final
        src = _v6_source(rng)
        packet = ipv6(rng, src, first, _ext_chain(rng, kinds, final) + l4)
        data = _pad(eth(rng, ETH_P_IPV6, _tags(rng)) + packet, rng)
        yield _frame(data, replace(part, family=6, src=src), f"ipv6-ext{count}")


def gen_ipv6_too_many(rng: random.Random) -> Iterable[Frame]:
    """Seven or more extension headers are malformed, whatever follows."""
    for _ in range(250):
        count = rng.choice((7, 7, 8, 12))
        kinds = [rng.choice(_EXT_KINDS) for _ in range(count)]
        final = rng.choice(_V6_L4)
        l4, _part = _v6_l4(rng, final)
        packet = ipv6(rng, _v6_source(rng), kinds[0], _ext_chain(rng, kinds, final) + l4)
        yield _frame(_pad(eth(rng, ETH_P_IPV6, _tags(rng)) + packet, rng), MALFORMED, "ipv6-ext7+")


def gen_ipv6_fragments(rng: random.Random) -> Iterable[Frame]:
    """Fragment headers: offset 0 continues to L4, any other offset stops there."""
    for _ in range(400):
        before = [
            rng.choice((IPV6_HOPOPTS, IPV6_ROUTING, IPV6_DSTOPTS, IPPROTO_AH))
            for _ in range(rng.choice((0, 0, 1, 2, 5)))
        ]
        src = _v6_source(rng)
        if rng.random() < 0.5:  # later fragment: its next header is the protocol, no L4
            nxt = rng.choice((IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6, IPV6_DSTOPTS, IPPROTO_ESP))
            offset = rng.choice((1, 2, 0x1FFF, rng.randrange(1, 0x2000)))
            tail = frag_header(rng, nxt, offset, rng.random() < 0.5) + rng.randbytes(
                rng.choice((0, 1, 8, 30))
            )
            expected = ExpectedParse(family=6, proto=nxt, fragment=True, src=src)
            kind = "ipv6-frag-later"
        else:
            final = rng.choice((IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6))
            l4, part = _v6_l4(rng, final)
            tail = frag_header(rng, final, 0, True) + l4
            expected = replace(part, family=6, src=src)
            kind = "ipv6-frag-first"
        first_kind = before[0] if before else IPV6_FRAGMENT
        chain = _ext_chain(rng, before, IPV6_FRAGMENT) if before else b""
        packet = ipv6(rng, src, first_kind, chain + tail)
        yield _frame(_pad(eth(rng, ETH_P_IPV6, _tags(rng)) + packet, rng), expected, kind)
    # the 6th header is a later fragment: fine; a 7th header behind a first fragment is not
    for _ in range(40):
        src = _v6_source(rng)
        kinds = [IPV6_DSTOPTS] * 5
        tail = frag_header(rng, IPPROTO_UDP, 3, False) + rng.randbytes(12)
        packet = ipv6(rng, src, IPV6_DSTOPTS, _ext_chain(rng, kinds, IPV6_FRAGMENT) + tail)
        expected = ExpectedParse(family=6, proto=IPPROTO_UDP, fragment=True, src=src)
        yield _frame(_pad(eth(rng, ETH_P_IPV6) + packet, rng), expected, "ipv6-frag-6th")
        kinds = [IPV6_DSTOPTS] * 5 + [IPV6_FRAGMENT]
        packet = ipv6(
            rng, src, IPV6_DSTOPTS, _ext_chain(rng, kinds, IPV6_HOPOPTS) + bytes(8) + udp(rng, 1, 2)
        )
        yield _frame(_pad(eth(rng, ETH_P_IPV6) + packet, rng), MALFORMED, "ipv6-frag-7th")


def gen_icmpv6_nd(rng: random.Random) -> Iterable[Frame]:
    """Neighbour discovery (133-137) is control traffic; other ICMPv6 types are not."""
    for icmp_type in range(125, 145):
        for _ in range(12):
            src = rng.choice((ipaddress.IPv6Address("fe80::1").packed, _v6_source(rng), bytes(16)))
            body = icmp(rng, icmp_type, payload=rng.randbytes(rng.choice((0, 16, 24))))
            kinds = [IPV6_HOPOPTS] if rng.random() < 0.2 else []
            packet = ipv6(
                rng,
                src,
                kinds[0] if kinds else IPPROTO_ICMPV6,
                _ext_chain(rng, kinds, IPPROTO_ICMPV6) + body,
            )
            expected = ExpectedParse(
                family=6, proto=IPPROTO_ICMPV6, control=icmp_type in ND_TYPES, src=src
            )
            yield _frame(_pad(eth(rng, ETH_P_IPV6, _tags(rng)) + packet, rng), expected, "icmpv6")
    for _ in range(30):  # ND header cut short: malformed, not control
        packet = ipv6(rng, bytes(16), IPPROTO_ICMPV6, bytes([135, 0]) + rng.randbytes(5))
        yield _frame(eth(rng, ETH_P_IPV6) + packet, MALFORMED, "icmpv6-short")


def gen_vlan(rng: random.Random) -> Iterable[Frame]:
    """One and two tags of either TPID in front of IPv4, IPv6 and ARP; three are malformed."""
    for _ in range(500):
        tags = tuple(rng.choice(VLAN_TPIDS) for _ in range(rng.choice((1, 2))))
        which = rng.random()
        if which < 0.4:
            src = _v4_source(rng)
            l4, part = _l4_v4(rng, rng.choice((IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP)))
            data = eth(rng, ETH_P_IP, tags) + ipv4(rng, src, part.proto, l4)
            expected = replace(part, family=4, src=src + bytes(12))
        elif which < 0.8:
            src = _v6_source(rng)
            l4, part = _v6_l4(rng, rng.choice((IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6)))
            data = eth(rng, ETH_P_IPV6, tags) + ipv6(rng, src, part.proto, l4)
            expected = replace(part, family=6, src=src)
        else:
            data = eth(rng, ETH_P_ARP, tags) + arp(rng)
            expected = NON_IP
        yield _frame(_pad(data, rng), expected, f"vlan{len(tags)}")
    for _ in range(150):  # a third tag (or more) in front of anything
        tags = tuple(rng.choice(VLAN_TPIDS) for _ in range(rng.choice((3, 3, 4))))
        inner = rng.choice((ETH_P_IP, ETH_P_IPV6, ETH_P_ARP))
        if inner == ETH_P_IP:
            body = ipv4(rng, _v4_source(rng), IPPROTO_UDP, udp(rng, 1234, 53))
        elif inner == ETH_P_IPV6:
            body = ipv6(rng, _v6_source(rng), IPPROTO_UDP, udp(rng, 1234, 53))
        else:
            body = arp(rng)
        yield _frame(_pad(eth(rng, inner, tags) + body, rng), MALFORMED, "vlan3")
    for tags in ((ETH_P_8021Q,), (ETH_P_8021AD, ETH_P_8021Q), (ETH_P_8021Q,) * 3):
        header = eth(rng, ETH_P_IP, tags)
        for cut in range(12, len(header)):  # every cut inside the tag stack
            data = header[:cut]
            yield Frame(data, reference_parse(data), "vlan-cut")


def gen_non_ip(rng: random.Random) -> Iterable[Frame]:
    """ARP and other EtherTypes (including 802.3 length fields): control, never dropped."""
    for _ in range(120):
        yield _frame(_pad(eth(rng, ETH_P_ARP, _tags(rng)) + arp(rng), rng), NON_IP, "arp")
    others = (0x88CC, 0x8863, 0x8864, 0x8847, 0x88E5, 0x0842, 0x9000, 0x002E, 0x05DC, 0xFFFF, 0)
    for _ in range(200):
        etype = rng.choice(others) if rng.random() < 0.7 else rng.randrange(65536)
        if etype in (ETH_P_IP, ETH_P_IPV6, *VLAN_TPIDS):
            continue
        data = eth(rng, etype, _tags(rng, 0.1)) + rng.randbytes(rng.randrange(0, 80))
        yield _frame(data, NON_IP, "non-ip")
    yield _frame(eth(rng, ETH_P_ARP), NON_IP, "non-ip-bare")  # nothing after the EtherType
    yield _frame(eth(rng, ETH_P_ARP, (ETH_P_8021Q, ETH_P_8021AD)), NON_IP, "non-ip-bare")


def gen_bad_ipv4(rng: random.Random) -> Iterable[Frame]:
    """Bad versions, IHL, total lengths and L4 headers that do not fit."""
    for _ in range(500):
        src = _v4_source(rng)
        proto = rng.choice((IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP))
        l4, _part = _l4_v4(rng, proto)
        tags = _tags(rng)
        case = rng.randrange(9)
        if case == 0:  # version other than 4
            packet = ipv4(rng, src, proto, l4, version=rng.choice((0, 5, 6, 15)))
        elif case == 1:  # IHL below 5
            packet = ipv4(rng, src, proto, l4, ihl=rng.randrange(5), options=b"")
        elif case == 2:  # IHL beyond the frame
            ihl = rng.randrange(6, 16)
            packet = ipv4(rng, src, proto, b"", ihl=5, options=b"")
            packet = bytes([0x40 | ihl]) + packet[1:] + rng.randbytes(rng.randrange(4 * ihl - 20))
            packet = packet[:2] + struct.pack(">H", len(packet)) + packet[4:]
        elif case == 3:  # total_length shorter than the header
            ihl = rng.choice((5, 6, 8))
            packet = ipv4(rng, src, proto, l4, ihl=ihl, total_length=rng.randrange(4 * ihl))
        elif case == 4:  # total_length beyond the frame
            extra = rng.choice((1, 2, 100, 1000))
            packet = ipv4(rng, src, proto, l4, total_length=20 + len(l4) + extra)
            data = eth(rng, ETH_P_IP, tags) + packet  # no padding: it could make it fit
            yield _frame(data, MALFORMED, "ipv4-bad-total")
            continue
        elif case == 5:  # total_length cuts the L4 header
            need = {IPPROTO_TCP: 20, IPPROTO_UDP: 8, IPPROTO_ICMP: 8}[proto]
            packet = ipv4(rng, src, proto, l4, total_length=20 + rng.randrange(need))
        elif case == 6:  # TCP data offset below 5
            packet = ipv4(rng, src, IPPROTO_TCP, tcp(rng, 1, 80, doff=rng.randrange(5)))
        elif case == 7:  # TCP data offset beyond the L4 bytes (padding does not count)
            doff = rng.randrange(6, 16)
            segment = tcp(rng, 1, 80, doff=5) + rng.randbytes(rng.randrange(4 * doff - 20))
            segment = segment[:12] + bytes([doff << 4]) + segment[13:]
            packet = ipv4(rng, src, IPPROTO_TCP, segment)
        else:  # bare header, L4 missing
            packet = ipv4(rng, src, proto, b"")
        yield _frame(_pad(eth(rng, ETH_P_IP, tags) + packet, rng), MALFORMED, f"ipv4-bad{case}")
    # padding after total_length is fine; a total_length that swallows padding is not an L4
    for _ in range(60):
        src = _v4_source(rng)
        packet = ipv4(rng, src, IPPROTO_UDP, udp(rng, 7, 9))
        data = eth(rng, ETH_P_IP) + packet + rng.randbytes(rng.randrange(1, 40))
        expected = ExpectedParse(
            family=4, proto=IPPROTO_UDP, has_ports=True, sport=7, dport=9, src=src + bytes(12)
        )
        yield _frame(data, expected, "ipv4-padded")


def gen_bad_ipv6(rng: random.Random) -> Iterable[Frame]:
    """Bad versions, payload lengths, extension headers and L4 headers that do not fit."""
    for _ in range(500):
        src = _v6_source(rng)
        final = rng.choice((IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6))
        l4, _part = _v6_l4(rng, final)
        case = rng.randrange(8)
        if case == 0:  # version other than 6
            packet = ipv6(rng, src, final, l4, version=rng.choice((0, 4, 7, 15)))
        elif case == 1:  # payload_length beyond the frame
            packet = ipv6(rng, src, final, l4, payload_length=len(l4) + rng.choice((1, 9, 999)))
            yield _frame(eth(rng, ETH_P_IPV6) + packet, MALFORMED, "ipv6-bad-plen")
            continue
        elif case == 2:  # payload_length 0 with an L4 header behind: taken literally
            packet = ipv6(rng, src, final, l4, payload_length=0)
        elif case == 3:  # payload_length cuts the L4 header
            need = {IPPROTO_TCP: 20, IPPROTO_UDP: 8, IPPROTO_ICMPV6: 8}[final]
            packet = ipv6(rng, src, final, l4, payload_length=rng.randrange(need))
        elif case == 4:  # an extension header longer than the payload
            kind = rng.choice((IPV6_HOPOPTS, IPV6_ROUTING, IPV6_DSTOPTS, IPPROTO_AH))
            header = ext_header(rng, kind, final, size_units=rng.choice((1, 4, 100)))
            packet = ipv6(rng, src, kind, header[: rng.randrange(len(header))])
        elif case == 5:  # payload_length ends inside an extension header chain
            kinds = [rng.choice(_EXT_KINDS) for _ in range(rng.randrange(1, 4))]
            chain = _ext_chain(rng, kinds, final)
            packet = ipv6(rng, src, kinds[0], chain + l4, payload_length=rng.randrange(len(chain)))
        elif case == 6:  # a fragment header cut short
            packet = ipv6(rng, src, IPV6_FRAGMENT, frag_header(rng, final, 0, True)[:7])
        else:  # TCP data offset wrong
            doff = rng.choice((0, 1, 4, 15))
            segment = tcp(rng, 1, 80)
            segment = segment[:12] + bytes([doff << 4]) + segment[13:]
            packet = ipv6(rng, src, IPPROTO_TCP, segment)
        yield _frame(_pad(eth(rng, ETH_P_IPV6, _tags(rng)) + packet, rng), MALFORMED, "ipv6-bad")
    for _ in range(60):  # payload_length 0 and no next header: fine; padding after it too
        src = _v6_source(rng)
        packet = ipv6(rng, src, IPPROTO_NONE, b"", payload_length=0)
        data = _pad(eth(rng, ETH_P_IPV6) + packet + rng.randbytes(rng.randrange(0, 30)), rng)
        yield _frame(data, ExpectedParse(family=6, proto=IPPROTO_NONE, src=src), "ipv6-empty")


def _truncation_bases(rng: random.Random) -> list[bytes]:
    src4, src6 = V4_BLOCK_SINGLES[0].packed, V6_BLOCK_SINGLES[0].packed
    tcp_opts = tcp(rng, 40000, 443, doff=8, payload=b"hello")
    chain = _ext_chain(
        rng,
        [IPV6_HOPOPTS, IPV6_ROUTING, IPPROTO_AH, IPV6_FRAGMENT, IPV6_DSTOPTS],
        IPPROTO_UDP,
    )
    return [
        eth(rng, ETH_P_IP) + ipv4(rng, src4, IPPROTO_TCP, tcp_opts),
        eth(rng, ETH_P_IP) + ipv4(rng, src4, IPPROTO_UDP, udp(rng, 5353, 53), ihl=9),
        eth(rng, ETH_P_IP, (ETH_P_8021AD, ETH_P_8021Q))
        + ipv4(rng, src4, IPPROTO_ICMP, icmp(rng, 8)),
        eth(rng, ETH_P_IP) + ipv4(rng, src4, IPPROTO_UDP, rng.randbytes(12), frag=5),
        eth(rng, ETH_P_IPV6) + ipv6(rng, src6, IPPROTO_TCP, tcp_opts),
        eth(rng, ETH_P_IPV6, (ETH_P_8021Q,)) + ipv6(rng, src6, IPPROTO_UDP, udp(rng, 1, 53)),
        eth(rng, ETH_P_IPV6) + ipv6(rng, src6, IPV6_HOPOPTS, chain + udp(rng, 9, 443, b"x")),
        eth(rng, ETH_P_IPV6) + ipv6(rng, src6, IPPROTO_ICMPV6, icmp(rng, 135, payload=bytes(16))),
        eth(rng, ETH_P_IPV6)
        + ipv6(rng, src6, IPV6_FRAGMENT, frag_header(rng, IPPROTO_TCP, 9, True) + bytes(4)),
        eth(rng, ETH_P_IPV6) + ipv6(rng, src6, IPPROTO_NONE, b""),
        eth(rng, ETH_P_ARP) + arp(rng),
        eth(rng, ETH_P_IP, (ETH_P_8021Q, ETH_P_8021Q, ETH_P_8021Q))
        + ipv4(rng, src4, IPPROTO_UDP, udp(rng, 1, 2)),
    ]


def gen_truncated(rng: random.Random) -> Iterable[Frame]:
    """Several base packets cut at every length from 0 to the whole frame."""
    for base in _truncation_bases(rng):
        for cut in range(len(base) + 1):
            data = base[:cut]
            yield Frame(data, reference_parse(data), "truncated")


def gen_mutated(rng: random.Random, valid: Sequence[Frame]) -> Iterable[Frame]:
    """Valid frames with a few header bytes flipped; the reference says what they become."""
    for _ in range(1500):
        data = bytearray(rng.choice(valid).data)
        for _ in range(rng.choice((1, 1, 2, 3))):
            pos = rng.randrange(min(len(data), 120))
            if rng.random() < 0.5:
                data[pos] ^= 1 << rng.randrange(8)
            else:
                data[pos] = rng.randrange(256)
        frame = bytes(data)
        yield Frame(frame, reference_parse(frame), "mutated")


def gen_garbage(rng: random.Random) -> Iterable[Frame]:
    """Random bytes, raw and behind a plausible Ethernet/VLAN/IP start."""
    for _ in range(600):
        data = rng.randbytes(rng.choice((0, 1, 13, 14, 15, 20, 34, 54, 60, rng.randrange(200))))
        yield Frame(data, reference_parse(data), "garbage")
    for _ in range(1200):
        etype = rng.choice((ETH_P_IP, ETH_P_IPV6))
        body = bytearray(rng.randbytes(rng.randrange(0, 160)))
        if body and rng.random() < 0.8:  # keep the version right so the fuzz reaches deeper
            body[0] = (4 if etype == ETH_P_IP else 6) << 4 | (
                rng.randrange(5, 16) if etype == ETH_P_IP else rng.randrange(16)
            )
        if etype == ETH_P_IP and len(body) >= 20 and rng.random() < 0.7:
            body[2:4] = struct.pack(">H", rng.randrange(20, len(body) + 1))
            if rng.random() < 0.6:  # not a later fragment, a protocol with a header
                body[6:8] = bytes([body[6] & 0xE0, 0])
                body[9] = rng.choice((IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, IPPROTO_GRE))
        if etype == ETH_P_IPV6 and len(body) >= 6 and rng.random() < 0.7:
            body[4:6] = struct.pack(">H", max(0, len(body) - 40 - rng.randrange(8)))
            if len(body) >= 7:
                body[6] = rng.choice((*_EXT_KINDS, IPPROTO_TCP, IPPROTO_UDP, 58, 59))
        data = eth(rng, etype, _tags(rng, 0.3)) + bytes(body)
        yield Frame(data, reference_parse(data), "garbage-ip")


@functools.cache
def _build() -> tuple[Frame, ...]:
    rng = random.Random(SEED)
    frames: list[Frame] = []
    generators: list[Gen] = [
        gen_ipv4_valid,
        gen_ipv4_fragments,
        gen_ipv6_valid,
        gen_ipv6_too_many,
        gen_ipv6_fragments,
        gen_icmpv6_nd,
        gen_vlan,
        gen_non_ip,
        gen_bad_ipv4,
        gen_bad_ipv6,
        gen_truncated,
    ]
    for generate in generators:
        frames.extend(generate(rng))
    valid = [f for f in frames if not f.expected.malformed and len(f.data) >= 14]
    frames.extend(gen_mutated(rng, valid))
    frames.extend(gen_garbage(rng))
    return tuple(frames)


def corpus() -> list[Frame]:
    """Every frame of the corpus, in a fixed order (the same list on every call).

    >>> frames = corpus()
    >>> len(frames) >= 10_000
    True
    """
    return list(_build())


if __name__ == "__main__":  # a summary: python tests/_corpus.py
    from collections import Counter

    frames = corpus()
    kinds = Counter(f.kind for f in frames)
    malformed = sum(f.expected.malformed for f in frames)
    print(f"{len(frames)} frames, {malformed} malformed")
    for kind, count in sorted(kinds.items()):
        print(f"  {kind:20} {count}")
