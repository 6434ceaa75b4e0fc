"""The Python byte layouts agree with the C structs and enums the program is built from."""

from __future__ import annotations

import pytest

from kit_netcore import _layout
from kit_netcore._native import ffi, lib


@pytest.mark.parametrize(
    ("ctype", "layout"),
    [
        ("struct nc_config", _layout.CONFIG_FMT),
        ("struct nc_counter", _layout.COUNTER),
        ("struct nc_entry", _layout.ENTRY),
        ("struct nc_net4_key", _layout.NET4_KEY),
        ("struct nc_net6_key", _layout.NET6_KEY),
        ("struct nc_range_key", _layout.RANGE_KEY),
        ("struct nc_range_val", _layout.RANGE_VAL),
        ("struct nc_rate_rule", _layout.RATE_RULE),
        ("struct nc_bucket_key", _layout.BUCKET_KEY),
        ("struct nc_source_key", _layout.SOURCE_KEY),
        ("struct nc_source_val", _layout.SOURCE_VAL),
    ],
)
def test_struct_sizes_match_c(ctype: str, layout: object) -> None:
    assert ffi.sizeof(ctype) == layout.size  # type: ignore[attr-defined]


def test_field_offsets_match_c() -> None:
    assert ffi.offsetof("struct nc_config", "all_rule") == 4
    assert ffi.offsetof("struct nc_config", "block_mask6") == 20
    assert ffi.offsetof("struct nc_entry", "origin_len") == 16
    assert ffi.offsetof("struct nc_range_key", "addr") == 4
    assert ffi.offsetof("struct nc_bucket_key", "rule") == 17


def test_map_ids_and_names_match_c() -> None:
    assert lib.NC_MAP_COUNT == _layout.MAP_COUNT == len(_layout.MAPS)
    for map_id, spec in enumerate(_layout.MAPS):
        assert ffi.string(lib.nc_map_name(map_id)).decode() == spec.name
    assert lib.NC_MAP_SOURCES == _layout.SOURCES
    assert lib.NC_MAP_RANGES == _layout.RANGES


def test_reasons_and_flags_match_c() -> None:
    assert [lib.NC_R_PASS, lib.NC_R_ALLOW, lib.NC_R_BLOCK, lib.NC_R_RATE] == [0, 1, 2, 3]
    assert _layout.REASONS[lib.NC_R_MALFORMED] == "malformed"
    assert _layout.REASONS[lib.NC_R_CONTROL] == "control"
    assert lib.NC_F_DROP_MALFORMED == _layout.F_DROP_MALFORMED
    assert lib.NC_F_TRACK_SOURCES == _layout.F_TRACK_SOURCES
    assert lib.NC_MAX_RATE_RULES == _layout.MAX_RATE_RULES
    assert (lib.NC_XDP_DROP, lib.NC_XDP_PASS) == (_layout.XDP_DROP, _layout.XDP_PASS)
