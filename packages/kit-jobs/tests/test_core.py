"""The core API on the sync backend: validation, retries, unique keys, configuration."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import structlog

import kit_jobs
from kit_jobs import (
    ConfigurationError,
    JobFailed,
    JobNotFound,
    Jobs,
    JobStatus,
    JobTimedOut,
    Retry,
    SerializationError,
    Unique,
    UnknownTask,
    job,
)
from kit_jobs._task import TASKS


@job(name="core.add")
def add(a: int, b: int = 0) -> int:
    return a + b


@job(name="core.echo")
def echo(*args: object, **kwargs: object) -> list[object]:
    return [list(args), kwargs]


def test_retry_delays_are_exponential_capped_and_jittered() -> None:
    assert Retry(max=5, backoff=1, jitter=False).delays() == [1, 2, 4, 8, 16]
    assert Retry(max=4, backoff=3, max_delay=10, jitter=False).delays() == [3, 6, 10, 10]
    for _ in range(50):
        delays = Retry(max=3, backoff=4).delays()
        assert 2 <= delays[0] <= 4 and 4 <= delays[1] <= 8 and 8 <= delays[2] <= 16
    # RQ gets one whole-second interval per retry (it repeats the first of a short list).
    assert Retry(max=3, backoff=0.2, jitter=False).rq_intervals() == [1, 1, 1]
    assert Retry(max=2, backoff=0).rq_intervals() == [0, 0]
    assert Retry(max=10_000, backoff=1, jitter=False).delay(10_000) == 3600


@pytest.mark.parametrize(
    "kwargs",
    [{"max": -1}, {"max": 1.5}, {"backoff": -1}, {"max_delay": float("inf")}, {"backoff": True}],
)
def test_bad_retry_options_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError, match="Retry"):
        Retry(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"retry": -1}, "retry=-1"),
        ({"retry": "3"}, "retry='3'"),
        ({"timeout": 0}, "timeout=0"),
        ({"concurrency": 1.5}, "concurrency=1.5"),
        ({"queue": "a:b"}, "queue='a:b'"),
        ({"name": "has space"}, "name='has space'"),
        ({"unique": "{nope}"}, "names {nope}"),
        ({"unique": 5}, "unique=5"),
        ({"result_ttl": -5}, "result_ttl=-5"),
    ],
)
def test_bad_job_options_are_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("{", r"\{").replace("}", r"\}")):

        @job(**{"name": "core.bad", **options})  # type: ignore[call-overload]
        def bad(user_id: int) -> None: ...


def test_async_functions_and_delay_parameters_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="async"):

        @job(name="core.async")
        async def coro() -> None: ...

    with pytest.raises(ConfigurationError, match="'delay'"):

        @job(name="core.delay")
        def clash(delay: int) -> None: ...


def test_two_functions_cannot_share_a_name() -> None:
    @job(name="core.shared")
    def one() -> None: ...

    with pytest.raises(ConfigurationError, match=r"two tasks are named 'core\.shared'"):

        @job(name="core.shared")
        def two() -> None: ...


def test_arguments_must_be_json_and_arrive_as_json() -> None:
    jobs = Jobs(backend="sync")
    with pytest.raises(SerializationError, match=r"args\[0\] \(datetime.date\)"):
        jobs.enqueue(echo, dt.date(2026, 1, 1))
    with pytest.raises(SerializationError, match=r"kwargs\['when'\]\[0\]"):
        jobs.enqueue(echo, when=[{1, 2}])
    with pytest.raises(SerializationError, match="NaN"):
        jobs.enqueue(echo, float("nan"))
    with pytest.raises(SerializationError, match="keys must be str"):
        jobs.enqueue(echo, {1: "x"})
    with pytest.raises(ConfigurationError, match="cannot take these arguments"):
        jobs.enqueue(add, 1, 2, 3)
    assert jobs.counts()[JobStatus.FINISHED] == 0  # nothing was enqueued
    # A tuple arrives as a list, on every backend.
    assert jobs.enqueue(echo, (1, 2), k=(3,)).result() == [[[1, 2]], {"k": [3]}]


def test_sync_backend_retries_inline_and_reports_failures() -> None:
    calls: list[int] = []

    @job(name="core.flaky", retry=Retry(max=2, backoff=60))
    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError(f"failure {len(calls)}")
        return "ok"

    jobs = Jobs(backend="sync")
    ref = jobs.enqueue(flaky)  # backoff is not waited for on the sync backend
    assert ref.result() == "ok" and ref.info().attempts == 3

    @job(name="core.broken", retry=1)
    def broken() -> None:
        raise KeyError("missing")

    failed = jobs.enqueue(broken)
    assert failed.status() is JobStatus.FAILED
    with pytest.raises(JobFailed, match="after 2 attempt") as error:
        failed.result()
    assert error.value.error_type == "KeyError"
    assert "Traceback" in error.value.traceback
    assert [i.id for i in jobs.failed()] == [failed.id]
    assert jobs.retry(failed.id) is True


def test_sync_timeout_is_reported_after_the_run() -> None:
    import time

    @job(name="core.slow", timeout=0.01)
    def slow() -> None:
        time.sleep(0.05)

    with pytest.raises(JobTimedOut):
        Jobs(backend="sync").enqueue(slow).result()


def test_unique_keys_deduplicate_inside_the_window() -> None:
    runs: list[int] = []

    @job(name="core.unique", unique=Unique("{user_id}", window=60))
    def once(user_id: int, note: str = "") -> None:
        runs.append(user_id)

    jobs = Jobs(backend="sync")
    first = jobs.enqueue(once, 1, note="a")
    assert jobs.enqueue(once, user_id=1, note="b").id == first.id
    assert jobs.enqueue(once, 2).id != first.id
    assert runs == [1, 2]
    assert once.unique_key([1], {}) == once.unique_key([], {"user_id": 1, "note": "x"})

    @job(name="core.unique_all", unique=True)
    def all_args(a: int) -> None: ...

    assert all_args.unique_key([1], {}) != all_args.unique_key([2], {})


def test_task_enqueue_uses_the_configured_default_and_delay_validation() -> None:
    kit_jobs.configure(backend="sync")
    assert add.enqueue(2, b=3).result() == 5
    assert add(1, 1) == 2  # calling the task runs it here
    for bad in (-1, "5", float("inf")):
        with pytest.raises(ConfigurationError, match="delay="):
            add.enqueue(1, delay=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="aware datetime"):
        add.enqueue_at(dt.datetime(2030, 1, 1), 1)
    with pytest.raises(ConfigurationError, match="not both"):
        kit_jobs.get_jobs().enqueue(add, 1, delay=1, at=dt.datetime.now(dt.UTC))
    with pytest.raises(UnknownTask, match=r"no task named 'core\.nope'"):
        kit_jobs.get_jobs().enqueue("core.nope")
    assert kit_jobs.get_jobs().enqueue("core.add", 4).result() == 4


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"KIT_JOBS_BACKEND": "celery"}, "KIT_JOBS_BACKEND='celery'"),
        ({"KIT_JOBS_MAX_WORKERS": "many"}, "KIT_JOBS_MAX_WORKERS='many'"),
        ({"KIT_JOBS_MAX_WORKERS": "0"}, "KIT_JOBS_MAX_WORKERS='0'"),
        ({"KIT_JOBS_SERIALIZER": "yaml"}, "KIT_JOBS_SERIALIZER='yaml'"),
        ({"KIT_JOBS_FALLBACK": "thread"}, "KIT_JOBS_FALLBACK='thread'"),
        ({"KIT_JOBS_LEASE_TTL": "-3"}, "KIT_JOBS_LEASE_TTL='-3'"),
    ],
)
def test_bad_settings_name_the_variable(config: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Jobs.from_config(config)


def test_default_runtime_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIT_JOBS_BACKEND", "sync")
    assert kit_jobs.get_jobs().backend.name == "sync"


def test_log_context_travels_with_the_job() -> None:
    @job(name="core.context")
    def context() -> dict[str, object]:
        return dict(structlog.contextvars.get_contextvars())

    jobs = Jobs(backend="sync")
    with structlog.contextvars.bound_contextvars(request_id="r-1", tenant="acme", request=object()):
        ref = jobs.enqueue(context)
    seen = ref.result()
    assert seen["request_id"] == "r-1" and seen["tenant"] == "acme"
    assert seen["job_id"] == ref.id and seen["job_task"] == "core.context"
    with structlog.contextvars.bound_contextvars(request_id="r-2", request=object()):
        carried = kit_jobs._context.capture_context()
    assert carried == {"request_id": "r-2"}  # not JSON: left out of the carried context


def test_inspection_of_the_sync_backend() -> None:
    jobs = Jobs(backend="sync")
    ref = jobs.enqueue(add, 1)
    info = jobs.info(ref.id)
    assert json.loads(json.dumps(info.as_dict()))["status"] == "finished"
    assert jobs.list("finished") == [info]
    assert jobs.cancel(ref.id) is False
    assert jobs.clear("finished") == 1
    with pytest.raises(JobNotFound):
        ref.status()
    with pytest.raises(ConfigurationError, match="limit"):
        jobs.list("failed", limit=0)


def test_problem_details_hide_internal_messages() -> None:
    from kit_jobs import BackendUnavailable

    body = BackendUnavailable("redis://:pw@10.0.0.1 refused").problem()
    assert body["status"] == 503 and "10.0.0.1" not in body["detail"]
    assert JobNotFound("no job 'x'").problem()["detail"] == "no job 'x'"


def test_every_test_task_is_registered() -> None:
    assert TASKS["core.add"] is add
