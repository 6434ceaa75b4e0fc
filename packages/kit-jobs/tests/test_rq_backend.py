"""The rq backend against a real Redis and real worker processes."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import redis
import rqapp
from conftest import WorkerProcess, wait_until
from rq import Queue
from rq.job import Job
from rq.results import Result

from kit_jobs import (
    BackendUnavailable,
    ConfigurationError,
    JobFailed,
    JobNotFound,
    Jobs,
    JobStatus,
    JobTimedOut,
    ResultTimeout,
    SerializationError,
)
from kit_jobs.backends.rq import DISPATCH

StartWorker = Callable[..., WorkerProcess]


def _jobs(url: str, **options: object) -> Jobs:
    return Jobs(backend="rq", redis_url=url, **options)  # type: ignore[arg-type]


def test_enqueue_runs_on_a_worker_process(rq_url: str, start_worker: StartWorker) -> None:
    jobs = _jobs(rq_url)
    ref = jobs.enqueue(rqapp.add, 2, 3)
    assert ref.status() is JobStatus.QUEUED
    with pytest.raises(ResultTimeout):
        ref.result(timeout=0.1)
    start_worker()
    assert ref.result(timeout=20) == 5
    assert ref.status() is JobStatus.FINISHED
    info = ref.info()
    assert (info.task, info.queue, info.args, info.attempts) == ("rqapp.add", "kjtest", [2, 3], 1)
    # RQ's own API sees the same job and result.
    job = Job.fetch(ref.id, connection=redis.Redis.from_url(rq_url), serializer="json")
    assert job.return_value() == 5
    assert job.func_name == DISPATCH


def test_sigkilled_worker_job_completes_elsewhere_once(
    rq_url: str, start_worker: StartWorker
) -> None:
    r = redis.Redis.from_url(rq_url)
    jobs = _jobs(rq_url)
    first = start_worker(heartbeat_ttl=2)
    ref = jobs.enqueue(rqapp.slow_once, "kill", 3.0)
    wait_until(lambda: r.llen("kill:started") == 1)
    assert ref.status() is JobStatus.RUNNING
    first.kill()
    # Its heartbeat lapses: inspection reports it stuck before any sweep picks it up.
    wait_until(lambda: [i.id for i in jobs.stuck()] == [ref.id])
    start_worker(heartbeat_ttl=2)
    assert ref.result(timeout=40) == "done"
    assert r.llen("kill:started") == 2  # the killed run, then the rerun
    assert int(r.get("kill:completed") or 0) == 1
    job = Job.fetch(ref.id, connection=r, serializer="json")
    successes = [x for x in job.results() if x.type == Result.Type.SUCCESSFUL]
    assert len(successes) == 1
    assert jobs.counts()[JobStatus.FINISHED] == 1
    assert jobs.counts()[JobStatus.FAILED] == 0


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


def test_concurrency_limit_holds_across_three_workers_and_a_kill(
    rq_url: str, start_worker: StartWorker
) -> None:
    r = redis.Redis.from_url(rq_url)
    jobs = _jobs(rq_url, lease_ttl=3)
    refs = [jobs.enqueue(rqapp.limited, "lim", 0.8) for _ in range(12)]
    workers = [start_worker(heartbeat_ttl=2) for _ in range(3)]
    samples: list[int] = []
    wait_until(lambda: r.llen("lim:intervals") >= 2)
    # Kill a worker while it runs a job of the task: the one that started last.
    victim: WorkerProcess | None = None
    while victim is None:
        ended = {":".join(i.decode().split(":")[:2]) for i in r.lrange("lim:intervals", 0, -1)}
        running = [s.decode() for s in r.lrange("lim:starts", 0, -1) if s.decode() not in ended]
        fresh = [s for s in running if time.time() - float(s.split(":")[1]) < 0.3]
        if fresh:
            victim = next(w for w in workers if w.pid == int(fresh[-1].split(":")[0]))
        samples.append(int(r.zcard("kit:jobs:sem:rqapp.limited")))
        time.sleep(0.01)
    killed_at = victim.kill()
    deadline = time.monotonic() + 60
    while not all(ref.status() is JobStatus.FINISHED for ref in refs):
        assert time.monotonic() < deadline, jobs.counts()
        samples.append(int(r.zcard("kit:jobs:sem:rqapp.limited")))
        time.sleep(0.05)
    intervals = []
    for raw in r.lrange("lim:intervals", 0, -1):
        _, start, end = raw.decode().split(":")
        intervals.append((float(start), float(end)))
    finished_starts = {s for s, _ in intervals}
    killed_runs = 0
    for raw in r.lrange("lim:starts", 0, -1):
        pid, start = raw.decode().split(":")
        if float(start) not in finished_starts:  # the killed run: it ran until the kill
            assert int(pid) == victim.pid
            intervals.append((float(start), killed_at))
            killed_runs += 1
    assert killed_runs == 1
    assert len(intervals) == 13  # 12 jobs, the killed one run twice
    assert _max_overlap(intervals) == 2
    assert max(samples) <= 2


def test_delayed_jobs_do_not_run_early(rq_url: str, start_worker: StartWorker) -> None:
    r = redis.Redis.from_url(rq_url)
    jobs = _jobs(rq_url)
    start_worker()
    planned = []
    for i, delay in enumerate((1.2, 2.5, 0.3)):
        ref = jobs.enqueue(rqapp.record_time, f"delay:{i}", delay=delay)
        planned.append((ref, time.time() + delay - 0.01, f"delay:{i}"))
    at = datetime.now(UTC) + timedelta(seconds=1.5)
    ref = jobs.enqueue(rqapp.record_time, "delay:at", at=at)
    planned.append((ref, at.timestamp(), "delay:at"))
    assert ref.status() is JobStatus.SCHEDULED
    for ref, not_before, key in planned:
        ran_at = ref.result(timeout=20)
        assert ran_at >= not_before, (key, ran_at, not_before)
        assert float(r.lrange(key, 0, -1)[0]) == ran_at


def test_unique_enqueue_inside_window_returns_the_first_job(
    rq_url: str, start_worker: StartWorker
) -> None:
    jobs = _jobs(rq_url)
    first = jobs.enqueue(rqapp.once_per_user, 7, note="a")
    again = jobs.enqueue(rqapp.once_per_user, user_id=7, note="b")
    other = jobs.enqueue(rqapp.once_per_user, 8)
    assert again.id == first.id
    assert other.id != first.id
    start_worker()
    assert first.result(timeout=20) == "7:a"
    # Still inside the window after it ran: still the first job.
    assert jobs.enqueue(rqapp.once_per_user, 7, note="c").id == first.id
    assert other.result(timeout=20) == "8:"
    assert jobs.counts()[JobStatus.FINISHED] == 2


def test_retries_back_off_through_the_rq_scheduler(rq_url: str, start_worker: StartWorker) -> None:
    jobs = _jobs(rq_url)
    start_worker()
    ref = jobs.enqueue(rqapp.flaky, "flaky", 2)
    wait_until(lambda: ref.status() is JobStatus.SCHEDULED)
    assert "attempt 1 fails on purpose" in (ref.info().error or "")
    assert ref.result(timeout=30) == 3
    info = ref.info()
    assert info.attempts == 3
    assert info.retries_left == 1


def test_failure_after_retries_and_timeouts_are_reported(
    rq_url: str, start_worker: StartWorker
) -> None:
    jobs = _jobs(rq_url)
    start_worker()
    failing = jobs.enqueue(rqapp.always_fails)
    slow = jobs.enqueue(rqapp.sleeper, 3)
    with pytest.raises(JobFailed, match="this job always fails") as failed:
        failing.result(timeout=20)
    assert failed.value.error_type == "ValueError"
    assert "Traceback" in failed.value.traceback
    with pytest.raises(JobTimedOut):
        slow.result(timeout=20)
    assert failing.info().attempts == 2
    assert {i.id for i in jobs.failed()} == {failing.id, slow.id}
    # Retry a failed job by id: it runs again under the same id (and fails again).
    assert jobs.retry(failing.id) is True
    wait_until(lambda: failing.status() is JobStatus.FAILED and failing.info().attempts == 2)


def test_unknown_task_and_foreign_function_fail_clearly(
    rq_url: str, start_worker: StartWorker
) -> None:
    r = redis.Redis.from_url(rq_url)
    queue = Queue("kjtest", connection=r, serializer="json")
    unknown = queue.enqueue(DISPATCH, "no.such.task", [], {})
    foreign = queue.enqueue("os.getcwd")
    start_worker()
    jobs = _jobs(rq_url)
    with pytest.raises(JobFailed, match=r"no task named 'no\.such\.task'"):
        jobs.get(unknown.id).result(timeout=20)
    with pytest.raises(JobFailed, match="not a kit-jobs job"):
        jobs.get(foreign.id).result(timeout=20)


def test_non_json_result_fails_the_job(rq_url: str, start_worker: StartWorker) -> None:
    jobs = _jobs(rq_url)
    start_worker()
    with pytest.raises(JobFailed, match="not JSON-serializable"):
        jobs.enqueue(rqapp.returns_object).result(timeout=20)


def test_bad_input_is_refused_at_enqueue(rq_url: str) -> None:
    jobs = _jobs(rq_url)
    with pytest.raises(SerializationError, match=r"args\[0\] \(datetime.datetime\)"):
        jobs.enqueue(rqapp.record_time, datetime.now())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="cannot take these arguments"):
        jobs.enqueue(rqapp.add, 1)  # type: ignore[call-arg]
    with pytest.raises(JobNotFound):
        jobs.get("nope").status()
    assert jobs.counts()[JobStatus.QUEUED] == 0


def test_wrong_redis_url_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match="KIT_JOBS_REDIS_URL"):
        Jobs(backend="rq", redis_url="http://localhost:6379")
    with pytest.raises(ConfigurationError, match="KIT_JOBS_REDIS_URL"):
        Jobs.from_config({"KIT_JOBS_BACKEND": "rq", "KIT_JOBS_REDIS_URL": "localhost"})
    jobs = Jobs(backend="rq", redis_url="redis://:secret@127.0.0.1:1/0")
    with pytest.raises(BackendUnavailable, match="cannot be reached") as error:
        jobs.enqueue(rqapp.add, 1, 2)
    assert "secret" not in str(error.value)


def test_redis_down_at_enqueue_raises_or_falls_back(
    redis_server: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = redis_server.url  # type: ignore[attr-defined]
    monkeypatch.setenv("KJ_TEST_REDIS", url)
    jobs = _jobs(url)
    assert jobs.enqueue(rqapp.add, 1, 1).status() is JobStatus.QUEUED
    redis_server.stop()  # type: ignore[attr-defined]
    with pytest.raises(BackendUnavailable, match="Nothing was enqueued"):
        jobs.enqueue(rqapp.add, 1, 2)
    with pytest.raises(BackendUnavailable):
        jobs.counts()
    inline = _jobs(url, fallback="sync")
    ref = inline.enqueue(rqapp.add, 2, 2)
    assert ref.result(timeout=1) == 4  # ran inline, as configured
    redis_server.start()  # type: ignore[attr-defined]
    # The same Jobs works again once Redis is back (this throwaway server keeps nothing
    # on disk, so the first job went with it).
    assert jobs.enqueue(rqapp.add, 1, 3).status() is JobStatus.QUEUED


def test_inspection_cancel_clear_and_stuck(rq_url: str, start_worker: StartWorker) -> None:
    jobs = _jobs(rq_url)
    queued = [jobs.enqueue(rqapp.add, i, i) for i in range(3)]
    later = jobs.enqueue(rqapp.add, 9, 9, delay=3600)
    counts = jobs.counts()
    assert (counts[JobStatus.QUEUED], counts[JobStatus.SCHEDULED]) == (3, 1)
    assert [i.id for i in jobs.list("queued")] == [r.id for r in queued]
    assert jobs.info(later.id).scheduled_for is not None
    assert later.cancel() is True
    assert later.status() is JobStatus.CANCELED
    assert queued[0].cancel() is True
    assert jobs.counts()[JobStatus.CANCELED] == 2
    start_worker()
    assert queued[2].result(timeout=20) == 4
    wait_until(lambda: jobs.counts()[JobStatus.FINISHED] == 2)
    assert queued[1].cancel() is False  # already ran
    assert jobs.clear("finished") == 2
    assert jobs.clear(JobStatus.CANCELED) == 2
    with pytest.raises(JobNotFound):
        queued[2].status()
    with pytest.raises(ConfigurationError, match="unknown job status"):
        jobs.list("done")
    assert jobs.stuck() == []


def test_pickle_only_when_configured_and_plain_rq_workers_run_kit_jobs(rq_url: str) -> None:
    from rq import SimpleWorker

    pickled = _jobs(rq_url, serializer="pickle")
    ref = pickled.enqueue(rqapp.add, 20, 22)
    raw = redis.Redis.from_url(rq_url).hget(f"rq:job:{ref.id}", "data")
    assert raw is not None and not raw.startswith(b"[")  # not JSON
    pickled.work(queues=["kjtest"], burst=True, with_scheduler=False)
    assert ref.result(timeout=5) == 42
    # A plain RQ worker runs kit jobs through kit_jobs.backends.rq.perform.
    jobs = _jobs(rq_url)
    plain = jobs.enqueue(rqapp.add, 1, 2)
    worker = SimpleWorker(["kjtest"], connection=redis.Redis.from_url(rq_url), serializer="json")
    worker.work(burst=True)
    assert plain.result(timeout=5) == 3


def test_worker_rides_out_a_redis_outage(
    redis_server: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = redis_server.url  # type: ignore[attr-defined]
    monkeypatch.setenv("KJ_TEST_REDIS", url)
    jobs = _jobs(url)
    worker = WorkerProcess(url, "kjtest", heartbeat_ttl=2, scheduler=False)
    try:
        assert jobs.enqueue(rqapp.add, 1, 1).result(timeout=20) == 2
        redis_server.stop()  # type: ignore[attr-defined]
        time.sleep(1.5)
        assert worker.process.poll() is None  # still running, retrying its connection
        redis_server.start()  # type: ignore[attr-defined]
        assert jobs.enqueue(rqapp.add, 2, 2).result(timeout=30) == 4
    finally:
        worker.terminate()


def test_two_worker_processes_fire_each_schedule_tick_once(
    rq_url: str, start_worker: StartWorker
) -> None:
    r = redis.Redis.from_url(rq_url)
    start_worker(imports="rqapp.ticks")
    start_worker(imports="rqapp.ticks")
    wait_until(lambda: r.llen("ticks") >= 4, timeout=30)
    ticks = [t.decode().rsplit(":", 1)[0] for t in r.lrange("ticks", 0, -1)]
    assert len(ticks) == len(set(ticks)), ticks  # no tick ran twice
    assert len(r.keys("kit:jobs:tick:rqapp.ticks.every_second:*")) >= len(ticks)
