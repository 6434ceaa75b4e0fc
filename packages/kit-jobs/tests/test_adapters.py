"""Flask and FastAPI adapters: config, app context around jobs on every backend,
lifespan, problem+json."""

from __future__ import annotations

from typing import Annotated

import pytest
import rqapp

from kit_jobs import BackendClosed, Jobs, JobStatus, get_jobs, job

flask = pytest.importorskip("flask")
fastapi = pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from kit_jobs.fastapi import get_jobs as jobs_dependency  # noqa: E402
from kit_jobs.fastapi import install_problem_handlers, lifespan  # noqa: E402
from kit_jobs.flask import KitJobs  # noqa: E402


@job(name="adapters.app_name", queue="kjtest")
def app_name() -> str:
    return str(flask.current_app.name) + ":" + str(flask.current_app.config["GREETING"])


def _flask_app(**config: object) -> flask.Flask:
    app = flask.Flask("kitapp")
    app.config.update(GREETING="hi", **config)
    return app


@pytest.mark.parametrize("backend", ["sync", "thread"])
def test_flask_pushes_an_app_context_around_every_job(backend: str) -> None:
    app = _flask_app(KIT_JOBS_BACKEND=backend)
    ext = KitJobs(app)
    try:
        assert get_jobs() is ext.jobs  # task.enqueue() uses the app's runtime
        assert app_name.enqueue().result(timeout=10) == "kitapp:hi"
        with app.test_request_context():
            assert app_name.enqueue().result(timeout=10) == "kitapp:hi"
    finally:
        ext.jobs.shutdown()


def test_flask_pushes_an_app_context_on_the_rq_worker(rq_url: str) -> None:
    app = _flask_app(KIT_JOBS_BACKEND="rq", KIT_JOBS_REDIS_URL=rq_url)
    ext = KitJobs(app)
    ref = app_name.enqueue()
    ext.jobs.work(queues=["kjtest"], burst=True, with_scheduler=False)
    assert ref.result(timeout=5) == "kitapp:hi"


def test_flask_config_errors_name_the_key() -> None:
    from kit_jobs import ConfigurationError

    with pytest.raises(ConfigurationError, match="KIT_JOBS_BACKEND='carrier-pigeon'"):
        KitJobs(_flask_app(KIT_JOBS_BACKEND="carrier-pigeon"))


def test_flask_errors_are_problem_json_and_the_cli_is_mounted() -> None:
    app = _flask_app(KIT_JOBS_BACKEND="sync")
    ext = KitJobs(app)

    @app.get("/jobs/<job_id>")
    def status(job_id: str) -> dict[str, str]:
        return {"status": ext.jobs.get(job_id).status()}

    @app.post("/bad")
    def bad() -> dict[str, str]:
        return {"id": rqapp.add.enqueue(object(), 1).id}  # type: ignore[arg-type]

    client = app.test_client()
    missing = client.get("/jobs/nope")
    assert missing.status_code == 404
    assert missing.mimetype == "application/problem+json"
    assert missing.get_json()["type"] == "https://kit.dev/problems/job-not-found"
    refused = client.post("/bad")
    assert refused.status_code == 500
    assert refused.get_json()["type"] == "https://kit.dev/problems/job-arguments"
    assert "object" not in refused.get_json()["detail"]
    result = app.test_cli_runner().invoke(args=["kit-jobs", "--json", "status"])
    assert result.exit_code == 0, result.output
    assert '"backend": "sync"' in result.output


async def test_fastapi_lifespan_starts_and_stops_the_thread_backend() -> None:
    jobs = Jobs(backend="thread", max_workers=2)
    app = fastapi.FastAPI(lifespan=lifespan(jobs, shutdown_timeout=5))
    install_problem_handlers(app)

    @app.post("/add/{a}")
    async def add(a: int) -> dict[str, str]:
        return {"id": rqapp.add.enqueue(a, 1).id}

    @app.get("/jobs/{job_id}")
    async def status(
        job_id: str, runtime: Annotated[Jobs, fastapi.Depends(jobs_dependency)]
    ) -> dict[str, object]:
        # result() first: it waits for the job, and a job's status is set before its
        # waiters wake, so the status read after it is final (read before, it can be queued)
        result = runtime.get(job_id).result(timeout=5)
        return {"status": runtime.get(job_id).status(), "result": result}

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            created = (await client.post("/add/41")).json()
            done = (await client.get(f"/jobs/{created['id']}")).json()
            assert done == {"status": "finished", "result": 42}
            missing = await client.get("/jobs/nope")
            assert missing.status_code == 404
            assert missing.headers["content-type"] == "application/problem+json"
        assert get_jobs() is jobs
    assert jobs.counts()[JobStatus.FINISHED] == 1
    with pytest.raises(BackendClosed):
        jobs.enqueue(rqapp.add, 1, 1)
