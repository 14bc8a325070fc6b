"""HTTP error bodies: one place that turns every failure into the same JSON shape.

Every 4xx and 5xx response has the body
``{"error": {"code": "kebab-code", "message": "...", "details": [...]}}``.
PixToolsError subclasses carry their own code and status. Request validation
errors, Starlette HTTP errors (unknown route, wrong method) and unexpected
exceptions are mapped here too, so no response leaks a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sqlalchemy_errors
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from pixtools_shared.errors import PixToolsError

logger = structlog.get_logger(__name__)

# Codes for Starlette's own HTTP errors (routing, methods), which carry no code.
HTTP_STATUS_CODES: dict[int, str] = {
    400: "bad-request",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    413: "request-too-large",
    415: "unsupported-media-type",
}


class InvalidRequestError(PixToolsError):
    """The request is malformed: a missing field, a broken multipart body, bad text."""

    code = "invalid-request"
    http_status = 422
    default_message = "The request is invalid."


class UnsupportedMediaTypeError(PixToolsError):
    """The request body has a Content-Type that the endpoint does not accept."""

    code = "unsupported-media-type"
    http_status = 415
    default_message = "The request body must be multipart/form-data."


class FormFieldTooLargeError(PixToolsError):
    """A non-file form field is longer than MAX_FORM_FIELD_BYTES."""

    code = "form-field-too-large"
    http_status = 413
    default_message = "A form field exceeds the maximum size."


class FileNotFoundInStorageError(PixToolsError):
    """The signed link is valid, but the object no longer exists in storage."""

    code = "file-not-found"
    http_status = 404
    default_message = "The file was not found; it may have expired."


def error_body(
    code: str, message: str, details: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    """Build the JSON error body shared by every error response."""
    return {"error": {"code": code, "message": message, "details": list(details)}}


def error_response(
    status: int,
    code: str,
    message: str,
    details: Sequence[dict[str, Any]] = (),
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        status_code=status,
        content=error_body(code, message, details),
        headers=headers,
    )


def validation_details(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Convert pydantic error entries into `{"field", "message"}` details."""
    details: list[dict[str, Any]] = []
    for entry in errors:
        location = [str(part) for part in entry.get("loc", ())]
        # FastAPI prefixes the location with body, query, path or header. The
        # prefix stays because it shows the client which part of the request failed.
        details.append(
            {"field": ".".join(location), "message": str(entry.get("msg", ""))}
        )
    return details


class DatabaseUnavailableError(PixToolsError):
    """Error for a database that rejected or dropped the connection, or a full pool."""

    code = "database-unavailable"
    http_status = 503
    default_message = (
        "The database is unavailable; retry the request after the time in Retry-After."
    )


# SQLAlchemy's classes for a server that cannot be reached (OperationalError,
# InterfaceError wrap the driver's connection errors) and for a full pool.
DATABASE_UNAVAILABLE_ERRORS = (
    sqlalchemy_errors.OperationalError,
    sqlalchemy_errors.InterfaceError,
    sqlalchemy_errors.TimeoutError,
)


# Retry-After of a 503 whose error does not name its own wait.
DEFAULT_RETRY_AFTER_SECONDS = 5


def error_headers(exc: PixToolsError) -> dict[str, str]:
    """Response headers an error asks for: Retry-After, WWW-Authenticate."""
    headers: dict[str, str] = {}
    retry_after = getattr(exc, "retry_after_seconds", None)
    if retry_after is not None:
        headers["Retry-After"] = str(int(retry_after))
    elif exc.http_status == 503:
        headers["Retry-After"] = str(DEFAULT_RETRY_AFTER_SECONDS)
    challenge = getattr(exc, "www_authenticate", None)
    if challenge is not None:
        headers["WWW-Authenticate"] = str(challenge)
    return headers


def pixtools_error_response(exc: PixToolsError) -> JSONResponse:
    """Build the response of a PixToolsError (also used by middleware)."""
    # Only the base class is a generic 500; never echo its message, which may
    # carry internal details.
    message = exc.message if exc.http_status < 500 else type(exc).default_message
    return error_response(
        exc.http_status, exc.code, message, exc.details, error_headers(exc)
    )


async def handle_pixtools_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PixToolsError)
    log = logger.warning if exc.http_status < 500 else logger.error
    log(
        "request_rejected",
        path=request.url.path,
        code=exc.code,
        status=exc.http_status,
        message=exc.message,
    )
    return pixtools_error_response(exc)


async def handle_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = validation_details(exc.errors())
    logger.warning("request_invalid", path=request.url.path, details=details)
    return error_response(422, "invalid-request", "The request is invalid.", details)


async def handle_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = HTTP_STATUS_CODES.get(exc.status_code, "http-error")
    message = exc.detail if isinstance(exc.detail, str) else "The request failed."
    return error_response(exc.status_code, code, message, headers=exc.headers)


async def handle_client_disconnect(request: Request, exc: Exception) -> JSONResponse:
    # The client has disconnected, so this response is never read. It only ends
    # the request cleanly.
    logger.info("client_disconnected", path=request.url.path)
    return error_response(400, "client-disconnected", "The client disconnected.")


async def handle_database_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DATABASE_UNAVAILABLE_ERRORS)
    # The driver's message names the host and port, so it goes to the log only.
    original = getattr(exc, "orig", None) or exc
    logger.error(
        "database_unavailable",
        path=request.url.path,
        error_type=type(original).__name__,
        error=str(original).strip()[:500],
    )
    return pixtools_error_response(DatabaseUnavailableError())


async def handle_unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.error(
        "request_failed",
        path=request.url.path,
        error_type=type(exc).__name__,
        exc_info=exc,
    )
    return error_response(500, "internal-error", "An internal error occurred.")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error response the shared body."""
    app.add_exception_handler(PixToolsError, handle_pixtools_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_error)
    app.add_exception_handler(ClientDisconnect, handle_client_disconnect)
    for error_class in DATABASE_UNAVAILABLE_ERRORS:
        app.add_exception_handler(error_class, handle_database_error)
    app.add_exception_handler(Exception, handle_unexpected_error)
