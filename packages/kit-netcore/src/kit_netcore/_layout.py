"""Byte layouts of the shield's maps, mirroring ``bpf/nc_common.h`` and the map ids of
``csrc/netcore.h``. A test checks every size against the compiled C structs.

Addresses are network order (an IPv4 address fills the first 4 of 16 bytes), prefix
lengths and ports host order, times ``CLOCK_MONOTONIC`` nanoseconds with 0 for "never".
"""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

# map ids (enum nc_map_id)
CONFIG, STATS, ALLOW4, ALLOW6, ALLOW_NET4, ALLOW_NET6 = range(6)
BLOCK4, BLOCK6, BLOCK_NET4, BLOCK_NET6, RANGES, PORT_RULE = range(6, 12)
RATE_RULES, BUCKETS, SOURCES, PREFILTER = range(12, 16)
MAP_COUNT: Final = 16
PREFILTER_WORDS: Final = 1024  # 65536 bits per list and family

# reasons (enum nc_reason), in counter order
REASONS: Final = ("pass", "allow", "block", "rate", "malformed", "control")
REASON_SLOTS: Final = 8

# nc_config.flags
F_DROP_MALFORMED: Final = 1 << 0
F_TRACK_SOURCES: Final = 1 << 1

LIST_ALLOW: Final = 0
LIST_BLOCK: Final = 1
MAX_RATE_RULES: Final = 16
XDP_DROP: Final = 1
XDP_PASS: Final = 2

CONFIG_FMT: Final = struct.Struct("<IIIIII5Q")  # flags, all_rule, 4 stride masks, reserved
COUNTER: Final = struct.Struct("<QQ")  # packets, bytes
ENTRY: Final = struct.Struct("<QQII")  # expires_ns, hits, origin_len, reserved
NET4_KEY: Final = struct.Struct("<I4s")
NET6_KEY: Final = struct.Struct("<I16s")
RANGE_KEY: Final = struct.Struct("<BBBx16s")  # list, family, prefixlen, addr
RANGE_VAL: Final = struct.Struct("<QQ")  # expires_ns, created (unix ns)
RATE_RULE: Final = struct.Struct("<QQQQ")  # interval_ns, tolerance_ns, drops, reserved
U32: Final = struct.Struct("<I")
U64: Final = struct.Struct("<Q")
BUCKET_KEY: Final = struct.Struct("<16sBBxx")  # addr, family, rule
SOURCE_KEY: Final = struct.Struct("<16sB3x")
SOURCE_VAL: Final = struct.Struct("<QQ")  # packets, dropped


class MapSpec(NamedTuple):
    """One map: its pinned name, key and value sizes, and whether values are per CPU."""

    name: str
    key_size: int
    value_size: int
    percpu: bool = False


MAPS: Final[tuple[MapSpec, ...]] = (
    MapSpec("nc_config", 4, CONFIG_FMT.size),
    MapSpec("nc_stats", 4, COUNTER.size, percpu=True),
    MapSpec("nc_allow4", 4, ENTRY.size),
    MapSpec("nc_allow6", 16, ENTRY.size),
    MapSpec("nc_allow_net4", NET4_KEY.size, ENTRY.size),
    MapSpec("nc_allow_net6", NET6_KEY.size, ENTRY.size),
    MapSpec("nc_block4", 4, ENTRY.size),
    MapSpec("nc_block6", 16, ENTRY.size),
    MapSpec("nc_block_net4", NET4_KEY.size, ENTRY.size),
    MapSpec("nc_block_net6", NET6_KEY.size, ENTRY.size),
    MapSpec("nc_ranges", RANGE_KEY.size, RANGE_VAL.size),
    MapSpec("nc_port_rule", 4, 4),
    MapSpec("nc_rate_rules", 4, RATE_RULE.size),
    MapSpec("nc_buckets", BUCKET_KEY.size, 8),
    MapSpec("nc_sources", SOURCE_KEY.size, SOURCE_VAL.size, percpu=True),
    MapSpec("nc_prefilter", 4, 8),
)

# (exact map, net map, config mask field index) per (list, family)
LISTS: Final = {
    (LIST_ALLOW, 4): (ALLOW4, ALLOW_NET4, 2),
    (LIST_BLOCK, 4): (BLOCK4, BLOCK_NET4, 3),
    (LIST_ALLOW, 6): (ALLOW6, ALLOW_NET6, 4),
    (LIST_BLOCK, 6): (BLOCK6, BLOCK_NET6, 5),
}


def prefilter_slot(list_id: int, family: int) -> int:
    """The prefilter bitmap of a list and family (``nc_common.h``)."""
    return list_id * 2 + (family == 6)


def exact_key(family: int, addr: bytes) -> bytes:
    """The exact-map key of a 16-byte address."""
    return addr[:4] if family == 4 else addr


def net_key(family: int, stride: int, addr: bytes) -> bytes:
    """The net-map key of an address already masked to ``stride`` bits."""
    if family == 4:
        return NET4_KEY.pack(stride, addr[:4])
    return NET6_KEY.pack(stride, addr)
