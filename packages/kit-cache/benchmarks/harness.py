"""Interleaved timing and the result rows shared by ``run.py``.

Every contender of a group is timed in the same rounds, one after the other, with the order
rotated each round, so a burst of load on this (shared) machine hits every side alike. A
round times ``number`` back-to-back calls with :mod:`timeit` on ``time.perf_counter_ns``
(garbage collection off, as timeit does). The figure reported is the per-call time of the
**fastest round** (the least disturbed one, as timeit's documentation recommends); the median
over rounds is kept alongside (``*_median_us``, ``median_ratio``) and printed too.
"""

from __future__ import annotations

import statistics
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Contender", "Mode", "Row", "measure", "print_summary"]

METER = "min of rounds (per-call time of the fastest round)"


@dataclass(frozen=True)
class Mode:
    """How long to measure: ``rounds`` interleaved rounds of about ``batch_s`` seconds each."""

    rounds: int
    batch_s: float


@dataclass
class Contender:
    """One side of a comparison: a statement timed in a namespace of its own."""

    label: str
    stmt: str
    env: dict[str, Any]
    number: int = 0
    samples_ns: list[float] = field(default_factory=list)

    @property
    def median_us(self) -> float:
        return statistics.median(self.samples_ns) / 1000

    @property
    def min_us(self) -> float:
        return min(self.samples_ns) / 1000


def _timer(contender: Contender) -> timeit.Timer:
    # A statement string (not a callable) keeps timeit's loop free of an extra Python call.
    return timeit.Timer(contender.stmt, timer=time.perf_counter_ns, globals=contender.env)


def _calibrate(timer: timeit.Timer, batch_ns: float) -> int:
    """Warm up and return the call count that makes one batch last about ``batch_ns``."""
    number = 1
    while True:
        elapsed = timer.timeit(number)
        if elapsed >= batch_ns / 8 or number >= 1 << 24:
            break
        number *= 4
    return max(1, round(number * batch_ns / max(elapsed, 1.0)))


def measure(contenders: list[Contender], mode: Mode) -> None:
    """Fill each contender's per-call samples (ns), interleaving them round by round."""
    timers = [_timer(c) for c in contenders]
    batch_ns = mode.batch_s * 1e9
    for contender, timer in zip(contenders, timers, strict=True):
        contender.number = _calibrate(timer, batch_ns)
        contender.samples_ns.clear()
    pairs = list(zip(contenders, timers, strict=True))
    for round_no in range(mode.rounds):
        shift = round_no % len(pairs)
        for contender, timer in pairs[shift:] + pairs[:shift]:
            contender.samples_ns.append(timer.timeit(contender.number) / contender.number)


@dataclass
class Row:
    """One line of the JSON ``results`` list that ``tools/bench_table.py`` prints."""

    name: str
    kit: str
    peer: str
    kit_us: float
    peer_us: float
    target: str
    verdict: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.kit_us / self.peer_us if self.peer_us else float("nan")

    @classmethod
    def compare(
        cls,
        name: str,
        kit: Contender,
        peer: Contender,
        *,
        target: str,
        meets: Callable[[float], bool] | None,
        **extra: Any,
    ) -> Row:
        """A timed row; ``meets`` judges the ratio (None: an "info" row)."""
        ratio = kit.min_us / peer.min_us
        verdict = "info" if meets is None else ("meets target" if meets(ratio) else "misses target")
        return cls(
            name=name,
            kit=kit.label,
            peer=peer.label,
            kit_us=kit.min_us,
            peer_us=peer.min_us,
            target=target,
            verdict=verdict,
            extra={
                "kit_median_us": round(kit.median_us, 4),
                "peer_median_us": round(peer.median_us, 4),
                "median_ratio": round(kit.median_us / peer.median_us, 4),
                "rounds": len(kit.samples_ns),
                "kit_calls_per_round": kit.number,
                "peer_calls_per_round": peer.number,
                "stat": METER,
                **extra,
            },
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kit": self.kit,
            "peer": self.peer,
            "kit_us": round(self.kit_us, 4),
            "peer_us": round(self.peer_us, 4),
            "ratio": round(self.ratio, 4),
            "target": self.target,
            "verdict": self.verdict,
            **self.extra,
        }


def print_summary(rows: list[Row], header: str) -> None:
    """A readable table: per-call times, ratio (and speed-up when kit is faster), verdict."""
    table = [
        ("benchmark", "kit us", "peer us", "kit/peer", "(median)", "target", "verdict", "peer")
    ]
    for row in rows:
        ratio = f"{row.ratio:.3f}x"
        if row.ratio < 0.5:
            ratio += f" ({1 / row.ratio:.0f}x faster)"
        median = row.extra.get("median_ratio")
        table.append(
            (
                row.name,
                f"{row.kit_us:.3f}",
                f"{row.peer_us:.3f}",
                ratio,
                "" if median is None else f"{median:.3f}x",
                row.target,
                row.verdict,
                row.peer,
            )
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    rule = "  ".join("-" * w for w in widths)
    print(header)
    print(rule)
    for i, line in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
        if i == 0:
            print(rule)
    print(rule)
