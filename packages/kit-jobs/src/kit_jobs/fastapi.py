"""FastAPI adapter: a lifespan that starts and stops the job runtime (thread pool and
scheduler), a ``Depends`` callable, and problem+json handlers. The only module that
imports FastAPI/Starlette.

Example::

    from fastapi import Depends, FastAPI
    from kit_jobs import Jobs, job
    from kit_jobs.fastapi import get_jobs, install_problem_handlers, lifespan

    @job(retry=3)
    def send_welcome(user_id: int) -> None: ...

    app = FastAPI(lifespan=lifespan(Jobs(backend="thread")))
    install_problem_handlers(app)

    @app.post("/users/{user_id}/welcome", status_code=202)
    async def welcome(user_id: int) -> dict[str, str]:
        return {"job": send_welcome.enqueue(user_id).id}

    @app.get("/jobs/{job_id}")
    async def job_status(job_id: str, jobs: Jobs = Depends(get_jobs)) -> dict[str, str]:
        return {"status": jobs.get(job_id).status()}
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

try:
    from fastapi import FastAPI, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import JSONResponse
except ImportError as exc:  # pragma: no cover - exercised by the slim session
    raise ImportError('kit_jobs.fastapi needs FastAPI: pip install "kit-jobs[fastapi]"') from exc

from ._runtime import Jobs, configure
from ._runtime import get_jobs as default_jobs
from .exceptions import KitJobsError

__all__ = ["get_jobs", "install_problem_handlers", "kit_jobs_lifespan", "lifespan"]


def lifespan(
    jobs: Jobs | None = None,
    *,
    scheduler: bool = True,
    shutdown_timeout: float = 30.0,
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """A FastAPI lifespan owning ``jobs`` (default: from ``KIT_JOBS_*`` variables).

    At start-up: the runtime becomes the default ``task.enqueue()`` uses, the backend
    starts (the thread pool; a Redis check) and, with ``scheduler``, ``@scheduled`` tasks
    start firing. At shutdown the scheduler stops and the thread backend drains for up
    to ``shutdown_timeout`` seconds (jobs that could not run are logged with their ids).
    """

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[None]:
        runtime = jobs if jobs is not None else default_jobs()
        configure(runtime)
        await run_in_threadpool(runtime.start)
        if scheduler:
            runtime.start_scheduler()
        app.state.kit_jobs = runtime
        try:
            yield
        finally:
            await run_in_threadpool(runtime.shutdown, True, shutdown_timeout)

    return run


def kit_jobs_lifespan(app: FastAPI) -> AbstractAsyncContextManager[None]:
    """``FastAPI(lifespan=kit_jobs_lifespan)``: :func:`lifespan` with its defaults."""
    return lifespan()(app)


def get_jobs(request: Request) -> Jobs:
    """``Depends(get_jobs)``: the runtime the lifespan started."""
    runtime = getattr(request.app.state, "kit_jobs", None)
    if not isinstance(runtime, Jobs):
        raise KitJobsError("kit-jobs' lifespan is not installed: FastAPI(lifespan=lifespan(...))")
    return runtime


def install_problem_handlers(app: FastAPI) -> None:
    """Answer :class:`KitJobsError` with an RFC 9457 ``application/problem+json`` response."""

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, KitJobsError)
        return JSONResponse(
            exc.problem(), status_code=exc.status, media_type="application/problem+json"
        )

    app.add_exception_handler(KitJobsError, handle)
