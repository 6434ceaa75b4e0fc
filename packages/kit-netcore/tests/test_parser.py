"""Every corpus frame through the native parser gives the parse the rules call for.

The parser is ``bpf/nc_parse.h``, the same header the XDP program is compiled from; here it
runs through the engine's export ``nc_parse_frame``. When a frame is malformed only
``malformed`` is compared; otherwise every field is, ports only when ``has_ports``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from _corpus import ExpectedParse, Frame, _build, corpus, reference_parse

from kit_netcore._native import ffi, lib

FRAMES = corpus()
KINDS = sorted({frame.kind for frame in FRAMES})


def _parse(data: bytes, fill: int = 0) -> Any:
    pkt = ffi.new("struct nc_pkt *")
    ffi.memmove(pkt, bytes([fill]) * ffi.sizeof("struct nc_pkt"), ffi.sizeof("struct nc_pkt"))
    lib.nc_parse_frame(data, len(data), pkt)
    return pkt


def _differences(frame: Frame, got: Any) -> list[str]:
    """The fields where the parse differs from the expectation, as ``name: want A got B``."""
    want: ExpectedParse = frame.expected
    pairs: list[tuple[str, object, object]] = [("malformed", int(want.malformed), got.malformed)]
    if not want.malformed:
        pairs += [
            ("len", len(frame.data), got.len),
            ("family", want.family, got.family),
            ("proto", want.proto, got.proto),
            ("control", int(want.control), got.control),
            ("has_ports", int(want.has_ports), got.has_ports),
            ("fragment", int(want.fragment), got.fragment),
        ]
        if want.has_ports:
            pairs += [
                ("sport", want.sport, got.sport),
                ("dport", want.dport, got.dport),
            ]
        if want.family:
            src = bytes(ffi.buffer(got.src, 16))
            pairs.append(("src", want.src.hex(), src.hex()))
    return [f"{name}: want {a} got {b}" for name, a, b in pairs if a != b]


def _report(failures: list[tuple[Frame, list[str]]]) -> str:
    lines = [f"{len(failures)} frames parsed wrongly"]
    for frame, diffs in failures[:25]:
        lines.append(f"  [{frame.kind}] {'; '.join(diffs)}\n    frame {frame.data.hex()}")
    return "\n".join(lines)


def test_the_corpus_is_large_varied_and_deterministic() -> None:
    assert len(FRAMES) >= 10_000
    rebuilt = list(_build.__wrapped__())  # a fresh build gives the very same frames
    assert rebuilt == FRAMES
    counts = Counter(
        (f.expected.malformed, f.expected.family, f.expected.fragment, f.expected.control)
        for f in FRAMES
    )
    for family in (0, 4, 6):
        assert counts[(False, family, False, family == 0)] > 100
    assert counts[(False, 4, True, False)] > 100
    assert counts[(False, 6, True, False)] > 100
    assert counts[(False, 6, False, True)] > 50  # neighbour discovery
    assert sum(c for (malformed, *_), c in counts.items() if malformed) > 2000
    for frame in FRAMES:  # the expectation is the reference parse, always
        assert reference_parse(frame.data) == frame.expected or frame.expected.malformed


@pytest.mark.parametrize("kind", KINDS)
def test_parse_matches_expectation(kind: str) -> None:
    failures = []
    for frame in FRAMES:
        if frame.kind != kind:
            continue
        diffs = _differences(frame, _parse(frame.data))
        if diffs:
            failures.append((frame, diffs))
    if failures:
        pytest.fail(_report(failures), pytrace=False)


def test_parse_rewrites_every_byte_of_the_output() -> None:
    """Whatever the output held before, the parse writes the same bytes (nothing left stale)."""
    size = ffi.sizeof("struct nc_pkt")
    stale = []
    for frame in FRAMES[::7]:
        clean = bytes(ffi.buffer(_parse(frame.data, 0x00), size))
        dirty = bytes(ffi.buffer(_parse(frame.data, 0xFF), size))
        if clean != dirty:
            stale.append(f"[{frame.kind}] {clean.hex()} vs {dirty.hex()}: {frame.data.hex()}")
    if stale:
        pytest.fail("\n".join(stale[:10]), pytrace=False)


def test_parse_of_an_empty_buffer_is_malformed() -> None:
    assert _parse(b"").malformed == 1
