"""Health endpoints: liveness, readiness and the detailed dependency report.

- GET /api/livez: the process serves requests. It checks no other server, so a
  database outage never makes the orchestrator restart healthy API processes.
- GET /api/readyz: the database, broker, storage and Redis (when configured)
  respond within READY_CHECK_TIMEOUT_SECONDS each; 503 takes the process out of
  the load balancer until they do.
- GET /api/health: the same checks with CHECK_TIMEOUT_SECONDS and latencies.

The checks run concurrently in threads, each bounded by its timeout, so a hung
dependency makes the endpoint report an error instead of hanging.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Literal

import structlog
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from pixtools_api.dependencies import ServicesDep
from pixtools_api.services import ApiServices

logger = structlog.get_logger(__name__)

router = APIRouter(prefix="/api", tags=["health"])

CHECK_TIMEOUT_SECONDS = 5.0
# Readiness is probed every few seconds, so each check gets less time.
READY_CHECK_TIMEOUT_SECONDS = 2.0

# A prefix that no object has, so listing it reads only the bucket or folder.
PROBE_PREFIX = "health-check/"


class CheckResult(BaseModel):
    status: Literal["ok", "error"]
    latency_ms: float
    error: str | None = None


class HealthReport(BaseModel):
    status: Literal["ok", "error"]
    checks: dict[str, CheckResult]


def check_database(services: ApiServices) -> None:
    with services.session_factory() as session:
        session.execute(text("SELECT 1"))


def check_broker(services: ApiServices) -> None:
    with services.celery.connection_for_write() as connection:
        connection.ensure_connection(
            max_retries=1, interval_start=0, timeout=CHECK_TIMEOUT_SECONDS
        )


def check_storage(services: ApiServices) -> None:
    for area in ("uploads", "outputs", "bundles"):
        services.storage.list_keys(area, PROBE_PREFIX)


def check_redis(services: ApiServices) -> None:
    assert services.redis is not None
    services.redis.ping()


async def run_check(
    name: str,
    check: Callable[[ApiServices], None],
    services: ApiServices,
    timeout: float = CHECK_TIMEOUT_SECONDS,
) -> CheckResult:
    started = time.perf_counter()
    error: str | None = None
    try:
        await asyncio.wait_for(asyncio.to_thread(check, services), timeout=timeout)
    except TimeoutError:
        error = f"timed out after {timeout:g} s"
    except Exception as exc:
        # The message is shown to the caller, so only the class name goes out;
        # the full error is logged.
        error = type(exc).__name__
        logger.warning("health_check_failed", check=name, exc_info=exc)

    latency_ms = round((time.perf_counter() - started) * 1000, 2)
    if error is not None:
        return CheckResult(status="error", latency_ms=latency_ms, error=error)
    return CheckResult(status="ok", latency_ms=latency_ms)


class LivenessReport(BaseModel):
    status: Literal["ok"]


def dependency_checks(
    services: ApiServices,
) -> dict[str, Callable[[ApiServices], None]]:
    checks: dict[str, Callable[[ApiServices], None]] = {
        "database": check_database,
        "broker": check_broker,
        "storage": check_storage,
    }
    if services.redis is not None:
        checks["redis"] = check_redis
    return checks


async def check_dependencies(services: ApiServices, timeout: float) -> JSONResponse:
    checks = dependency_checks(services)
    results = await asyncio.gather(
        *(run_check(name, check, services, timeout) for name, check in checks.items())
    )
    report = HealthReport(
        status="ok" if all(result.status == "ok" for result in results) else "error",
        checks=dict(zip(checks, results, strict=True)),
    )
    return JSONResponse(
        status_code=200 if report.status == "ok" else 503,
        content=report.model_dump(),
        headers={"Cache-Control": "no-store"},
    )


@router.get("/livez", response_model=LivenessReport)
async def read_liveness() -> JSONResponse:
    """Report that the process serves requests; checks no dependency."""
    return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})


@router.get("/readyz", responses={503: {"model": HealthReport}})
async def read_readiness(services: ServicesDep) -> JSONResponse:
    """Check every dependency with a short timeout; 200 when all respond."""
    return await check_dependencies(services, READY_CHECK_TIMEOUT_SECONDS)


@router.get("/health", responses={503: {"model": HealthReport}})
async def read_health(services: ServicesDep) -> JSONResponse:
    """Check every dependency; 200 when all are reachable, else 503."""
    return await check_dependencies(services, CHECK_TIMEOUT_SECONDS)
