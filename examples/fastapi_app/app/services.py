"""Everything the app holds for its lifetime, built once from the settings, with the
lifespan that opens and closes it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import structlog
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from app import job_resources
from app.backends import (
    build_async_database,
    build_cache,
    build_database,
    build_jobs,
    build_mailer,
    build_storage,
)
from app.models import Model
from app.security import Security, build_security
from app.settings import Settings
from app.shields import Shields
from kit_cache import AsyncRedisCache, MemoryCache
from kit_cache.fastapi import kit_cache_lifespan
from kit_db import AsyncDatabase, Database
from kit_db.fastapi import kit_db_lifespan
from kit_jobs import Jobs
from kit_jobs.fastapi import lifespan as kit_jobs_lifespan
from kit_mail import Mailer
from kit_storage import Storage

__all__ = ["Services"]

log = structlog.get_logger("app")


@dataclass(frozen=True)
class Services:
    settings: Settings
    database: AsyncDatabase
    sync_database: Database
    cache: MemoryCache | AsyncRedisCache
    jobs: Jobs
    storage: Storage
    mailer: Mailer
    shields: Shields
    security: Security

    @classmethod
    def build(cls, settings: Settings) -> Services:
        database = build_async_database(settings)
        sync_database = build_database(settings)
        shields = Shields(settings.netcore_iface)
        return cls(
            settings=settings,
            database=database,
            sync_database=sync_database,
            cache=build_cache(settings),
            jobs=build_jobs(settings),
            storage=build_storage(settings),
            mailer=build_mailer(settings),
            shields=shields,
            security=build_security(settings, database, sync_database, shields),
        )

    def backends(self) -> dict[str, str]:
        """Which backend each kit runs on, for the start-up log and /health/ready."""
        return {
            "database": self.sync_database.dialect,
            "cache": type(self.cache).__name__,
            "jobs": self.jobs.backend.name,
            "storage": type(self.storage).__name__,
            "mail": self.mailer.name,
            "auth_stores": type(self.security.token_store).__name__,
            "rate_limits": type(self.security.limiter.storage).__name__,
            "shield": "XDP + userspace" if self.shields.kernel else "userspace",
            "oidc": self.settings.oidc_issuer,
        }

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        # Tables are created at start-up to keep the demo to one command; a real app runs
        # kit-db's Alembic migrations (kit-db upgrade) in its deploy step instead.
        await run_in_threadpool(self.sync_database.create_all, Model.metadata)
        job_resources.use(
            job_resources.JobResources(
                settings=self.settings,
                database=self.sync_database,
                storage=self.storage,
                mailer=self.mailer,
            )
        )
        app.state.services = self
        try:
            async with (
                kit_db_lifespan(self.database)(app),
                kit_cache_lifespan(self.cache)(app),
                kit_jobs_lifespan(self.jobs, scheduler=False, shutdown_timeout=10)(app),
            ):
                if self.settings.generated_secret:
                    log.warning("secret_key_generated", hint="set SECRET_KEY to keep sessions")
                log.info("app_started", environment=self.settings.environment, **self.backends())
                yield
        finally:
            job_resources.use(None)
            await self.security.aclose()
            self.mailer.close()
            self.shields.close()
            self.sync_database.dispose()
