"""Interleaved timing and the result rows shared by ``run.py``.

The method is kit-cache's (``packages/kit-cache/benchmarks/harness.py``), adapted to
database calls that take from a fraction of a millisecond to seconds:

- every contender of a group is timed in the same rounds, one after the other, with the order
  rotated each round, so a burst of load on this (shared) machine hits every side alike;
- a round times ``number`` back-to-back calls (calibrated so a round lasts about ``batch_s``,
  at least one call) with ``time.perf_counter_ns`` and garbage collection off, as timeit does;
  an optional ``setup`` runs untimed before each round (e.g. emptying a table);
- the figure reported is the per-call time of the **fastest round** (the least disturbed one);
  the median over rounds is kept alongside (``*_median_us``, ``median_ratio``).

Calls are Python callables, not timeit statement strings: one extra Python call is noise next
to a database round trip.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["METER", "Contender", "Mode", "Row", "measure", "print_summary"]

METER = "min of rounds (per-call time of the fastest round)"


@dataclass(frozen=True)
class Mode:
    """How long to measure: ``rounds`` interleaved rounds of about ``batch_s`` seconds each."""

    rounds: int
    batch_s: float


@dataclass
class Contender:
    """One side of a comparison: ``fn()`` is one call; ``setup()`` runs untimed before each
    round; ``number`` fixes the calls per round (0: calibrate)."""

    label: str
    fn: Callable[[], object]
    setup: Callable[[], object] | None = None
    number: int = 0
    samples_ns: list[float] = field(default_factory=list)

    @property
    def median_us(self) -> float:
        return statistics.median(self.samples_ns) / 1000

    @property
    def min_us(self) -> float:
        return min(self.samples_ns) / 1000


def _round_ns(contender: Contender, number: int) -> float:
    """Run ``number`` calls (after the untimed setup); return the elapsed ns."""
    if contender.setup is not None:
        contender.setup()
    fn = contender.fn
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter_ns()
        for _ in range(number):
            fn()
        return float(time.perf_counter_ns() - started)
    finally:
        if enabled:
            gc.enable()


def _calibrate(contender: Contender, batch_ns: float) -> int:
    """Warm up and return the call count that makes one round last about ``batch_ns``."""
    number = 1
    while True:
        elapsed = _round_ns(contender, number)
        if elapsed >= batch_ns / 8 or number >= 1 << 16:
            break
        number *= 4
    return max(1, round(number * batch_ns / max(elapsed, 1.0)))


def measure(contenders: list[Contender], mode: Mode) -> None:
    """Fill each contender's per-call samples (ns), interleaving them round by round."""
    batch_ns = mode.batch_s * 1e9
    for contender in contenders:
        if contender.number <= 0:
            contender.number = _calibrate(contender, batch_ns)
        else:
            _round_ns(contender, 1)  # warm-up (caches, statement compilation, pool)
        contender.samples_ns.clear()
    for round_no in range(mode.rounds):
        shift = round_no % len(contenders)
        for contender in contenders[shift:] + contenders[:shift]:
            contender.samples_ns.append(_round_ns(contender, contender.number) / contender.number)


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
        return self.kit_us / self.peer_us if self.peer_us else 0.0

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


def _us(value: float) -> str:
    return f"{value:,.1f}" if value >= 100 else f"{value:.2f}"


def print_summary(rows: list[Row], header: str) -> None:
    """A readable table: per-call times, ratio (and median ratio), target, verdict."""
    table = [("benchmark", "kit us", "peer us", "kit/peer", "(median)", "target", "verdict")]
    for row in rows:
        median = row.extra.get("median_ratio")
        table.append(
            (
                row.name,
                _us(row.kit_us),
                _us(row.peer_us),
                f"{row.ratio:.3f}x",
                "" if median is None else f"{median:.3f}x",
                row.target,
                row.verdict,
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
