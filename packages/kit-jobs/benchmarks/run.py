"""kit-jobs against the libraries a user would otherwise pick, in one run.

    python packages/kit-jobs/benchmarks/run.py --out kit-jobs.json [--quick | --full]

Writes ``{"package": "kit-jobs", "results": [...], "info": {...}}`` for
``tools/bench_table.py`` and prints a summary. Every row times a whole batch of no-op
jobs; ``kit_us``/``peer_us`` are per job and ``ratio`` = kit time / peer time (below 1:
kit is faster). Missing a target is reported, never an error: the exit status is
non-zero only when something breaks (Redis cannot be started, a job is not done, a
worker process fails). See README.md next to this file for what each row compares.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import redis
import rq
from rq import Queue
from rq.serializers import JSONSerializer
from workers import MARKER, QUEUE, dramatiq_setup, kit_noop, noop

import kit_jobs
from kit_jobs import Jobs, JobStatus
from pytest_kit_services import in_ci, redis_service

HERE = Path(__file__).resolve().parent
WORKER_TIMEOUT_S = 600
ENQUEUE_CHUNK = 100


@dataclass(frozen=True)
class Mode:
    """Batch sizes and interleaved rounds of each group of rows."""

    name: str
    thread_jobs: int
    thread_rounds: int
    enqueue_jobs: int
    enqueue_rounds: int
    e2e_jobs: int
    e2e_rounds: int
    threads: int = 4


FULL = Mode("full", 10_000, 11, 2_000, 9, 2_000, 3)
QUICK = Mode("quick", 2_000, 9, 500, 5, 500, 2)


# --------------------------------------------------------------------------- timing


@dataclass(frozen=True)
class Sample:
    """One batch: wall time and CPU time (every thread of the process that ran it), s."""

    wall: float
    cpu: float


class Clock:
    """Wall and CPU time of the ``with`` block, as a :class:`Sample`."""

    def __enter__(self) -> Clock:
        self._cpu = time.process_time()
        self._wall = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sample = Sample(time.perf_counter() - self._wall, time.process_time() - self._cpu)


@dataclass
class Contender:
    """One side of a comparison: ``run()`` does one batch of ``jobs`` jobs (its own set-up
    and checks untimed) and returns the timed part."""

    label: str
    jobs: int
    run: Callable[[], Sample] | None = None
    samples: list[Sample] = field(default_factory=list)

    def _per_job_us(self, seconds: float) -> float:
        return seconds / self.jobs * 1e6

    @property
    def min_us(self) -> float:
        return self._per_job_us(min(s.wall for s in self.samples))

    @property
    def median_us(self) -> float:
        return self._per_job_us(statistics.median(s.wall for s in self.samples))

    @property
    def cpu_us(self) -> float:
        return self._per_job_us(min(s.cpu for s in self.samples))


def interleave(contenders: list[Contender], rounds: int) -> None:
    """One batch of every contender per round; the order rotates each round, so a burst
    of load on this (shared) machine falls on every side alike."""
    for round_no in range(rounds):
        shift = round_no % len(contenders)
        for contender in contenders[shift:] + contenders[:shift]:
            gc.collect()  # each batch starts without the previous one's garbage
            assert contender.run is not None
            contender.samples.append(contender.run())


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
        """A timed row; ``meets`` judges the ratio of the fastest rounds (None: "info")."""
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
                "kit_median_us": round(kit.median_us, 3),
                "peer_median_us": round(peer.median_us, 3),
                "median_ratio": round(kit.median_us / peer.median_us, 4),
                "kit_cpu_us": round(kit.cpu_us, 3),
                "peer_cpu_us": round(peer.cpu_us, 3),
                "cpu_ratio": round(kit.cpu_us / peer.cpu_us, 4),
                "rounds": len(kit.samples),
                "jobs_per_round": kit.jobs,
                "kit_jobs_per_s": round(1e6 / kit.min_us),
                "peer_jobs_per_s": round(1e6 / peer.min_us),
                "stat": "fastest of interleaved rounds, per job",
                **extra,
            },
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kit": self.kit,
            "peer": self.peer,
            "kit_us": round(self.kit_us, 3),
            "peer_us": round(self.peer_us, 3),
            "ratio": round(self.ratio, 4),
            "target": self.target,
            "verdict": self.verdict,
            **self.extra,
        }


def print_summary(rows: list[Row], header: str) -> None:
    """A plain table: per-job times, ratio (and speed-up when kit is faster), verdict."""
    table = [
        ("benchmark", "kit us/job", "peer us/job", "kit/peer", "(median)", "target", "verdict")
    ]
    for row in rows:
        ratio = f"{row.ratio:.3f}x"
        if row.ratio < 0.5:
            ratio += f" ({1 / row.ratio:.1f}x faster)"
        median = row.extra.get("median_ratio")
        table.append(
            (
                row.name,
                f"{row.kit_us:.1f}",
                f"{row.peer_us:.1f}",
                ratio,
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
    for row in rows:
        print(f"  {row.name}\n      kit:  {row.kit}\n      peer: {row.peer}")


def _check(what: str, got: object, expected: object) -> None:
    if got != expected:
        raise RuntimeError(f"{what}: got {got!r}, expected {expected!r}")


# --------------------------------------------------------------------------- thread


def thread_rows(mode: Mode) -> list[Row]:
    """Row 1: N no-op jobs through the thread backend vs a raw ThreadPoolExecutor."""
    n, w = mode.thread_jobs, mode.threads

    def kit() -> Sample:
        jobs = Jobs(backend="thread", max_workers=w, history=max(n, 10_000))
        enqueue = jobs.enqueue
        with Clock() as clock:
            for _ in range(n):
                enqueue(kit_noop)
            jobs.shutdown(wait=True)  # lets every queued job finish, then stops the pool
        _check("thread backend: finished jobs", jobs.counts()[JobStatus.FINISHED], n)
        return clock.sample

    def raw() -> Sample:
        executor = ThreadPoolExecutor(w)
        submit = executor.submit
        with Clock() as clock:
            futures = [submit(noop) for _ in range(n)]
            wait_futures(futures)
            executor.shutdown(wait=True)
        _check("ThreadPoolExecutor: jobs done", sum(f.exception() is None for f in futures), n)
        return clock.sample

    kit_c = Contender(
        f"Jobs(backend='thread', max_workers={w}).enqueue() + shutdown(wait=True)", n, kit
    )
    raw_c = Contender(f"ThreadPoolExecutor({w}).submit() + wait() + shutdown()", n, raw)
    kit()  # warm-up: imports, first thread start
    raw()
    interleave([kit_c, raw_c], mode.thread_rounds)
    return [
        Row.compare(
            f"thread backend, {n:,} no-op jobs, {w} threads, enqueue to all done",
            kit_c,
            raw_c,
            target="<= 1.43x (>= 0.7x throughput)",
            meets=lambda r: r <= 1 / 0.7,
        )
    ]


# --------------------------------------------------------------------------- rq enqueue


def _raw_client(url: str) -> redis.Redis:
    """The settings kit_jobs.backends.rq.redis_from_url uses, for the raw RQ peers."""
    return redis.Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)


def enqueue_rows(url: str, mode: Mode) -> list[Row]:
    """Rows 2-3: enqueue N no-op jobs, kit's rq backend vs RQ's Queue.enqueue.

    A round enqueues N jobs per contender, the contenders taking turns in chunks of
    ``ENQUEUE_CHUNK`` (rotating who goes first), so a burst of load lasting a fraction of
    a second falls on all of them; the database is flushed between rounds.
    """
    n = mode.enqueue_jobs
    admin = _raw_client(url)
    jobs = Jobs(backend="rq", redis_url=url)
    raw = _raw_client(url)
    json_queue = Queue(QUEUE, connection=raw, serializer=JSONSerializer)
    pickle_queue = Queue(QUEUE, connection=raw)
    calls: list[tuple[Contender, Callable[[], object]]] = [
        (Contender("Jobs(backend='rq').enqueue(noop)", n), lambda: jobs.enqueue(kit_noop)),
        (
            Contender("rq.Queue(serializer=JSONSerializer).enqueue(noop)", n),
            lambda: json_queue.enqueue(noop),
        ),
        (
            Contender("rq.Queue().enqueue(noop), default pickle serializer", n),
            lambda: pickle_queue.enqueue(noop),
        ),
    ]

    def one_round(count: int, shift: int) -> list[Sample]:
        admin.flushdb()
        gc.collect()
        order = list(range(len(calls)))
        order = order[shift:] + order[:shift]
        wall = [0.0] * len(calls)
        cpu = [0.0] * len(calls)
        for chunk_start in range(0, count, ENQUEUE_CHUNK):
            size = min(ENQUEUE_CHUNK, count - chunk_start)
            for i in order:
                one = calls[i][1]
                with Clock() as clock:
                    for _ in range(size):
                        one()
                wall[i] += clock.sample.wall
                cpu[i] += clock.sample.cpu
        _check(f"enqueue: jobs in {json_queue.key}", admin.llen(json_queue.key), count * len(calls))
        return [Sample(w, c) for w, c in zip(wall, cpu, strict=True)]

    try:
        one_round(ENQUEUE_CHUNK, 0)  # warm-up
        for round_no in range(mode.enqueue_rounds):
            samples = one_round(n, round_no % len(calls))
            for (contender, _), sample in zip(calls, samples, strict=True):
                contender.samples.append(sample)
    finally:
        admin.flushdb()
        jobs.shutdown()
        raw.close()
        admin.close()
    kit_c, json_c, pickle_c = (contender for contender, _ in calls)
    return [
        Row.compare(
            f"rq enqueue, {n:,} no-op jobs, vs RQ with the same JSON serializer",
            kit_c,
            json_c,
            target="<= 1.11x (>= 0.9x throughput)",
            meets=lambda r: r <= 1 / 0.9,
        ),
        Row.compare(
            f"rq enqueue, {n:,} no-op jobs, vs RQ's default (pickle)",
            kit_c,
            pickle_c,
            target="info",
            meets=None,
        ),
    ]


# --------------------------------------------------------------------------- end to end


def _worker_process(kind: str, url: str, n: int) -> tuple[Sample, float]:
    """Run one worker of ``kind`` over the queued jobs in a subprocess; return the time
    measured inside it from start of work to all done, and the wall time of the process."""
    path = os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ, PYTHONPATH=path)
    argv = [sys.executable, "-c", "import workers; raise SystemExit(workers.main())"]
    started = time.perf_counter()
    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        [*argv, kind, url, str(n)],
        env=env,
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=WORKER_TIMEOUT_S,
        check=False,
    )
    wall = time.perf_counter() - started
    lines = [line for line in done.stdout.splitlines() if line.startswith(MARKER)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"{kind} worker exited with {done.returncode}:\n{done.stdout[-2000:]}\n"
            f"{done.stderr[-4000:]}"
        )
    result = json.loads(lines[-1][len(MARKER) :])
    _check(f"{kind} worker: jobs done", result["done"], n)
    return Sample(float(result["seconds"]), float(result["cpu_seconds"])), wall


def e2e_rows(url: str, mode: Mode) -> list[Row]:
    """Rows 4-6: N no-op jobs queued in Redis, then ONE worker process runs them all."""
    n = mode.e2e_jobs
    admin = _raw_client(url)
    jobs = Jobs(backend="rq", redis_url=url)
    raw = _raw_client(url)
    json_queue = Queue(QUEUE, connection=raw, serializer=JSONSerializer)
    broker, actor = dramatiq_setup(url)
    walls: dict[str, list[float]] = {}

    def contender(label: str, kind: str, fill: Callable[[], object]) -> Contender:
        def run() -> Sample:
            admin.flushdb()
            for _ in range(n):
                fill()
            sample, wall = _worker_process(kind, url, n)
            walls.setdefault(kind, []).append(wall)
            if kind != "dramatiq":
                _check(f"{kind}: jobs left in {json_queue.key}", admin.llen(json_queue.key), 0)
            return sample

        return Contender(label, n, run)

    kit_c = contender(
        "KitWorker(heartbeat_ttl=30).work(burst=True), 1 process",
        "kit",
        lambda: jobs.enqueue(kit_noop),
    )
    fork_c = contender(
        "rq.Worker (forks a work horse per job), work(burst=True)",
        "rq-fork",
        lambda: json_queue.enqueue(noop),
    )
    simple_c = contender(
        "rq.SimpleWorker (no fork), work(burst=True)",
        "rq-simple",
        lambda: json_queue.enqueue(noop),
    )
    dramatiq_c = contender(
        "dramatiq.Worker(RedisBroker, worker_threads=8), 1 process",
        "dramatiq",
        actor.send,
    )
    try:
        interleave([kit_c, fork_c, simple_c, dramatiq_c], mode.e2e_rounds)
    finally:
        admin.flushdb()
        jobs.shutdown()
        broker.close()
        raw.close()
        admin.close()

    def walls_of(kind: str) -> dict[str, Any]:
        return {f"{kind}_process_wall_s": [round(s, 3) for s in walls.get(kind, [])]}

    common = {
        "stat": "fastest of interleaved rounds, per job; timed inside the worker process "
        "from the start of work to all jobs done (no interpreter start-up or imports)",
        **walls_of("kit"),
    }
    fork_row = Row.compare(
        f"end to end, {n:,} jobs queued, 1 worker: KitWorker vs RQ's forking Worker",
        kit_c,
        fork_c,
        target="<= 0.2x (>= 5x faster)",
        meets=lambda r: r <= 0.2,
        **common,
        **walls_of("rq-fork"),
    )
    return [
        fork_row,
        Row.compare(
            f"end to end, {n:,} jobs queued, 1 worker: KitWorker vs RQ's SimpleWorker",
            kit_c,
            simple_c,
            target="info",
            meets=None,
            **common,
            **walls_of("rq-simple"),
        ),
        Row.compare(
            f"end to end, {n:,} jobs queued, 1 worker: KitWorker vs dramatiq (8 threads)",
            kit_c,
            dramatiq_c,
            target="info",
            meets=None,
            **common,
            **walls_of("dramatiq"),
        ),
    ]


# --------------------------------------------------------------------------- main


def _redis_version(url: str) -> str:
    client = redis.Redis.from_url(url)
    try:
        return str(client.info("server").get("redis_version", "?"))
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--quick",
        action="store_true",
        help="smaller batches, fewer rounds (the default when CI is set)",
    )
    size.add_argument("--full", action="store_true", help="full run even when CI is set")
    args = parser.parse_args(argv)
    mode = QUICK if args.quick or (in_ci() and not args.full) else FULL

    started = time.perf_counter()
    rows: list[Row] = []
    status = 0
    redis_server = "?"
    try:
        rows += thread_rows(mode)
        with redis_service() as url:
            redis_server = _redis_version(url)
            rows += enqueue_rows(url, mode)
            rows += e2e_rows(url, mode)
    except Exception:
        traceback.print_exc()
        print("kit-jobs benchmarks: error (see above); partial results written", file=sys.stderr)
        status = 1

    info = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "kit_jobs": kit_jobs.__version__,
        "rq": rq.__version__,
        "redis_py": redis.__version__,
        "dramatiq": version("dramatiq"),
        "redis_server": redis_server,
        "mode": mode.name,
        "threads": mode.threads,
        "rounds": {
            "thread": mode.thread_rounds,
            "enqueue": mode.enqueue_rounds,
            "end_to_end": mode.e2e_rounds,
        },
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"package": "kit-jobs", "results": [r.as_json() for r in rows], "info": info}, indent=2
        )
        + "\n"
    )
    header = (
        f"kit-jobs benchmarks ({mode.name}: interleaved rounds, fastest round per job; "
        f"Python {info['python']}, {info['cpus']} CPUs; {info['seconds']} s)"
    )
    print_summary(rows, header)
    print(f"wrote {args.out}")
    return status


if __name__ == "__main__":
    sys.exit(main())
