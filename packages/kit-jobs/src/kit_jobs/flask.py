"""Flask adapter: the :class:`KitJobs` extension. The only module that imports Flask.

``KitJobs(app)`` builds the job runtime from ``app.config`` (``KIT_JOBS_BACKEND``,
``KIT_JOBS_REDIS_URL``, ... as in :meth:`kit_jobs.Jobs.from_config`), makes it the
default that ``task.enqueue()`` uses, pushes an app context around every job on every
backend (so jobs can use ``current_app`` and Flask extensions), answers kit-jobs errors
with RFC 9457 problem+json, and adds ``flask kit-jobs ...`` (the ``kit-jobs`` command
with this app's configuration: ``flask kit-jobs worker``).

Example::

    from flask import Flask
    from kit_jobs import job
    from kit_jobs.flask import KitJobs

    app = Flask(__name__)
    app.config["KIT_JOBS_BACKEND"] = "thread"
    jobs = KitJobs(app)

    @job(retry=3)
    def send_welcome(user_id: int) -> None:
        ...  # current_app works here

    @app.post("/users/<int:user_id>/welcome")
    def welcome(user_id: int):
        return {"job": send_welcome.enqueue(user_id).id}, 202
"""

from __future__ import annotations

import atexit
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

try:
    import click
    from flask import Flask, Response, current_app, jsonify
except ImportError as exc:  # pragma: no cover - exercised by the slim session
    raise ImportError('kit_jobs.flask needs Flask: pip install "kit-jobs[flask]"') from exc

from ._execute import JobContext
from ._runtime import Jobs, configure
from .exceptions import KitJobsError

__all__ = ["EXTENSION_KEY", "KitJobs"]

EXTENSION_KEY = "kit-jobs"


class KitJobs:
    """The Flask extension: ``KitJobs(app)`` or ``ext = KitJobs()`` then ``ext.init_app(app)``.

    Config keys (besides :meth:`kit_jobs.Jobs.from_config`'s): ``KIT_JOBS_DEFAULT``
    (default True: make this app's runtime the one ``task.enqueue()`` uses),
    ``KIT_JOBS_SCHEDULER`` (default False: fire ``@scheduled`` tasks from this process;
    on the thread backend run it in one process only), ``KIT_JOBS_SHUTDOWN_TIMEOUT``
    (seconds the thread backend drains at exit, default 30).
    """

    def __init__(self, app: Flask | None = None, *, jobs: Jobs | None = None) -> None:
        self._jobs = jobs
        self.app: Flask | None = None
        if app is not None:
            self.init_app(app)

    @property
    def jobs(self) -> Jobs:
        """The app's :class:`~kit_jobs.Jobs`."""
        if self._jobs is None:
            raise KitJobsError("KitJobs.init_app(app) has not run yet")
        return self._jobs

    def init_app(self, app: Flask) -> None:
        """Build the runtime from ``app.config``; a bad value fails here, naming the key."""
        jobs = self._jobs if self._jobs is not None else Jobs.from_config(app.config)
        self._jobs = jobs

        def app_context(context: JobContext) -> AbstractContextManager[object]:
            return _app_context(app)

        jobs.around_job(app_context)
        if app.config.get("KIT_JOBS_DEFAULT", True):
            configure(jobs)
        if app.config.get("KIT_JOBS_SCHEDULER", False):
            jobs.start_scheduler()
        timeout = float(app.config.get("KIT_JOBS_SHUTDOWN_TIMEOUT", 30))
        atexit.register(jobs.shutdown, wait=True, timeout=timeout)
        app.extensions[EXTENSION_KEY] = self
        app.register_error_handler(KitJobsError, _problem_response)
        app.cli.add_command(_command(self))
        self.app = app


@contextmanager
def _app_context(app: Flask) -> Iterator[None]:
    """Push ``app``'s context unless the job already runs inside it (sync backend in a
    request: keep the request's context)."""
    try:
        same = current_app._get_current_object() is app  # type: ignore[attr-defined]
    except RuntimeError:
        same = False
    if same:
        yield
        return
    with app.app_context():
        yield


def _command(extension: KitJobs) -> click.Command:
    @click.command(
        "kit-jobs",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        add_help_option=False,
        help="The kit-jobs command with this app's configuration (flask kit-jobs --help).",
    )
    @click.argument("argv", nargs=-1, type=click.UNPROCESSED)
    def command(argv: tuple[str, ...]) -> None:
        from .cli import main

        raise SystemExit(main(list(argv) or ["--help"], jobs=extension.jobs))

    return command


def _problem_response(exc: KitJobsError) -> Response:
    response: Response = jsonify(exc.problem())
    response.status_code = exc.status
    response.mimetype = "application/problem+json"
    return response
