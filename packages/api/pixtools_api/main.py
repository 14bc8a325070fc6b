"""Entry point of the API process: uvicorn serving `create_app` on API_HOST:API_PORT.

uvicorn handles SIGINT and SIGTERM itself: it stops accepting connections, lets
requests in flight finish for up to API_SHUTDOWN_GRACE_SECONDS, then runs the
app's shutdown (closing database and broker connections). uvicorn then raises
the signal again, so after SIGTERM the process exit status is -15, not 0.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence

import structlog
import uvicorn

from pixtools_api.app import create_app
from pixtools_shared.db import upgrade_database
from pixtools_shared.logging_setup import configure_logging
from pixtools_shared.settings import Settings, get_settings

logger = structlog.get_logger(__name__)


def build_server(settings: Settings, host: str, port: int) -> uvicorn.Server:
    """Build a uvicorn server for the app without starting it."""
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        # uvicorn takes whole seconds; round up so a short grace is never 0.
        timeout_graceful_shutdown=math.ceil(settings.API_SHUTDOWN_GRACE_SECONDS),
        # Logging is configured by configure_logging; keep uvicorn's hands off.
        log_config=None,
        server_header=False,
        lifespan="on",
    )
    return uvicorn.Server(config)


def parse_arguments(
    argv: Sequence[str] | None, settings: Settings
) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="pixtools-api", description="Run the PixTools HTTP API."
    )
    parser.add_argument(
        "--host",
        default=settings.API_HOST,
        help=f"address to bind (default API_HOST, now {settings.API_HOST})",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=settings.API_PORT,
        help=f"TCP port to listen on (default API_PORT, now {settings.API_PORT})",
    )
    return parser.parse_args(argv)


def migrate(settings: Settings) -> None:
    """Upgrade the database schema to the latest revision, then return."""
    logger.info("database_migration_started")
    upgrade_database(settings.database_url)
    logger.info("database_migration_finished")


def main(argv: Sequence[str] | None = None) -> None:
    """Run the API until SIGINT or SIGTERM, or run `migrate` and exit.

    Deployments run `api.pex migrate` once before rolling out a release; the API
    itself never changes the schema.
    """
    settings = get_settings()
    configure_logging(settings)
    arguments_list = list(sys.argv[1:] if argv is None else argv)
    if arguments_list[:1] == ["migrate"]:
        migrate(settings)
        return
    arguments = parse_arguments(arguments_list, settings)

    logger.info("api_starting", host=arguments.host, port=arguments.port)
    build_server(settings, arguments.host, arguments.port).run()
    logger.info("api_stopped")
