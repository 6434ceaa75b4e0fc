"""Schedules: validation at decoration time, cron ticks in a time zone (across DST),
interval alignment, the scheduler firing each tick once (in process, in a thread, and
across two OS processes sharing a real Redis)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis
import structlog

from kit_jobs import (
    BackendUnavailable,
    ConfigurationError,
    Jobs,
    Schedule,
    SerializationError,
    Task,
    _task,
    job,
    scheduled,
)
from kit_jobs._models import JobMessage
from kit_jobs._schedule import SCHEDULES, Scheduler, due_ticks
from kit_jobs.backends.sync import SyncBackend

HELPER = Path(__file__).resolve().parent / "_scheduler_proc.py"
PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture(autouse=True)
def _isolated_registries() -> Iterator[None]:
    """Each test sees no schedules but its own, and leaves no schedule or task behind."""
    schedules, tasks = dict(SCHEDULES), dict(_task.TASKS)
    SCHEDULES.clear()
    yield
    SCHEDULES.clear()
    SCHEDULES.update(schedules)
    _task.TASKS.clear()
    _task.TASKS.update(tasks)


@pytest.fixture
def jobs() -> Iterator[Jobs]:
    runtime = Jobs(backend="sync")
    yield runtime
    runtime.shutdown()


def paris(y: int, mo: int, d: int, h: int = 0, mi: int = 0, *, fold: int = 0) -> float:
    return datetime(y, mo, d, h, mi, tzinfo=PARIS, fold=fold).timestamp()


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> float:
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC).timestamp()


def iso_utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def wait_until(predicate: Callable[[], object], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout} s")


@job(name="tests.schedule.noop")
def noop() -> None:
    pass


# ---------------------------------------------------------------------- validation


@pytest.mark.parametrize("cron", ["61 * * * *", "every day at nine", "* * *", "0 9 * * 8", ""])
def test_a_malformed_cron_string_is_refused_with_an_example(cron: str) -> None:
    with pytest.raises(ConfigurationError) as caught:

        @scheduled(cron=cron, name="bad-cron")
        def report() -> None: ...

    message = str(caught.value)
    assert repr(cron) in message
    assert "'0 9 * * 1-5'" in message  # an example of a valid one
    assert "bad-cron" not in SCHEDULES


def test_a_cron_that_never_matches_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="never matches"):
        scheduled(cron="0 0 30 2 *", name="feb-30")(noop)


def test_an_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="not a known time zone") as caught:
        scheduled(cron="0 9 * * *", tz="Europe/Pariss", name="bad-tz")(noop)
    assert "'Europe/Pariss'" in str(caught.value)
    assert "'Europe/Paris'" in str(caught.value)  # an example of a valid one
    with pytest.raises(ConfigurationError, match="not a known time zone"):
        scheduled(cron="0 9 * * *", tz="../etc/passwd", name="bad-tz")(noop)


def test_cron_and_interval_together_or_neither_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="not both") as both:
        scheduled(cron="0 9 * * *", interval=60)
    assert "interval=3600" in str(both.value)
    with pytest.raises(ConfigurationError, match="give cron=") as neither:
        scheduled()
    assert "'0 9 * * *'" in str(neither.value) and "interval=3600" in str(neither.value)
    with pytest.raises(ConfigurationError, match="not both"):
        Schedule("direct", noop, cron="0 9 * * *", interval=60)
    with pytest.raises(ConfigurationError, match="give cron="):
        Schedule("direct", noop)


@pytest.mark.parametrize("interval", [0, -5, True, "60", float("inf"), float("nan")])
def test_an_interval_must_be_positive_seconds(interval: Any) -> None:
    with pytest.raises(ConfigurationError, match="interval=") as caught:
        scheduled(interval=interval, name="bad-interval")(noop)
    assert "seconds" in str(caught.value)


def test_tz_with_an_interval_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="applies to cron"):
        scheduled(interval=60, tz="Europe/Paris", name="tz-interval")(noop)


def test_arguments_are_checked_against_the_task_at_decoration_time() -> None:
    @job(name="tests.schedule.greet")
    def greet(name: str) -> str:
        return name

    with pytest.raises(ConfigurationError, match="cannot take these arguments"):
        scheduled(interval=60, name="no-args")(greet)
    with pytest.raises(SerializationError, match="not JSON-serializable"):
        scheduled(interval=60, name="bad-arg", args=[datetime.now(UTC)])(greet)
    with pytest.raises(ConfigurationError, match="give a list"):
        scheduled(interval=60, name="str-args", args="ada")
    assert not SCHEDULES


def test_job_options_above_job_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="on @job"):
        scheduled(interval=60, queue="other", name="queue-on-task")(noop)


def test_a_taken_schedule_name_is_refused_but_the_same_schedule_again_is_not() -> None:
    scheduled(interval=60, name="nightly")(noop)
    scheduled(interval=60, name="nightly")(noop)  # a module imported twice
    with pytest.raises(ConfigurationError, match="two schedules are named 'nightly'"):
        scheduled(interval=120, name="nightly")(noop)
    assert SCHEDULES["nightly"].interval == 60


# ---------------------------------------------------------------------- decoration


def test_scheduled_wraps_a_plain_function_with_job_options() -> None:
    @scheduled(cron="0 9 * * 1-5", tz="Europe/Paris", queue="mail", retry=2, kwargs={"n": 3})
    def digest(n: int) -> int:
        return n * 2

    assert isinstance(digest, Task)
    assert digest.queue == "mail" and digest.retry is not None and digest.retry.max == 2
    assert digest(4) == 8  # still callable here and now
    schedule = SCHEDULES[digest.name]  # named after the task by default
    assert schedule.task is digest and _task.TASKS[digest.name] is digest
    assert (schedule.cron, schedule.interval, schedule.tz) == ("0 9 * * 1-5", None, "Europe/Paris")
    assert schedule.kwargs == {"n": 3} and schedule.args == ()


def test_scheduled_above_job_keeps_the_task() -> None:
    @scheduled(interval=3600, name="hourly-cleanup", args=[30])
    @job(name="tests.schedule.cleanup", queue="maintenance")
    def cleanup(days: int) -> None: ...

    schedule = SCHEDULES["hourly-cleanup"]
    assert schedule.task is cleanup and cleanup.queue == "maintenance"
    assert schedule.args == (30,) and schedule.tz == "UTC"


def test_one_task_may_have_several_schedules() -> None:
    scheduled(interval=60, name="often")(noop)
    scheduled(cron="@daily", name="daily")(noop)
    assert SCHEDULES["often"].task is SCHEDULES["daily"].task is noop


# ---------------------------------------------------------------------- tick times


def test_cron_ticks_are_computed_in_the_time_zone() -> None:
    schedule = Schedule("nine", noop, cron="0 9 * * *", tz="Europe/Paris")
    # 09:00 Paris is 08:00 UTC in winter (CET) and 07:00 UTC in summer (CEST).
    assert iso_utc(schedule.next_after(utc(2025, 1, 15, 12))) == "2025-01-16T08:00:00+00:00"
    assert iso_utc(schedule.next_after(utc(2025, 7, 15, 12))) == "2025-07-16T07:00:00+00:00"
    # strictly after: a tick is not its own next tick
    tick = paris(2025, 1, 16, 9)
    assert schedule.next_after(tick) == paris(2025, 1, 17, 9)
    # default tz is UTC
    assert Schedule("nine-utc", noop, cron="0 9 * * *").next_after(utc(2025, 1, 15, 12)) == utc(
        2025, 1, 16, 9
    )


def test_cron_ticks_stay_at_local_time_across_dst() -> None:
    schedule = Schedule("nine", noop, cron="0 9 * * *", tz="Europe/Paris")
    # Clocks go forward on 2025-03-30 at 02:00: the day has 23 hours.
    before = paris(2025, 3, 29, 9)
    after = schedule.next_after(before)
    assert after == paris(2025, 3, 30, 9)
    assert iso_utc(after) == "2025-03-30T07:00:00+00:00"
    assert after - before == 23 * 3600
    # Clocks go back on 2025-10-26 at 03:00: the day has 25 hours.
    before = paris(2025, 10, 25, 9)
    after = schedule.next_after(before)
    assert iso_utc(after) == "2025-10-26T08:00:00+00:00"
    assert after - before == 25 * 3600
    assert due_ticks(schedule, paris(2025, 3, 28, 10), paris(2025, 4, 1, 10)) == [
        paris(2025, 3, d, 9) for d in (29, 30, 31)
    ] + [paris(2025, 4, 1, 9)]


def test_cron_times_inside_the_dst_gap_and_overlap() -> None:
    at_0230 = Schedule("half-past-two", noop, cron="30 2 * * *", tz="Europe/Paris")
    # 02:30 does not exist on 2025-03-30: the tick is the first instant after the gap.
    assert at_0230.next_after(paris(2025, 3, 30, 0)) == paris(2025, 3, 30, 3)
    # 02:30 happens twice on 2025-10-26: once per offset (croniter's behaviour).
    ticks = due_ticks(at_0230, paris(2025, 10, 26, 0), paris(2025, 10, 26, 12))
    assert ticks == [paris(2025, 10, 26, 2, 30, fold=0), paris(2025, 10, 26, 2, 30, fold=1)]
    assert ticks[1] - ticks[0] == 3600


def test_a_cron_with_seconds() -> None:
    every_10s = Schedule("ten-seconds", noop, cron="* * * * * */10")
    assert due_ticks(every_10s, 1_000_003.0, 1_000_035.0) == [1_000_010.0, 1_000_020.0, 1_000_030.0]


def test_interval_ticks_are_multiples_of_the_interval_since_the_epoch() -> None:
    hourly = Schedule("hourly", noop, interval=3600)
    for ts in (0.0, 1.5, 3599.999, utc(2025, 6, 1, 10, 17), utc(2025, 6, 1, 10, 59, 59)):
        tick = hourly.next_after(ts)
        assert tick > ts and tick - ts <= 3600
        assert tick % 3600 == 0
    assert hourly.next_after(utc(2025, 6, 1, 10, 17)) == utc(2025, 6, 1, 11)
    assert hourly.next_after(utc(2025, 6, 1, 11)) == utc(2025, 6, 1, 12)  # strictly after
    # two processes started at different times compute the same ticks
    assert due_ticks(hourly, utc(2025, 6, 1, 9, 5), utc(2025, 6, 1, 12)) == [
        utc(2025, 6, 1, h) for h in (10, 11, 12)
    ]
    assert due_ticks(hourly, utc(2025, 6, 1, 9, 55), utc(2025, 6, 1, 12)) == [
        utc(2025, 6, 1, h) for h in (10, 11, 12)
    ]
    quarter = Schedule("quarter-second", noop, interval=0.25)
    assert due_ticks(quarter, 10.1, 10.9) == [10.25, 10.5, 10.75]
    assert quarter.next_after(10.5) == 10.75
    assert due_ticks(quarter, 10.0, 10.0) == []


def test_the_claim_ttl_is_twice_the_grace_of_max_period_and_60s() -> None:
    assert Schedule("s", noop, interval=1).claim_ttl(10.0) == 120.0
    assert Schedule("h", noop, interval=3600).claim_ttl(3600.0) == 7200.0
    daily = Schedule("d", noop, cron="0 9 * * *", tz="Europe/Paris")
    assert daily.claim_ttl(paris(2025, 3, 29, 9)) == 2 * 23 * 3600


# ---------------------------------------------------------------------- run_pending


class RecordingTask:
    """A task that records the tick its job serves (from the job's log context)."""

    def __init__(self, name: str) -> None:
        self.ticks: list[float] = []
        self.lock = threading.Lock()

        def record() -> None:
            with self.lock:
                self.ticks.append(structlog.contextvars.get_contextvars()["schedule_tick"])

        self.task: Task[[], None] = job(name=name)(record)


def test_run_pending_fires_each_due_tick_once(jobs: Jobs) -> None:
    recorder = RecordingTask("tests.schedule.record")
    schedule = Schedule("every-10s", recorder.task, interval=10)
    scheduler = Scheduler(jobs, schedules=[schedule])

    assert scheduler.run_pending(1000.0) == []  # the first pass arms: no back-fill
    refs = scheduler.run_pending(1035.0)
    assert [ref.status().value for ref in refs] == ["finished"] * 3
    assert recorder.ticks == [1010.0, 1020.0, 1030.0]
    assert scheduler.run_pending(1035.0) == []  # nothing new
    assert scheduler.run_pending(1039.9) == []
    assert len(scheduler.run_pending(1040.0)) == 1
    assert recorder.ticks == [1010.0, 1020.0, 1030.0, 1040.0]
    assert scheduler.run_pending(1020.0) == []  # the wall clock stepped back
    assert scheduler.run_pending(1040.0) == []
    assert recorder.ticks == [1010.0, 1020.0, 1030.0, 1040.0]
    assert scheduler.next_wakeup() == 1050.0


def test_a_tick_is_fired_once_per_backend_store(jobs: Jobs) -> None:
    recorder = RecordingTask("tests.schedule.record")
    schedule = Schedule("every-10s", recorder.task, interval=10)
    first, second = Scheduler(jobs, schedules=[schedule]), Scheduler(jobs, schedules=[schedule])
    for scheduler in (first, second):
        scheduler.run_pending(1000.0)
    assert len(first.run_pending(1025.0)) == 2
    assert second.run_pending(1025.0) == []  # same store: both ticks are claimed already
    assert len(second.run_pending(1030.0)) == 1
    assert first.run_pending(1030.0) == []
    assert recorder.ticks == [1010.0, 1020.0, 1030.0]
    # a separate store (another app on the sync backend) has claims of its own
    other = Jobs(backend="sync")
    third = Scheduler(other, schedules=[schedule])
    third.run_pending(1000.0)
    assert len(third.run_pending(1030.0)) == 3


def test_ticks_seen_later_than_the_grace_period_are_dropped(jobs: Jobs) -> None:
    recorder = RecordingTask("tests.schedule.record")
    scheduler = Scheduler(jobs, schedules=[Schedule("every-1s", recorder.task, interval=1)])
    scheduler.run_pending(1000.0)
    refs = scheduler.run_pending(1100.0)  # stalled 100 s; grace is max(1 s, 60 s)
    assert recorder.ticks == [float(t) for t in range(1041, 1101)]
    assert len(refs) == 60

    daily = RecordingTask("tests.schedule.daily")
    scheduler = Scheduler(jobs, schedules=[Schedule("daily", daily.task, cron="0 9 * * *")])
    scheduler.run_pending(utc(2025, 1, 1, 8))
    scheduler.run_pending(utc(2025, 1, 3, 8))  # two days stalled: only a tick within a day
    assert daily.ticks == [utc(2025, 1, 2, 9)]


def test_schedules_are_read_from_the_registry_on_every_pass(jobs: Jobs) -> None:
    recorder = RecordingTask("tests.schedule.record")
    scheduler = Scheduler(jobs)
    assert scheduler.run_pending(1000.0) == [] and scheduler.next_wakeup() is None
    scheduled(interval=10, name="late-import")(recorder.task)
    assert scheduler.run_pending(1005.0) == []  # armed when first seen, at 1005
    assert len(scheduler.run_pending(1020.0)) == 2
    assert recorder.ticks == [1010.0, 1020.0]
    del SCHEDULES["late-import"]
    assert scheduler.run_pending(1050.0) == []


class FlakyBackend(SyncBackend):
    """The sync backend, with claims and enqueues that fail for some ticks."""

    def __init__(self, bad_claims: set[float], bad_enqueues: int) -> None:
        super().__init__()
        self.bad_claims = bad_claims
        self.bad_enqueues = bad_enqueues

    def claim_tick(self, schedule: str, tick: float, ttl: float) -> bool:
        if tick in self.bad_claims:
            raise BackendUnavailable("redis://10.0.0.5:6379 refused the connection")
        return super().claim_tick(schedule, tick, ttl)

    def enqueue(self, message: JobMessage) -> None:
        if self.bad_enqueues > 0:
            self.bad_enqueues -= 1
            raise BackendUnavailable("redis://10.0.0.5:6379 refused the connection")
        super().enqueue(message)


def test_a_failing_claim_or_enqueue_is_logged_and_the_others_fire() -> None:
    recorder = RecordingTask("tests.schedule.record")
    runtime = Jobs(backend=FlakyBackend(bad_claims={1010.0}, bad_enqueues=1))
    scheduler = Scheduler(runtime, schedules=[Schedule("every-10s", recorder.task, interval=10)])
    scheduler.run_pending(1000.0)
    with structlog.testing.capture_logs() as logs:
        refs = scheduler.run_pending(1040.0)
    # 1010: the claim failed; 1020: claimed, the enqueue failed; 1030 and 1040 fired.
    assert recorder.ticks == [1030.0, 1040.0] and len(refs) == 2
    failed = [entry for entry in logs if entry["event"] == "schedule_enqueue_failed"]
    assert [entry["tick"] for entry in failed] == [1010.0, 1020.0]
    assert all("BackendUnavailable" in entry["error"] for entry in failed)
    fired = [entry["tick"] for entry in logs if entry["event"] == "schedule_fired"]
    assert fired == [1030.0, 1040.0]


# ---------------------------------------------------------------------- the thread


def test_the_scheduler_thread_enqueues_on_the_sync_backend(jobs: Jobs) -> None:
    recorder = RecordingTask("tests.schedule.record")
    scheduler = Scheduler(jobs, schedules=[Schedule("every-1s", recorder.task, interval=1)])
    scheduler.start()
    thread = scheduler._thread
    scheduler.start()  # idempotent
    assert scheduler._thread is thread and scheduler.running
    try:
        wait_until(lambda: len(recorder.ticks) >= 2, timeout=15)
    finally:
        started = time.monotonic()
        scheduler.stop()
        stop_took = time.monotonic() - started
    assert not scheduler.running and thread is not None and not thread.is_alive()
    assert stop_took < 2.0  # the sleep is an Event.wait: stop is prompt
    ticks = list(recorder.ticks)
    assert len(ticks) == len(set(ticks)) >= 2
    assert all(t == int(t) for t in ticks)
    assert ticks == sorted(ticks) and ticks[-1] - ticks[0] == len(ticks) - 1  # none skipped
    time.sleep(2.2)
    assert recorder.ticks == ticks  # stopped means stopped
    scheduler.stop()  # idempotent

    # restarted: the ticks that fell while it was stopped are not back-filled
    restarted_at = time.time()
    scheduler.start()
    try:
        wait_until(lambda: len(recorder.ticks) > len(ticks), timeout=15)
    finally:
        scheduler.stop()
    assert min(recorder.ticks[len(ticks) :]) > restarted_at


def test_start_scheduler_fires_registered_cron_schedules(jobs: Jobs) -> None:
    recorder = RecordingTask("tests.schedule.record")
    scheduled(cron="* * * * * *", name="every-second")(recorder.task)  # 6 fields: seconds
    scheduler = jobs.start_scheduler()
    assert jobs.start_scheduler() is scheduler
    try:
        wait_until(lambda: len(recorder.ticks) >= 2, timeout=15)
    finally:
        jobs.stop_scheduler()
    assert not scheduler.running
    assert len(recorder.ticks) == len(set(recorder.ticks)) >= 2


# ---------------------------------------------------------------------- two processes


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["standin", "rq"])
def test_two_scheduler_processes_fire_each_tick_once(
    kind: str, request: pytest.FixtureRequest
) -> None:
    """Two OS processes, each with a scheduler thread for the same 1-second schedule,
    sharing one real Redis: ``standin`` claims ticks with the rq backend's
    ``SET NX EX`` on a sync backend, ``rq`` is the real rq backend."""
    if kind == "rq":
        pytest.importorskip("kit_jobs.backends.rq")
        redis_url: str = request.getfixturevalue("redis_clean_url")  # rq leaves its jobs
    else:
        redis_url = request.getfixturevalue("redis_url")
    client = redis.Redis.from_url(redis_url)
    prefix = f"kit-jobs-test:{uuid.uuid4().hex}:"
    name = f"two-procs-{uuid.uuid4().hex[:12]}"
    procs = [
        subprocess.Popen(
            [sys.executable, str(HELPER), redis_url, prefix, name, kind],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    try:
        for _ in range(2):
            assert client.blpop([prefix + "ready"], timeout=60) is not None, (
                "a helper did not start"
            )
        deadline = time.time() + 5.0
        client.rpush(prefix + "go", repr(deadline), repr(deadline))
        for proc in procs:
            _, stderr = proc.communicate(timeout=60)
            assert proc.returncode == 0, stderr.decode()

        def read(key: str) -> list[tuple[float, int]]:
            items: list[bytes] = client.lrange(prefix + key, 0, -1)  # type: ignore[assignment]
            return [(float(tick), int(pid)) for tick, pid in (i.split() for i in items)]

        fired, skipped = read("fired"), read("skipped")
        errors = client.lrange(prefix + "errors", 0, -1)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
        client.close()

    assert errors == []
    fired_ticks = [tick for tick, _ in fired]
    duplicated = [tick for tick, n in Counter(fired_ticks).items() if n > 1]
    assert duplicated == [], f"ticks fired more than once: {duplicated}"
    assert len(fired_ticks) >= 2
    assert all(tick == int(tick) for tick in fired_ticks)
    # The processes really competed: both tried these ticks, and exactly one won each.
    contested = {tick for tick, _ in skipped} & set(fired_ticks)
    assert len(contested) >= 2, (fired, skipped)
    winners = dict(fired)
    assert all(winners[tick] != pid for tick, pid in skipped if tick in winners)
    assert len({pid for _, pid in fired + skipped}) == 2
