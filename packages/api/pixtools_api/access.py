"""ASGI middleware that authenticates and rate-limits requests before any route runs.

Path rules:

- ``/api/health``, ``/api/livez``, ``/api/readyz``: public (probes).
- ``/api/files/...``: public; each link is a signed, expiring capability.
- every other ``/api/...`` path: an API key, unless anonymous access is
  allowed (ALLOW_ANONYMOUS, or no API_KEYS). Then the per-client rate limit.
- ``/metrics``: public with METRICS_PUBLIC; otherwise an API key or
  ``Authorization: Bearer`` METRICS_TOKEN, even where anonymous API access is
  allowed.
- anything else (the page at ``/``, its static files, ``/docs``): public.

Because it runs before routing, a route added later under ``/api`` is guarded
without further code, and POST /api/process rejects a caller before it reads
one byte of the upload. The caller is stored in the request state for routes
(``dependencies.CallerDep``).
"""

from __future__ import annotations

import hmac
from enum import Enum
from urllib.parse import parse_qsl

import anyio.to_thread
import structlog
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from pixtools_api.auth import (
    ANONYMOUS,
    ApiKeyInQueryError,
    Caller,
    KeyRing,
    authenticate,
    credential_in_query,
)
from pixtools_api.errors import pixtools_error_response
from pixtools_api.rate_limit import RateLimiter
from pixtools_shared.errors import PixToolsError
from pixtools_shared.settings import Settings

logger = structlog.get_logger(__name__)

PUBLIC_API_PATHS = frozenset({"/api/health", "/api/livez", "/api/readyz"})
PUBLIC_API_PREFIXES = ("/api/files/",)
METRICS_PATH = "/metrics"

CALLER_STATE = "caller"
METRICS_ACCESS_STATE = "metrics_access_granted"


class PathKind(Enum):
    PUBLIC = "public"
    API = "api"
    METRICS = "metrics"


def classify_path(path: str) -> PathKind:
    """Return which access rule applies to a request path."""
    if path == METRICS_PATH or path.startswith(METRICS_PATH + "/"):
        return PathKind.METRICS
    if path in PUBLIC_API_PATHS or path.startswith(PUBLIC_API_PREFIXES):
        return PathKind.PUBLIC
    if path == "/api" or path.startswith("/api/"):
        return PathKind.API
    return PathKind.PUBLIC


def client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class AccessControlMiddleware:
    """Authentication, rate limit and /metrics access for every HTTP request."""

    def __init__(
        self, app: ASGIApp, settings: Settings, rate_limiter: RateLimiter | None
    ) -> None:
        self.app = app
        self.settings = settings
        self.key_ring = KeyRing.from_settings(settings)
        self.allow_anonymous = settings.allows_anonymous
        self.rate_limiter = rate_limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        kind = classify_path(scope["path"])
        if kind is PathKind.PUBLIC:
            await self.app(scope, receive, send)
            return

        try:
            if kind is PathKind.METRICS:
                caller = self._authorize_metrics(scope)
            else:
                caller = await self._authorize_api(scope)
        except PixToolsError as exc:
            logger.warning(
                "request_unauthorized" if exc.http_status == 401 else "request_limited",
                path=scope["path"],
                method=scope.get("method"),
                code=exc.code,
                client=client_address(scope),
            )
            await pixtools_error_response(exc)(scope, receive, send)
            return

        state = scope.setdefault("state", {})
        state[CALLER_STATE] = caller
        if kind is PathKind.METRICS:
            state[METRICS_ACCESS_STATE] = True
        await self.app(scope, receive, send)

    def _check_query(self, scope: Scope) -> None:
        query = scope.get("query_string", b"").decode("latin-1")
        if query and credential_in_query(parse_qsl(query, keep_blank_values=True)):
            raise ApiKeyInQueryError()

    async def _authorize_api(self, scope: Scope) -> Caller:
        self._check_query(scope)
        caller = authenticate(Headers(scope=scope), self.key_ring, self.allow_anonymous)

        if self.rate_limiter is not None:
            client = caller.scope or f"address:{client_address(scope)}"
            await anyio.to_thread.run_sync(self.rate_limiter.check, client)
        return caller

    def _authorize_metrics(self, scope: Scope) -> Caller:
        if self.settings.METRICS_PUBLIC:
            return ANONYMOUS
        self._check_query(scope)
        headers = Headers(scope=scope)
        token = self.settings.METRICS_TOKEN
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if (
            token
            and scheme.lower() == "bearer"
            and hmac.compare_digest(credentials.strip().encode(), token.encode())
        ):
            return ANONYMOUS
        # Otherwise any valid API key; anonymous access never covers /metrics.
        return authenticate(headers, self.key_ring, allow_anonymous=False)
