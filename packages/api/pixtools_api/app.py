"""Application factory of the PixTools HTTP API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI

from pixtools_api.errors import install_error_handlers
from pixtools_api.metrics_middleware import install_observability
from pixtools_api.routes import events, files, health, jobs, limits, page, process
from pixtools_api.services import ApiServices
from pixtools_shared.settings import Settings

logger = structlog.get_logger(__name__)


def create_app(settings: Settings, services: ApiServices | None = None) -> FastAPI:
    """Build the API app; `services` replaces the clients built from `settings`."""
    services = services or ApiServices.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logger.info(
            "api_started",
            storage_backend=settings.STORAGE_BACKEND,
            broker_filesystem=settings.uses_filesystem_broker,
            redis_configured=settings.REDIS_URL is not None,
        )
        yield
        services.close()
        logger.info("api_shutdown_finished")

    app = FastAPI(
        title="PixTools",
        summary="Asynchronous image conversion, denoising and metadata extraction.",
        version="1.0.0",
        lifespan=lifespan,
    )
    app.state.services = services

    install_error_handlers(app)
    app.include_router(process.router)
    app.include_router(jobs.router)
    app.include_router(events.router)
    app.include_router(files.router)
    app.include_router(health.router)
    app.include_router(limits.router)
    app.include_router(page.router)
    # Last, so its middleware is the outermost and sees every response.
    install_observability(app, settings)
    return app
