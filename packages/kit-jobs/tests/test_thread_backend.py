"""The thread backend: a bounded pool, one scheduler thread for delays, backoffs and
deadlines, FIFO concurrency limits that never park a pool thread, timeouts reported
without releasing the slot early, draining shutdown, bounded history.

Timing assertions here are about correctness only (a job did not start before its
``run_at``, a second run did not start before the first returned); waits are generous
so that a loaded two-core machine passes too.
"""

from __future__ import annotations

import doctest
import os
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog

import kit_jobs.backends.thread as thread_module
from kit_jobs import (
    BackendClosed,
    ConfigurationError,
    Event,
    JobCanceled,
    JobContext,
    JobFailed,
    JobNotFound,
    Jobs,
    JobStatus,
    JobTimedOut,
    Retry,
    dispatch,
    job,
    listen,
)
from kit_jobs.backends.thread import ThreadBackend

WAIT = 10.0  # seconds any single result() may take on a slow machine


def wait_until(predicate: Callable[[], object], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.005)
    raise AssertionError(f"condition not met within {timeout} s")


@contextmanager
def opened(gate: threading.Event) -> Iterator[threading.Event]:
    """Whatever the test does, open ``gate`` at the end so no pool thread stays blocked
    and the ``with Jobs(...)`` exit can drain."""
    try:
        yield gate
    finally:
        gate.set()


def pool_threads(backend: ThreadBackend) -> list[threading.Thread]:
    """The backend's worker threads and its scheduler thread."""
    scheduler = [backend._scheduler] if backend._scheduler is not None else []
    return [*backend._workers, *scheduler]


# -- configuration and life cycle -----------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -1, True, 2.5, "3"])
def test_max_workers_is_validated(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="max_workers"):
        ThreadBackend(max_workers=bad)


def test_history_is_validated() -> None:
    with pytest.raises(ConfigurationError, match="history"):
        Jobs(backend="thread", history=0)


def test_defaults_name_and_delivery() -> None:
    backend = ThreadBackend()
    assert backend.max_workers == min(32, (os.cpu_count() or 1) + 4)
    assert backend.name == "thread"
    assert "at-most-once" in backend.delivery
    assert "lost" in backend.delivery
    jobs = Jobs(backend="thread", max_workers=3, history=7)
    assert isinstance(jobs.backend, ThreadBackend)
    assert jobs.backend.max_workers == 3
    assert jobs.backend.store.history == 7
    assert jobs.shutdown() == []


def test_pool_starts_lazily_and_its_threads_exit() -> None:
    @job(name="t.thread.lazy.echo")
    def echo(x: int) -> int:
        return x

    jobs = Jobs(backend="thread", max_workers=3)
    backend = jobs.backend
    assert isinstance(backend, ThreadBackend)
    try:
        assert backend._workers == []
        assert jobs.enqueue(echo, 5).result(timeout=WAIT) == 5
        threads = pool_threads(backend)
        assert len(backend._workers) == 3
        assert all(t.is_alive() and not t.daemon for t in threads)
        jobs.start()  # idempotent
        assert len(backend._workers) == 3
    finally:
        assert jobs.shutdown(wait=True) == []
    for t in threads:
        t.join(WAIT)
        assert not t.is_alive()
    with pytest.raises(BackendClosed):
        jobs.start()


def test_class_docstring_example_runs() -> None:
    failed, attempted = doctest.testmod(thread_module, optionflags=doctest.ELLIPSIS)
    assert attempted > 0
    assert failed == 0


# -- 1. many jobs, delays and limits ----------------------------------------------------------


