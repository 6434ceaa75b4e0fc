"""The ``kit-jobs`` command: run workers and inspect jobs, on the rq and thread backends.

::

    kit-jobs --import myapp.tasks worker --queue default --queue mail
    kit-jobs --import myapp.tasks worker --processes 4   # 4 supervised worker processes
    kit-jobs status                   # jobs per status, and what the backend guarantees
    kit-jobs list failed --limit 20
    kit-jobs info 3f2a...             # one job as JSON
    kit-jobs failed | stuck | tasks
    kit-jobs retry ID | cancel ID | clear finished
    kit-jobs --import myapp.tasks enqueue myapp.tasks.send --args '[42]' --wait 30

Configuration comes from ``KIT_JOBS_*`` environment variables (``KIT_JOBS_BACKEND``,
``KIT_JOBS_REDIS_URL``, ...), overridden by ``--backend`` and ``--redis-url``; ``--app
module:attribute`` uses a :class:`~kit_jobs.Jobs` your code built instead. On the rq
backend every command sees all jobs in Redis. The thread backend keeps jobs in the
memory of the process that runs them: there ``worker`` runs the pool and the scheduler
in the foreground, and inspection commands report that command's own process (useful
with ``enqueue --wait``); inspect a running app through :class:`~kit_jobs.Jobs`.

Exit status: 0 on success, 1 on a kit-jobs error (the message says what to do), 2 on
bad usage.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from ._models import JobInfo, JobStatus
from ._runtime import Jobs, configure, get_jobs
from ._serialization import loads
from ._task import TASKS, get_task
from .exceptions import ConfigurationError, KitJobsError

__all__ = ["build_parser", "main"]

_STATUSES = [s.value for s in JobStatus]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kit-jobs", description="Run kit-jobs workers and inspect jobs."
    )
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import a module that defines @job tasks (repeatable)",
    )
    parser.add_argument("--app", metavar="MODULE:ATTR", help="use the Jobs object at MODULE:ATTR")
    parser.add_argument(
        "--backend", choices=["sync", "thread", "rq"], help="overrides KIT_JOBS_BACKEND"
    )
    parser.add_argument("--redis-url", help="overrides KIT_JOBS_REDIS_URL")
    parser.add_argument("--json", action="store_true", help="print JSON")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    worker = commands.add_parser("worker", help="run jobs until stopped (SIGTERM drains)")
    worker.add_argument("--queue", "-q", action="append", dest="queues", help="queue (repeatable)")
    worker.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    worker.add_argument(
        "--no-scheduler", action="store_true", help="do not fire @scheduled tasks or delayed jobs"
    )
    worker.add_argument(
        "--heartbeat-ttl", type=float, default=30.0, help="seconds (rq; default 30)"
    )
    worker.add_argument("--name", help="worker name (rq)")
    worker.add_argument(
        "--processes",
        "-n",
        type=int,
        default=1,
        help="rq: run N worker processes, supervised by this one (default 1)",
    )

    commands.add_parser("status", help="jobs per status")
    listing = commands.add_parser("list", help="jobs in one status")
    listing.add_argument("status", choices=_STATUSES)
    listing.add_argument("--limit", type=int, default=50)
    failed = commands.add_parser("failed", help="failed jobs with their last error")
    failed.add_argument("--limit", type=int, default=50)
    commands.add_parser("stuck", help="running past their timeout or with a stale heartbeat")
    for name, text in (
        ("info", "one job"),
        ("retry", "run a failed job again"),
        ("cancel", "cancel a pending job"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("job_id")
    clear = commands.add_parser("clear", help="forget ended jobs / cancel pending ones in a status")
    clear.add_argument("status", choices=[s for s in _STATUSES if s != "running"])
    commands.add_parser("tasks", help="registered tasks and schedules")
    enqueue = commands.add_parser("enqueue", help="enqueue a registered task")
    enqueue.add_argument("task")
    enqueue.add_argument("--args", default="[]", help="JSON list of positional arguments")
    enqueue.add_argument("--kwargs", default="{}", help="JSON object of keyword arguments")
    enqueue.add_argument("--delay", type=float, help="seconds before it may run")
    enqueue.add_argument(
        "--wait", type=float, help="wait up to this many seconds and print the result"
    )
    return parser


def _resolve_jobs(args: argparse.Namespace, jobs: Jobs | None) -> Jobs:
    if os.getcwd() not in sys.path:  # --import myapp.tasks from the project directory
        sys.path.insert(0, os.getcwd())
    for module in args.imports:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigurationError(f"--import {module}: {exc}") from exc
    if jobs is not None:
        return jobs
    if args.app:
        module_name, _, attribute = args.app.partition(":")
        try:
            found = getattr(importlib.import_module(module_name), attribute or "jobs")
        except (ImportError, AttributeError) as exc:
            raise ConfigurationError(
                f"--app {args.app}: {exc}; give module:attribute of a Jobs"
            ) from exc
        if not isinstance(found, Jobs):
            raise ConfigurationError(
                f"--app {args.app} is {type(found).__name__}, not a kit_jobs.Jobs"
            )
        return configure(found)
    if args.backend or args.redis_url:
        config = {k: v for k, v in os.environ.items() if k.startswith("KIT_JOBS_")}
        if args.backend:
            config["KIT_JOBS_BACKEND"] = args.backend
        if args.redis_url:
            config["KIT_JOBS_REDIS_URL"] = args.redis_url
        return configure(Jobs.from_config(config))
    return get_jobs()


def _print(data: Any, as_json: bool, text: str) -> None:
    print(json.dumps(data, indent=2, default=str) if as_json else text)


def _row(info: JobInfo) -> str:
    error = f"  {info.error}" if info.error else ""
    return f"{info.id}  {info.status:<9}  {info.task}  attempts={info.attempts}{error}"


def _run(args: argparse.Namespace, jobs: Jobs) -> int:
    command = args.command
    backend = jobs.backend
    if command == "worker":
        jobs.work(
            queues=args.queues,
            burst=args.burst,
            with_scheduler=not args.no_scheduler,
            heartbeat_ttl=args.heartbeat_ttl,
            name=args.name,
        )
        return 0
    if command == "status":
        counts = jobs.counts()
        data = {
            "backend": backend.name,
            "delivery": backend.delivery,
            "counts": {str(k): v for k, v in counts.items()},
        }
        lines = [f"backend: {backend.name} ({backend.delivery})"]
        lines += [f"  {status.value:<9} {counts[status]}" for status in JobStatus]
        _print(data, args.json, "\n".join(lines))
    elif command in ("list", "failed", "stuck"):
        if command == "stuck":
            infos = jobs.stuck()
        else:
            infos = jobs.list(args.status if command == "list" else JobStatus.FAILED, args.limit)
        _print([i.as_dict() for i in infos], args.json, "\n".join(map(_row, infos)) or "(none)")
    elif command == "info":
        print(json.dumps(jobs.info(args.job_id).as_dict(), indent=2, default=str))
    elif command == "retry":
        done = jobs.retry(args.job_id)
        _print(
            {"retried": done},
            args.json,
            f"requeued {args.job_id} (same id)"
            if done
            else "not failed or canceled: nothing to retry",
        )
        return 0 if done else 1
    elif command == "cancel":
        done = jobs.cancel(args.job_id)
        _print(
            {"canceled": done},
            args.json,
            f"canceled {args.job_id}" if done else "already running or ended: not canceled",
        )
        return 0 if done else 1
    elif command == "clear":
        count = jobs.clear(args.status)
        _print({"cleared": count}, args.json, f"cleared {count} {args.status} job(s)")
    elif command == "tasks":
        from ._schedule import SCHEDULES

        data = {
            "tasks": {
                n: {"queue": t.queue, "concurrency": t.concurrency, "timeout": t.timeout}
                for n, t in sorted(TASKS.items())
            },
            "schedules": sorted(SCHEDULES),
        }
        lines = [
            f"{n}  queue={t.queue}" + (f" concurrency={t.concurrency}" if t.concurrency else "")
            for n, t in sorted(TASKS.items())
        ]
        lines += [f"schedule {name}" for name in sorted(SCHEDULES)]
        _print(data, args.json, "\n".join(lines) or "(no tasks registered: use --import)")
    elif command == "enqueue":
        return _enqueue(args, jobs)
    return 0


def _enqueue(args: argparse.Namespace, jobs: Jobs) -> int:
    try:
        positional = loads(args.args)
        keywords = loads(args.kwargs)
    except ValueError as exc:
        raise ConfigurationError(f"--args/--kwargs must be JSON: {exc}") from exc
    if not isinstance(positional, list) or not isinstance(keywords, dict):
        raise ConfigurationError("--args must be a JSON list and --kwargs a JSON object")
    task = get_task(args.task)
    jobs.start()
    ref = jobs.enqueue(task, *positional, delay=args.delay, **keywords)
    if args.wait is None:
        _print({"id": ref.id}, args.json, ref.id)
        return 0
    value = ref.result(timeout=args.wait)
    _print({"id": ref.id, "result": value}, args.json, json.dumps(value, default=str))
    return 0


def _without_processes(argv: Sequence[str]) -> list[str]:
    """``argv`` minus ``--processes N`` / ``-n N`` / ``--processes=N``."""
    out: list[str] = []
    skip = False
    for item in argv:
        if skip:
            skip = False
        elif item in ("--processes", "-n"):
            skip = True
        elif not item.startswith("--processes="):
            out.append(item)
    return out


def _supervise(argv: Sequence[str], count: int) -> int:
    """Run ``count`` ``kit-jobs worker`` processes; SIGINT/SIGTERM is passed on to each
    (each finishes its current job). Exits when all have exited: 0 if all exited 0."""
    import signal
    import subprocess

    child = [sys.executable, "-m", "kit_jobs.cli", *_without_processes(argv)]
    # The same command line, without --processes: our own interpreter and module.
    children = [subprocess.Popen(child) for _ in range(count)]  # noqa: S603

    def forward(signum: int, frame: object) -> None:
        for process in children:
            if process.poll() is None:
                process.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        codes = [process.wait() for process in children]
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if all(code == 0 for code in codes) else 1


def main(argv: Sequence[str] | None = None, *, jobs: Jobs | None = None) -> int:
    """Entry point of ``kit-jobs``; ``jobs`` lets an app's own CLI (``flask kit-jobs``)
    reuse it with its configured :class:`~kit_jobs.Jobs`."""
    parser = build_parser()
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(raw)
    if args.command == "worker" and args.processes != 1:
        if args.processes < 1:
            parser.error("--processes: give a whole number >= 1")
        if jobs is not None:
            print(
                "kit-jobs: error: --processes needs the kit-jobs command with --app or "
                "--import (child processes rebuild the configuration); run several "
                "workers instead",
                file=sys.stderr,
            )
            return 1
        return _supervise(raw, args.processes)
    try:
        runtime = _resolve_jobs(args, jobs)
        try:
            return _run(args, runtime)
        finally:
            if args.command != "worker":
                runtime.shutdown(wait=True)
    except KitJobsError as exc:
        print(f"kit-jobs: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
