"""The application: ``uvicorn app.main:app``, run from examples/fastapi_app."""

from __future__ import annotations

from fastapi import FastAPI

from app.deps import Dependencies
from app.health import health_router
from app.logging_setup import configure_logging
from app.problems import install_problem_handlers
from app.request_ids import RequestIdMiddleware
from app.routes.admin import admin_router
from app.routes.auth import auth_routers
from app.routes.projects import projects_router
from app.routes.reports import reports_router
from app.services import Services
from app.settings import Settings
from kit_netcore.fastapi import install_shield
from kit_storage import LocalStorage
from kit_storage.fastapi import storage_router

__all__ = ["app", "create_app"]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level)
    services = Services.build(settings)
    deps = Dependencies.build(services)
    app = FastAPI(
        title="kit demo: projects API",
        description="A multi-tenant API composed from the kit packages.",
        lifespan=services.lifespan,
    )
    install_problem_handlers(app)
    for router in (
        *auth_routers(deps),
        projects_router(deps),
        reports_router(deps),
        admin_router(deps),
        health_router(services),
    ):
        app.include_router(router)
    if isinstance(services.storage, LocalStorage):  # GCS links point at the bucket itself
        app.include_router(storage_router(services.storage, prefix="/files"))
    # The shield answers before routing (403 for a blocked address); the request-id
    # middleware, added last, is outermost, so refused requests are logged with an id too.
    install_shield(
        app, services.shields.userspace, trusted_proxies=settings.trusted_proxies or None
    )
    app.add_middleware(RequestIdMiddleware)
    return app


app = create_app()