class Tracker:
    """Counts runs per token and simultaneous runs per task, under a lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.runs: Counter[int] = Counter()
        self.started_at: dict[int, float] = {}
        self.active: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()

    def body(self, kind: str, pause: float) -> Callable[[int], str]:
        def run(token: int) -> str:
            now = time.time()
            with self.lock:
                self.runs[token] += 1
                self.started_at[token] = now
                self.active[kind] += 1
                self.peak[kind] = max(self.peak[kind], self.active[kind])
            try:
                if pause:
                    time.sleep(pause)
            finally:
                with self.lock:
                    self.active[kind] -= 1
            return kind

        return run


def test_mixed_delays_and_limits_run_every_job_once_within_limits() -> None:
    tracker = Tracker()
    tasks = [
        job(name="t.thread.mix.lim2", concurrency=2)(tracker.body("lim2", 0.002)),
        job(name="t.thread.mix.lim3", concurrency=3)(tracker.body("lim3", 0.002)),
        job(name="t.thread.mix.free1")(tracker.body("free1", 0.0)),
        job(name="t.thread.mix.free2")(tracker.body("free2", 0.001)),
    ]
    rng = random.Random(1234)
    delays = [0.0, 0.0, 0.0, 0.05, 0.1, 0.2, 0.3]
    with Jobs(backend="thread", max_workers=4) as jobs:
        refs = []
        for token in range(1000):
            delay = rng.choice(delays)
            task = tasks[token % 4]
            refs.append(jobs.enqueue(task, token, delay=delay or None))
        kinds = [ref.result(timeout=30) for ref in refs]
        infos = [ref.info() for ref in refs]
        assert jobs.counts()[JobStatus.FINISHED] == 1000

    assert kinds == [("lim2", "lim3", "free1", "free2")[t % 4] for t in range(1000)]
    assert set(tracker.runs) == set(range(1000))
    assert set(tracker.runs.values()) == {1}, "every job runs exactly once"
    delayed = 0
    for token, info in enumerate(infos):
        assert info.status is JobStatus.FINISHED
        assert info.attempts == 1
        if info.scheduled_for is not None:
            delayed += 1
            assert tracker.started_at[token] >= info.scheduled_for, (
                f"job {token} started {info.scheduled_for - tracker.started_at[token]:.4f} s "
                "before its run_at"
            )
    assert delayed > 400
    assert tracker.peak["lim2"] <= 2
    assert tracker.peak["lim3"] <= 3
    assert sum(tracker.active.values()) == 0


def test_limited_tasks_do_not_starve_unlimited_ones() -> None:
    gate = threading.Event()
    running = threading.Semaphore(0)

    @job(name="t.thread.starve.limited", concurrency=2)
    def limited(n: int) -> int:
        running.release()
        gate.wait(WAIT)
        return n

    @job(name="t.thread.starve.free")
    def free(n: int) -> int:
        return n * 10

    with Jobs(backend="thread", max_workers=3) as jobs, opened(gate):
        blocked = [jobs.enqueue(limited, n) for n in range(20)]
        assert running.acquire(timeout=WAIT)
        assert running.acquire(timeout=WAIT)
        # 2 run (holding 2 of the 3 threads), 18 wait without holding any thread.
        counts = jobs.counts()
        assert counts[JobStatus.RUNNING] == 2
        assert counts[JobStatus.WAITING] == 18
        assert [jobs.enqueue(free, n).result(timeout=WAIT) for n in range(30)] == [
            n * 10 for n in range(30)
        ]
        assert not gate.is_set()
        assert jobs.counts()[JobStatus.WAITING] == 18
        gate.set()
        assert [ref.result(timeout=WAIT) for ref in blocked] == list(range(20))


# -- 2. delayed jobs wait in the heap, not in pool threads ------------------------------------


def test_delayed_jobs_do_not_occupy_pool_threads() -> None:
    ran: list[str] = []

    @job(name="t.thread.delay.later")
    def later(tag: str) -> None:
        ran.append(tag)

    @job(name="t.thread.delay.now")
    def now() -> str:
        return "now"

    with Jobs(backend="thread", max_workers=2) as jobs:
        before = time.time()
        delayed = [jobs.enqueue(later, f"d{n}", delay=3600) for n in range(4)]
        assert jobs.enqueue(now).result(timeout=WAIT) == "now"
        for ref in delayed:
            info = ref.info()
            assert info.status is JobStatus.SCHEDULED
            assert info.scheduled_for is not None
            assert info.scheduled_for >= before + 3600
        assert jobs.counts()[JobStatus.SCHEDULED] == 4
        not_run = jobs.shutdown(wait=True, timeout=WAIT)
    assert set(not_run) == {ref.id for ref in delayed}
    assert ran == []


def test_enqueue_at_a_past_time_runs_now() -> None:
    @job(name="t.thread.delay.past")
    def past() -> str:
        return "ran"

    with Jobs(backend="thread", max_workers=1) as jobs:
        ref = jobs.enqueue(past, at=datetime.now(UTC) - timedelta(seconds=5))
        assert ref.result(timeout=WAIT) == "ran"


# -- 3. concurrency limits are FIFO ----------------------------------------------------------


def test_concurrency_limit_runs_jobs_in_enqueue_order() -> None:
    gate = threading.Event()
    first_running = threading.Event()
    order: list[int] = []

    @job(name="t.thread.fifo.one", concurrency=1)
    def one(n: int) -> int:
        if n == 0:
            first_running.set()
            gate.wait(WAIT)
        order.append(n)
        return n

    with Jobs(backend="thread", max_workers=4) as jobs, opened(gate):
        refs = [jobs.enqueue(one, 0)]
        assert first_running.wait(WAIT)
        refs += [jobs.enqueue(one, n) for n in range(1, 21)]
        assert [ref.status() for ref in refs[1:]] == [JobStatus.WAITING] * 20
        assert jobs.counts()[JobStatus.WAITING] == 20
        gate.set()
        assert [ref.result(timeout=WAIT) for ref in refs] == list(range(21))
    assert order == list(range(21))


# -- 4. timeouts --------------------------------------------------------------------------------


def test_timeout_is_reported_but_the_slot_is_held_until_the_run_returns() -> None:
    gate = threading.Event()
    events: list[str] = []

    @job(name="t.thread.timeout.slow", concurrency=1, timeout=0.2)
    def slow(n: int) -> str:
        if n == 1:
            gate.wait(WAIT)  # "sleeps" until the test lets it return
            events.append("first returned")
            return "late"
        events.append("second started")
        return "second"

    with (
        structlog.testing.capture_logs() as logs,
        Jobs(backend="thread", max_workers=3) as jobs,
        opened(gate),
    ):
        first = jobs.enqueue(slow, 1)
        second = jobs.enqueue(slow, 2)
        asked = time.monotonic()
        with pytest.raises(JobTimedOut) as raised:
            first.result(timeout=WAIT)
        assert time.monotonic() - asked >= 0.19  # not before the timeout ...
        assert events == []  # ... and without waiting for the function to return
        assert raised.value.error_type == "JobTimedOut"
        info = first.info()
        assert info.status is JobStatus.FAILED
        assert info.timed_out
        assert info.error is not None
        assert info.error.startswith("JobTimedOut")
        stuck = jobs.stuck()
        assert [i.id for i in stuck] == [first.id]
        assert stuck[0].worker is not None
        assert stuck[0].worker.startswith("kit-jobs-worker-")
        timed_out = [e for e in logs if e["event"] == "job_timed_out"]
        assert [e["job_id"] for e in timed_out] == [first.id]
        assert timed_out[0]["log_level"] == "warning"
        # The timed-out run still holds the task's only slot.
        time.sleep(0.3)
        assert second.status() is JobStatus.WAITING
        assert events == []
        gate.set()
        assert second.result(timeout=WAIT) == "second"
        assert events == ["first returned", "second started"]
        with pytest.raises(JobTimedOut):
            first.result(timeout=WAIT)  # the late "late" was discarded
        wait_until(lambda: any(e["event"] == "job_late_result_discarded" for e in logs))
        late = next(e for e in logs if e["event"] == "job_late_result_discarded")
        assert late["job_id"] == first.id
        wait_until(lambda: jobs.stuck() == [])


def test_timed_out_job_is_retried_once_its_slot_is_free() -> None:
    gate = threading.Event()
    lock = threading.Lock()
    attempts: list[int] = []
    active = peak = 0

    def body(n: int) -> str:
        nonlocal active, peak
        with lock:
            attempts.append(n)
            first = len(attempts) == 1
            active += 1
            peak = max(peak, active)
        try:
            if first:
                gate.wait(WAIT)
        finally:
            with lock:
                active -= 1
        return "done"

    task = job(
        name="t.thread.timeout.retried",
        concurrency=1,
        timeout=0.2,
        retry=Retry(max=1, backoff=0.05, jitter=False),
    )(body)
    with Jobs(backend="thread", max_workers=3) as jobs, opened(gate):
        ref = jobs.enqueue(task, 7)
        # Timed out, backoff over: the retry waits for the slot the first run holds.
        wait_until(lambda: ref.status() is JobStatus.WAITING)
        info = ref.info()
        assert info.attempts == 1
        assert info.retries_left == 0
        assert info.timed_out
        assert [i.id for i in jobs.stuck()] == [ref.id]
        time.sleep(0.2)
        assert ref.status() is JobStatus.WAITING
        assert attempts == [7]
        gate.set()
        assert ref.result(timeout=WAIT) == "done"
        assert ref.info().attempts == 2
    assert attempts == [7, 7]
    assert peak == 1


def test_a_run_that_returns_after_its_timeout_counts_as_timed_out() -> None:
    @job(name="t.thread.timeout.overran", timeout=0.05)
    def overran() -> str:
        time.sleep(0.3)
        return "too late"

    with Jobs(backend="thread", max_workers=1) as jobs:
        ref = jobs.enqueue(overran)
        with pytest.raises(JobTimedOut):
            ref.result(timeout=WAIT)
        wait_until(lambda: jobs.stuck() == [] and jobs.counts()[JobStatus.RUNNING] == 0)
        assert ref.info().timed_out


# -- 5. retries ---------------------------------------------------------------------------------


def test_retries_back_off_then_succeed() -> None:
    calls: list[float] = []

    @job(name="t.thread.retry.flaky", retry=Retry(max=3, backoff=0.05, jitter=False))
    def flaky() -> str:
        calls.append(time.time())
        if len(calls) < 3:
            raise ValueError(f"boom {len(calls)}")
        return "ok"

    with structlog.testing.capture_logs() as logs, Jobs(backend="thread", max_workers=2) as jobs:
        ref = jobs.enqueue(flaky)
        assert ref.result(timeout=WAIT) == "ok"
        info = ref.info()
    assert info.status is JobStatus.FINISHED
    assert info.attempts == 3
    assert info.retries_left == 1
    assert len(calls) == 3
    assert calls[1] - calls[0] >= 0.05  # each retry waited its backoff
    assert calls[2] - calls[1] >= 0.1
    # ... in the scheduler's heap: the last attempt's run_at, not started before it.
    assert info.scheduled_for is not None
    assert calls[1] + 0.1 <= info.scheduled_for <= calls[2]
    retries = [e for e in logs if e["event"] == "job_retry"]
    assert [(e["job_id"], e["delay_s"]) for e in retries] == [(ref.id, 0.05), (ref.id, 0.1)]


def test_a_job_waiting_for_its_retry_is_scheduled() -> None:
    @job(name="t.thread.retry.later", retry=Retry(max=2, backoff=3600, jitter=False))
    def later() -> None:
        raise ValueError("not yet")

    with Jobs(backend="thread", max_workers=1) as jobs:
        ref = jobs.enqueue(later)
        wait_until(lambda: ref.status() is JobStatus.SCHEDULED)
        info = ref.info()
        assert info.attempts == 1
        assert info.retries_left == 1
        assert info.error == "ValueError: not yet"
        assert info.scheduled_for is not None
        assert info.scheduled_for > time.time() + 3000
        assert jobs.shutdown(wait=True, timeout=WAIT) == [ref.id]
    # It ran and its retry will not: failed, with its last error.
    with pytest.raises(JobFailed, match="not yet"):
        ref.result(timeout=0)


def test_retries_exhausted_fail_with_the_last_error() -> None:
    calls: list[int] = []

    @job(name="t.thread.retry.hopeless", retry=Retry(max=2, backoff=0.01, jitter=False))
    def hopeless() -> None:
        calls.append(1)
        raise KeyError(f"nope {len(calls)}")

    with Jobs(backend="thread", max_workers=2) as jobs:
        ref = jobs.enqueue(hopeless)
        with pytest.raises(JobFailed) as raised:
            ref.result(timeout=WAIT)
        assert type(raised.value) is JobFailed
        assert raised.value.error_type == "KeyError"
        assert "nope 3" in str(raised.value)
        assert "3 attempt(s)" in str(raised.value)
        assert "KeyError" in raised.value.traceback
        info = ref.info()
        assert info.status is JobStatus.FAILED
        assert info.attempts == 3
        assert info.retries_left == 0
        assert [i.id for i in jobs.failed()] == [ref.id]


# -- 6. shutdown ------------------------------------------------------------------------------


def test_shutdown_drains_queued_and_running_and_reports_delayed() -> None:
    ran: list[str] = []

    @job(name="t.thread.shutdown.work")
    def work(tag: str, pause: float) -> str:
        time.sleep(pause)
        ran.append(tag)
        return tag

    @job(name="t.thread.shutdown.limited", concurrency=1)
    def limited(tag: str) -> str:
        time.sleep(0.02)
        ran.append(tag)
        return tag

    jobs = Jobs(backend="thread", max_workers=2)
    backend = jobs.backend
    assert isinstance(backend, ThreadBackend)
    with structlog.testing.capture_logs() as logs:
        running = [jobs.enqueue(work, f"slow{n}", 0.2) for n in range(2)]
        queued = [jobs.enqueue(work, f"quick{n}", 0.0) for n in range(10)]
        waiting = [jobs.enqueue(limited, f"lim{n}") for n in range(3)]
        delayed = [jobs.enqueue(work, f"later{n}", 0.0, delay=3600) for n in range(3)]
        threads = pool_threads(backend)
        not_run = jobs.shutdown(wait=True, timeout=WAIT)
    assert sorted(not_run) == sorted(ref.id for ref in delayed)
    for ref in running + queued + waiting:
        assert ref.status() is JobStatus.FINISHED
    assert sorted(ran) == sorted(
        [f"slow{n}" for n in range(2)]
        + [f"quick{n}" for n in range(10)]
        + [f"lim{n}" for n in range(3)]
    )
    for ref in delayed:
        assert ref.status() is JobStatus.CANCELED
        with pytest.raises(JobCanceled):
            ref.result(timeout=0)
    reported = [e for e in logs if e["event"] == "jobs_not_run"]
    assert len(reported) == 1
    assert sorted(reported[0]["job_ids"]) == sorted(not_run)
    assert reported[0]["log_level"] == "warning"
    assert all(not t.is_alive() for t in threads)
    with pytest.raises(BackendClosed):
        jobs.enqueue(work, "after", 0.0)
    assert jobs.shutdown() == []  # idempotent
    assert jobs.shutdown(wait=False) == []


def test_shutdown_timeout_returns_what_is_still_pending() -> None:
    gate = threading.Event()
    started = threading.Event()
    ran: list[int] = []

    @job(name="t.thread.shutdown.blocker")
    def blocker() -> str:
        started.set()
        gate.wait(WAIT)
        return "released"

    @job(name="t.thread.shutdown.behind")
    def behind(n: int) -> None:
        ran.append(n)

    jobs = Jobs(backend="thread", max_workers=1)
    backend = jobs.backend
    assert isinstance(backend, ThreadBackend)
    with opened(gate):
        blocked = jobs.enqueue(blocker)
        assert started.wait(WAIT)
        pending = [jobs.enqueue(behind, n) for n in range(5)]
        with structlog.testing.capture_logs() as logs:
            not_run = jobs.shutdown(wait=True, timeout=0.3)
        assert sorted(not_run) == sorted(ref.id for ref in pending)
        assert [ref.status() for ref in pending] == [JobStatus.CANCELED] * 5
        still = [e for e in logs if e["event"] == "jobs_still_running"]
        assert [e["job_ids"] for e in still] == [[blocked.id]]
        assert blocked.status() is JobStatus.RUNNING
    assert blocked.result(timeout=WAIT) == "released"
    for t in pool_threads(backend):
        t.join(WAIT)
        assert not t.is_alive()
    assert ran == []


def test_shutdown_without_wait_returns_pending_ids_at_once() -> None:
    gate = threading.Event()
    started = threading.Event()
    ran: list[int] = []

    @job(name="t.thread.nowait.blocker")
    def blocker() -> str:
        started.set()
        gate.wait(WAIT)
        return "released"

    @job(name="t.thread.nowait.behind")
    def behind(n: int) -> None:
        ran.append(n)

    @job(name="t.thread.nowait.limited", concurrency=1)
    def limited(n: int) -> None:
        ran.append(n)

    jobs = Jobs(backend="thread", max_workers=1)
    backend = jobs.backend
    assert isinstance(backend, ThreadBackend)
    with opened(gate):
        blocked = jobs.enqueue(blocker)
        assert started.wait(WAIT)
        pending = [jobs.enqueue(behind, n) for n in range(3)]
        pending += [jobs.enqueue(limited, n) for n in range(10, 13)]  # 1 queued, 2 waiting
        pending += [jobs.enqueue(behind, n, delay=3600) for n in range(20, 22)]
        not_run = jobs.shutdown(wait=False)
        assert sorted(not_run) == sorted(ref.id for ref in pending)
        assert blocked.status() is JobStatus.RUNNING
    assert blocked.result(timeout=WAIT) == "released"
    for t in pool_threads(backend):
        t.join(WAIT)
        assert not t.is_alive()
    assert ran == []
    assert all(ref.status() is JobStatus.CANCELED for ref in pending)


# -- 7. history -------------------------------------------------------------------------------


def test_history_keeps_only_the_newest_ended_jobs() -> None:
    @job(name="t.thread.history.echo")
    def echo(n: int) -> int:
        return n

    with Jobs(backend="thread", max_workers=2, history=5) as jobs:
        refs = []
        for n in range(20):
            ref = jobs.enqueue(echo, n)
            assert ref.result(timeout=WAIT) == n
            refs.append(ref)
        for ref in refs[:15]:
            with pytest.raises(JobNotFound):
                ref.status()
            with pytest.raises(JobNotFound):
                ref.result(timeout=0)
        assert [ref.result(timeout=0) for ref in refs[15:]] == list(range(15, 20))
        assert sum(jobs.counts().values()) == 5


# -- 8. cancel and retry ------------------------------------------------------------------------


def test_cancel_before_a_job_starts() -> None:
    gate = threading.Event()
    started = threading.Event()
    ran: list[str] = []

    @job(name="t.thread.cancel.blocker", concurrency=1)
    def blocker(tag: str) -> None:
        if tag == "first":
            started.set()
            gate.wait(WAIT)
        ran.append(tag)

    @job(name="t.thread.cancel.free")
    def free(tag: str) -> None:
        ran.append(tag)

    with Jobs(backend="thread", max_workers=1) as jobs, opened(gate):
        running = jobs.enqueue(blocker, "first")
        assert started.wait(WAIT)
        waiting = jobs.enqueue(blocker, "waiting")
        waiting_after = jobs.enqueue(blocker, "waiting after")
        queued = jobs.enqueue(free, "queued")
        scheduled = jobs.enqueue(free, "scheduled", delay=3600)
        assert waiting.status() is JobStatus.WAITING
        assert queued.status() is JobStatus.QUEUED
        assert scheduled.status() is JobStatus.SCHEDULED

        assert scheduled.cancel() is True
        assert waiting.cancel() is True
        assert queued.cancel() is True
        assert running.cancel() is False
        assert scheduled.cancel() is False  # already canceled
        for ref in (scheduled, waiting, queued):
            assert ref.status() is JobStatus.CANCELED
            with pytest.raises(JobCanceled):
                ref.result(timeout=0)
        gate.set()
        assert running.result(timeout=WAIT) is None
        assert waiting_after.result(timeout=WAIT) is None
        assert running.cancel() is False  # ended
        assert jobs.shutdown(wait=True, timeout=WAIT) == []
    assert ran == ["first", "waiting after"]


def test_retry_runs_a_failed_job_again_under_the_same_id() -> None:
    attempts: list[int] = []

    @job(name="t.thread.retry.again")
    def again(n: int) -> int:
        attempts.append(n)
        if len(attempts) == 1:
            raise RuntimeError("first time fails")
        return n * 2

    @job(name="t.thread.retry.canceled")
    def canceled() -> str:
        return "ran after all"

    with Jobs(backend="thread", max_workers=2) as jobs:
        ref = jobs.enqueue(again, 21)
        with pytest.raises(JobFailed, match="first time fails"):
            ref.result(timeout=WAIT)
        assert jobs.retry(ref.id) is True
        assert ref.result(timeout=WAIT) == 42
        info = ref.info()
        assert info.status is JobStatus.FINISHED
        assert info.attempts == 1  # fresh attempts
        assert info.error is None
        assert jobs.retry(ref.id) is False  # finished
        assert attempts == [21, 21]

        later = jobs.enqueue(canceled, delay=3600)
        assert later.cancel() is True
        assert jobs.retry(later.id) is True  # runs now, no delay
        assert later.result(timeout=WAIT) == "ran after all"
        with pytest.raises(JobNotFound):
            jobs.retry("no-such-id")


# -- 9. unique jobs ------------------------------------------------------------------------------


def test_unique_jobs_run_once_within_the_window() -> None:
    runs: Counter[int] = Counter()

    @job(name="t.thread.unique.welcome", unique="{user_id}")
    def welcome(user_id: int) -> int:
        runs[user_id] += 1
        return user_id

    with Jobs(backend="thread", max_workers=2) as jobs:
        first = jobs.enqueue(welcome, 7)
        second = jobs.enqueue(welcome, 7)
        other = jobs.enqueue(welcome, 8)
        assert first.id == second.id
        assert other.id != first.id
        assert first.result(timeout=WAIT) == 7
        assert second.result(timeout=WAIT) == 7
        assert other.result(timeout=WAIT) == 8
        assert jobs.enqueue(welcome, 7).id == first.id  # finished, still in the window
    assert runs == {7: 1, 8: 1}


# -- 10. log context -------------------------------------------------------------------------------


def test_log_context_bound_at_enqueue_is_visible_in_the_job() -> None:
    @job(name="t.thread.context.read")
    def read() -> dict[str, Any]:
        return structlog.contextvars.get_contextvars()

    with Jobs(backend="thread", max_workers=1) as jobs:
        with structlog.contextvars.bound_contextvars(request_id="r1"):
            ref = jobs.enqueue(read)
        seen = ref.result(timeout=WAIT)
        assert seen["request_id"] == "r1"
        assert seen["job_id"] == ref.id
        assert seen["job_task"] == "t.thread.context.read"
        assert seen["job_attempt"] == 1
        # The same pool thread runs the next job without the previous job's context.
        plain = jobs.enqueue(read)
        seen = plain.result(timeout=WAIT)
        assert "request_id" not in seen
        assert seen["job_id"] == plain.id


# -- 11. a failing job never kills a pool thread ------------------------------------------------


@dataclass(frozen=True)
class ThreadTestPinged(Event):
    n: int


def test_listener_and_job_exceptions_never_kill_a_pool_thread() -> None:
    @listen(ThreadTestPinged)
    def explode(event: ThreadTestPinged) -> None:
        raise RuntimeError(f"listener broke on {event.n}")

    @job(name="t.thread.crash.ping")
    def ping(n: int) -> None:
        dispatch(ThreadTestPinged(n))

    @job(name="t.thread.crash.exit")
    def leave() -> None:
        raise SystemExit(3)

    @job(name="t.thread.crash.hooked")
    def hooked() -> str:
        return "fine, but its hook breaks"

    @job(name="t.thread.crash.ok")
    def ok(n: int) -> tuple[int, str]:
        return n, threading.current_thread().name

    @contextmanager
    def breaks_on_exit(context: JobContext) -> Iterator[None]:
        yield
        if context.task.name == "t.thread.crash.hooked":
            raise ValueError("hook broke")

    with Jobs(backend="thread", max_workers=1) as jobs:
        jobs.around_job(breaks_on_exit)
        failing = jobs.enqueue(ping, 1)
        leaving = jobs.enqueue(leave)
        broken = jobs.enqueue(hooked)
        oks = [jobs.enqueue(ok, n) for n in range(100)]
        with pytest.raises(JobFailed, match="listener broke on 1") as raised:
            failing.result(timeout=WAIT)
        assert raised.value.error_type == "RuntimeError"
        with pytest.raises(JobFailed) as raised:
            leaving.result(timeout=WAIT)
        assert raised.value.error_type == "SystemExit"
        with pytest.raises(JobFailed, match="hook broke") as raised:
            broken.result(timeout=WAIT)
        assert raised.value.error_type == "ValueError"
        results = [ref.result(timeout=WAIT) for ref in oks]
        assert [n for n, _ in results] == list(range(100))
        assert {name for _, name in results} == {"kit-jobs-worker-0"}
        assert jobs.counts()[JobStatus.FINISHED] == 100


# -- inspection and clear ----------------------------------------------------------------------


def test_info_list_and_counts() -> None:
    gate = threading.Event()
    started = threading.Event()

    @job(name="t.thread.inspect.block", queue="inspect")
    def block(n: int) -> int:
        started.set()
        gate.wait(WAIT)
        return n

    with Jobs(backend="thread", max_workers=1) as jobs, opened(gate):
        running = jobs.enqueue(block, 1)
        assert started.wait(WAIT)
        queued = jobs.enqueue(block, 2)
        info = running.info()
        assert info.status is JobStatus.RUNNING
        assert info.worker == "kit-jobs-worker-0"
        assert info.queue == "inspect"
        assert info.args == [1]
        assert info.started_at is not None
        assert queued.info().worker is None
        assert [i.id for i in jobs.list(JobStatus.RUNNING)] == [running.id]
        assert jobs.list(JobStatus.RUNNING)[0].worker == "kit-jobs-worker-0"
        assert [i.id for i in jobs.list("queued")] == [queued.id]
        counts = jobs.counts()
        assert set(counts) == set(JobStatus)
        assert counts[JobStatus.RUNNING] == 1
        assert counts[JobStatus.QUEUED] == 1
        assert jobs.stuck() == []  # no timeout
        gate.set()
        assert queued.result(timeout=WAIT) == 2
        with pytest.raises(JobNotFound):
            jobs.info("missing")


def test_clear_forgets_ended_cancels_pending_and_refuses_running() -> None:
    gate = threading.Event()
    started = threading.Event()
    ran: list[str] = []

    @job(name="t.thread.clear.block", concurrency=1)
    def block(tag: str) -> None:
        if tag == "first":
            started.set()
            gate.wait(WAIT)
        ran.append(tag)

    @job(name="t.thread.clear.free")
    def free(tag: str) -> None:
        ran.append(tag)

    with Jobs(backend="thread", max_workers=1) as jobs, opened(gate):
        done = jobs.enqueue(free, "done")
        done.result(timeout=WAIT)
        running = jobs.enqueue(block, "first")
        assert started.wait(WAIT)
        waiting = [jobs.enqueue(block, f"w{n}") for n in range(2)]
        queued = [jobs.enqueue(free, f"q{n}") for n in range(3)]
        scheduled = jobs.enqueue(free, "s", delay=3600)
        with pytest.raises(ConfigurationError, match="running"):
            jobs.clear(JobStatus.RUNNING)
        assert jobs.clear("waiting") == 2
        assert jobs.clear(JobStatus.QUEUED) == 3
        assert jobs.clear(JobStatus.SCHEDULED) == 1
        assert all(r.status() is JobStatus.CANCELED for r in [*waiting, *queued, scheduled])
        assert jobs.clear(JobStatus.CANCELED) == 6
        with pytest.raises(JobNotFound):
            scheduled.status()
        assert jobs.clear(JobStatus.FINISHED) == 1
        with pytest.raises(JobNotFound):
            done.status()
        gate.set()
        assert running.result(timeout=WAIT) is None
    assert ran == ["done", "first"]


def test_claim_tick_and_unique_keys_use_the_store() -> None:
    backend = ThreadBackend(max_workers=1)
    assert backend.claim_tick("nightly", 100.0, 60) is True
    assert backend.claim_tick("nightly", 100.0, 60) is False
    assert backend.claim_unique("k", "job-1", 60) is None
    assert backend.claim_unique("k", "job-2", 60) == "job-1"
    backend.release_unique("k", "job-2")  # not the holder: no effect
    assert backend.claim_unique("k", "job-3", 60) == "job-1"
    backend.release_unique("k", "job-1")
    assert backend.claim_unique("k", "job-3", 60) is None
    assert backend.shutdown() == []


def test_many_threads_enqueue_at_once() -> None:
    @job(name="t.thread.concurrent.square")
    def square(n: int) -> int:
        return n * n

    results: dict[int, list[int]] = defaultdict(list)
    with Jobs(backend="thread", max_workers=4) as jobs:

        def producer(base: int) -> None:
            refs = [jobs.enqueue(square, base + n) for n in range(200)]
            results[base] = [ref.result(timeout=WAIT) for ref in refs]

        producers = [threading.Thread(target=producer, args=(b * 1000,)) for b in range(4)]
        for t in producers:
            t.start()
        for t in producers:
            t.join(30)
        assert jobs.counts()[JobStatus.FINISHED] == 800
    for base, values in results.items():
        assert values == [(base + n) ** 2 for n in range(200)]
