"""The team board: a small server-rendered Flask app composed from the kit packages.

``create_app()`` is the factory (``flask --app teamboard run``). It reads the
environment (:mod:`teamboard.settings`) and wires:

- kit-db: ``KitDB``, the tables in :mod:`teamboard.models`, cards kept in order by
  ``OrderingMixin``;
- kit-auth: sign-in through an OIDC provider (``oauth_blueprint``), ``require_active``
  and ``require_roles`` guards, a rate limit on exports, problem+json errors;
- kit-storage: attachments and exports in ``LocalStorage`` (or GCS), downloaded through
  short-lived signed links;
- kit-jobs: the CSV export runs in the background (thread pool, or RQ workers);
- kit-mail: approval and "export ready" mails (console, or Resend);
- kit-cache: the board's counters (in-process, or Redis).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask, request

from kit_auth.flask import KitAuth
from kit_jobs.flask import KitJobs
from kit_storage.flask import KitStorage

from . import auth, problems
from .extensions import cache, db, mail
from .models import begin_write
from .settings import Settings, SettingsError
from .views import MAX_ATTACHMENT_BYTES, bp

__all__ = ["Settings", "SettingsError", "create_app"]


def create_app(
    env: Mapping[str, str] | None = None, *, config: Mapping[str, Any] | None = None
) -> Flask:
    """Build the app from ``env`` (default ``os.environ``); ``config`` entries are
    applied last (tests pass ``TESTING=True`` and the like)."""
    environ = os.environ if env is None else env
    settings = Settings.from_env(environ)
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.cookie_secure,
        MAX_CONTENT_LENGTH=MAX_ATTACHMENT_BYTES + 64 * 1024,  # multipart overhead
        KIT_DB_URL=settings.database_url,
        KIT_JOBS_BACKEND=settings.jobs_backend,
        KIT_JOBS_REDIS_URL=settings.redis_url,
        KIT_CACHE_URL=settings.cache_url,
        KIT_CACHE_NAMESPACE="teamboard",
        KIT_AUTH_RATELIMIT_STORAGE=settings.redis_url or "memory",
        KIT_MAIL_DEFAULT_SENDER=settings.mail_from,
        KIT_STORAGE_ROOT=str(settings.storage_root),
        KIT_STORAGE_SECRET=settings.derived_key("storage-links"),
        KIT_STORAGE_BASE_URL="/files",
    )
    if settings.resend_api_key:
        app.config.update(
            KIT_MAIL_BACKEND="resend", KIT_MAIL_RESEND_API_KEY=settings.resend_api_key
        )
    # any KIT_* variable tunes its kit directly (KIT_JOBS_MAX_WORKERS, KIT_DB_ECHO, ...)
    app.config.update({k: v for k, v in environ.items() if k.startswith("KIT_")})
    if config:
        app.config.update(config)
    app.extensions["teamboard.settings"] = settings

    db.init_app(app)
    cache.init_app(app)
    mail.init_app(app)
    KitAuth(app)
    KitJobs(app)
    if settings.gcs_bucket:
        from kit_storage.gcs import GCSStorage  # the gcs extra, only when configured

        bucket = GCSStorage(settings.gcs_bucket, service_account_email=settings.gcs_signing_email)
        KitStorage(app, storage=bucket)
    else:
        KitStorage(app)  # LocalStorage; serves its signed links under /files
    problems.install(app)
    app.before_request(_writes_first)
    auth.install(app, settings)
    app.register_blueprint(bp)
    with app.app_context():
        db.database.create_all()  # a real deployment runs kit-db migrations instead
    return app


def _writes_first() -> None:
    """Requests that change data take SQLite's write lock before they read anything
    (see :func:`teamboard.models.begin_write`); the OIDC callback creates users."""
    if request.method in ("GET", "HEAD", "OPTIONS") and not (request.endpoint or "").endswith(
        ".callback"
    ):
        return
    if request.blueprint == "kit_storage":  # files only, no rows
        return
    begin_write(db.session())
