"""The ``kit-jobs`` command on the thread and rq backends (real Redis, real processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import redis
import rqapp
from conftest import TESTS

from kit_jobs import Jobs, JobStatus
from kit_jobs.cli import main


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_thread_backend_enqueue_wait_status_and_tasks(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(
        capsys,
        "--backend",
        "thread",
        "--import",
        "rqapp",
        "enqueue",
        "rqapp.add",
        "--args",
        "[2, 5]",
        "--wait",
        "10",
    )
    assert (code, out.strip()) == (0, "7")
    code, out, _ = _cli(capsys, "--backend", "thread", "--json", "status")
    data = json.loads(out)
    assert data["backend"] == "thread" and "lost" in data["delivery"]
    code, out, _ = _cli(capsys, "--import", "rqapp", "tasks")
    assert "rqapp.limited  queue=kjtest concurrency=2" in out


def test_thread_worker_runs_in_the_foreground_and_drains(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _cli(capsys, "--backend", "thread", "worker", "--burst")[0] == 0


def test_errors_exit_1_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _cli(capsys, "--backend", "thread", "enqueue", "no.such.task")
    assert code == 1 and "no task named 'no.such.task'" in err
    code, _, err = _cli(capsys, "--backend", "thread", "enqueue", "rqapp.add", "--args", "{bad")
    assert code == 1 and "must be JSON" in err
    code, _, err = _cli(capsys, "--import", "no_such_module_xyz", "status")
    assert code == 1 and "no_such_module_xyz" in err
    code, _, err = _cli(capsys, "--app", "rqapp:add", "status")
    assert code == 1 and "not a kit_jobs.Jobs" in err
    with pytest.raises(SystemExit) as usage:
        main(["list", "bogus"])
    assert usage.value.code == 2
    with pytest.raises(SystemExit) as usage:
        main(["worker", "--processes", "0"])
    assert usage.value.code == 2
    assert main(["worker", "--processes", "2"], jobs=Jobs(backend="sync")) == 1
    assert "--processes needs the kit-jobs command" in capsys.readouterr().err


def test_rq_worker_command_and_inspection(rq_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    jobs = Jobs(backend="rq", redis_url=rq_url)
    ok = [jobs.enqueue(rqapp.add, i, 1) for i in range(5)]
    bad = jobs.enqueue(rqapp.always_fails)
    later = jobs.enqueue(rqapp.add, 0, 0, delay=3600)
    base = ["--backend", "rq", "--redis-url", rq_url, "--import", "rqapp"]
    code, out, _ = _cli(capsys, *base, "--json", "status")
    assert json.loads(out)["counts"] == {
        "queued": 6,
        "scheduled": 1,
        "waiting": 0,
        "running": 0,
        "finished": 0,
        "failed": 0,
        "canceled": 0,
    }
    env = dict(os.environ, PYTHONPATH=str(TESTS), KJ_TEST_REDIS=rq_url)
    worker = subprocess.run(
        [
            sys.executable,
            "-m",
            "kit_jobs.cli",
            *base,
            "worker",
            "--burst",
            "--queue",
            "kjtest",
            "--no-scheduler",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert worker.returncode == 0, worker.stderr
    assert [r.result(timeout=5) for r in ok] == [1, 2, 3, 4, 5]
    # always_fails has retry=1: the immediate retry ran in the same burst.
    code, out, _ = _cli(capsys, *base, "failed")
    assert code == 0 and bad.id in out and "ValueError: this job always fails" in out
    code, out, _ = _cli(capsys, *base, "info", bad.id)
    assert json.loads(out)["attempts"] == 2
    code, out, _ = _cli(capsys, *base, "--json", "list", "finished")
    assert {row["id"] for row in json.loads(out)} == {r.id for r in ok}
    assert _cli(capsys, *base, "retry", bad.id)[0] == 0
    assert bad.status() is JobStatus.QUEUED
    assert _cli(capsys, *base, "retry", ok[0].id)[0] == 1  # finished: nothing to retry
    assert _cli(capsys, *base, "cancel", later.id)[0] == 0
    assert later.status() is JobStatus.CANCELED
    code, out, _ = _cli(capsys, *base, "clear", "finished")
    assert out.strip() == "cleared 5 finished job(s)"
    code, out, _ = _cli(capsys, *base, "stuck")
    assert out.strip() == "(none)"
    code, _, err = _cli(capsys, *base, "info", "nope")
    assert code == 1 and "no job 'nope'" in err
    code, out, _ = _cli(
        capsys, *base, "enqueue", "rqapp.add", "--args", "[1]", "--kwargs", '{"b": 2}'
    )
    assert redis.Redis.from_url(rq_url).exists(f"rq:job:{out.strip()}")


def test_worker_processes_are_supervised_and_drain_on_sigterm(rq_url: str) -> None:
    import signal
    import time

    from conftest import wait_until
    from rq import Worker

    r = redis.Redis.from_url(rq_url)
    jobs = Jobs(backend="rq", redis_url=rq_url)
    env = dict(os.environ, PYTHONPATH=str(TESTS), KJ_TEST_REDIS=rq_url)
    argv = [sys.executable, "-m", "kit_jobs.cli", "--backend", "rq", "--redis-url", rq_url]
    argv += ["--import", "rqapp", "worker", "--queue", "kjtest", "--processes", "2"]
    supervisor = subprocess.Popen(argv, env=env)
    try:
        wait_until(lambda: len(Worker.all(connection=r)) == 2, timeout=30)
        refs = [jobs.enqueue(rqapp.slow_once, f"sup{i}", 0.5) for i in range(2)]
        wait_until(lambda: all(r.llen(f"sup{i}:started") == 1 for i in range(2)))
        # Both run at once, one per process.
        started = [float(r.lrange(f"sup{i}:started", 0, -1)[0].split(b":")[1]) for i in range(2)]
        assert abs(started[0] - started[1]) < 0.5
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=30) == 0
        # Warm shutdown: the jobs running at SIGTERM finished.
        assert [ref.result(timeout=1) for ref in refs] == ["done", "done"]
        time.sleep(0.1)
        assert len(Worker.all(connection=r)) == 0
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
