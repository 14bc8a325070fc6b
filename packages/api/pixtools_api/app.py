"""Application factory of the PixTools HTTP API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from pixtools_api.access import AccessControlMiddleware
from pixtools_api.auth import API_KEY_HEADER, AUTHORIZATION_HEADER
from pixtools_api.connection_close import CloseUnreadBodyMiddleware
from pixtools_api.dependencies import JobAccessDep
from pixtools_api.errors import install_error_handlers
from pixtools_api.metrics_middleware import install_observability
from pixtools_api.openapi import build_openapi
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
            api_keys=len(settings.API_KEYS),
            anonymous_allowed=settings.allows_anonymous,
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
    # The events route is owned elsewhere; the owner check is attached here,
    # as on GET /api/jobs/{job_id}.
    app.include_router(events.router, dependencies=[JobAccessDep])
    app.include_router(files.router)
    app.include_router(health.router)
    app.include_router(limits.router)
    app.include_router(page.router)

    # Starlette runs the last added middleware first: observability, CORS (so
    # preflights and 401s carry its headers), closing connections whose body
    # went unread, then access control.
    app.add_middleware(
        AccessControlMiddleware,
        settings=settings,
        rate_limiter=services.rate_limiter,
    )
    app.add_middleware(CloseUnreadBodyMiddleware)
    install_cors(app, settings)
    app.openapi = lambda: build_openapi(app, settings)  # type: ignore[method-assign]
    # Last, so its middleware is the outermost and sees every response.
    install_observability(app)
    return app


def install_cors(app: FastAPI, settings: Settings) -> None:
    """Let the pages of CORS_ALLOWED_ORIGINS call the API; none when empty.

    Without the middleware no response carries Access-Control-Allow-Origin, so
    browsers keep pages of other origins from reading any response.
    """
    if not settings.CORS_ALLOWED_ORIGINS:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.CORS_ALLOWED_ORIGINS,
        allow_methods=["GET", "POST"],
        allow_headers=[
            "Content-Type",
            "Idempotency-Key",
            API_KEY_HEADER,
            AUTHORIZATION_HEADER,
        ],
        expose_headers=["Location", "Idempotent-Replayed", "Retry-After"],
        # Keys travel in headers, never cookies, so credentials mode is off.
        allow_credentials=False,
        max_age=600,
    )
