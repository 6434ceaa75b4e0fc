"""Builds each kit's backend from the settings: this is where environment variables
switch SQLite to PostgreSQL, memory to Redis, thread jobs to RQ, local files to GCS and
the console to Resend. Nothing here connects: the first use does."""

from __future__ import annotations

from app.settings import Settings, SettingsError
from kit_cache import AsyncRedisCache, MemoryCache, cache_from_url
from kit_cache import ConfigurationError as CacheConfigurationError
from kit_db import AsyncDatabase, Database
from kit_db import ConfigurationError as DBConfigurationError
from kit_jobs import Jobs
from kit_mail import Mailer, mailer_from_env
from kit_storage import LocalStorage, Storage

__all__ = [
    "build_async_database",
    "build_cache",
    "build_database",
    "build_jobs",
    "build_mailer",
    "build_storage",
]


def build_database(settings: Settings) -> Database:
    """The synchronous engine: jobs, the API-key store, ``create_all``."""
    try:
        return Database(settings.database_url)
    except DBConfigurationError as exc:  # its message masks the password
        raise SettingsError(f"DATABASE_URL: {exc}") from None


def build_async_database(settings: Settings) -> AsyncDatabase:
    """The asyncio engine of the request handlers (aiosqlite / asyncpg, same URL)."""
    try:
        return AsyncDatabase(settings.database_url)
    except DBConfigurationError as exc:
        raise SettingsError(f"DATABASE_URL: {exc}") from None


def build_cache(settings: Settings) -> MemoryCache | AsyncRedisCache:
    if settings.redis_url is None:
        return MemoryCache(default_ttl=settings.cache_ttl, prefix="kitdemo")
    try:
        cache = cache_from_url(
            settings.redis_url, asyncio=True, default_ttl=settings.cache_ttl, prefix="kitdemo"
        )
    except CacheConfigurationError as exc:
        raise SettingsError(f"REDIS_URL: {exc}") from None
    assert isinstance(cache, AsyncRedisCache)
    return cache


def build_jobs(settings: Settings) -> Jobs:
    backend = settings.jobs_backend
    if backend == "rq":
        return Jobs(backend="rq", redis_url=settings.jobs_redis_url)
    return Jobs(backend="sync" if backend == "sync" else "thread")


def build_storage(settings: Settings) -> Storage:
    """``gs://bucket`` is Google Cloud Storage; anything else is a local folder whose
    signed links the app serves under ``/files``."""
    url = settings.storage_url
    if url.startswith("gs://"):
        from kit_storage.gcs import GCSStorage

        bucket = url.removeprefix("gs://").strip("/")
        if not bucket or "/" in bucket:
            raise SettingsError(f"STORAGE_URL={url!r}: use gs://<bucket>")
        return GCSStorage(bucket)
    root = url.removeprefix("file://")
    if "://" in root:
        raise SettingsError(f"STORAGE_URL={url!r}: give a folder, file:///folder or gs://bucket")
    return LocalStorage(root, base_url="/files", secret=settings.derive("storage-links"))


def build_mailer(settings: Settings) -> Mailer:
    """Resend when ``RESEND_API_KEY`` is set, else ``KIT_MAIL_BACKEND`` (console unless
    told otherwise: mails are printed on stdout)."""
    if settings.resend_api_key:
        from kit_mail.resend import ResendMailer

        return ResendMailer(settings.resend_api_key, default_sender=settings.mail_from)
    return mailer_from_env(default_backend="console")
