"""The RQ worker's entry point: ``kit-jobs --app app.worker:jobs worker`` (run from
examples/fastapi_app, with the app's environment variables). It logs JSON like the app
and builds the job resources (database, storage, mailer) from the same settings."""

from __future__ import annotations

import app.jobs  # noqa: F401 - registers the @job tasks this worker runs
from app.backends import build_jobs
from app.logging_setup import configure_logging
from app.settings import Settings

__all__ = ["jobs"]

settings = Settings.from_env()
configure_logging(settings.log_level)
jobs = build_jobs(settings)
