"""Command line of the ML worker.

``python -m pixtools_worker_ml worker [celery worker options]`` consumes only the
``ml`` queue with ML_WORKER_CONCURRENCY processes (default 1: one process already
uses every thread its CPU share allows). It does not migrate the database: it waits
until the API or the launcher has migrated it (SCHEMA_WAIT_SECONDS). Training and
evaluation have their own modules: ``python -m pixtools_worker_ml.train`` and
``python -m pixtools_worker_ml.evaluate``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import structlog
from celery import signals

from pixtools_shared.db.migrate import SchemaNotReadyError, wait_for_schema
from pixtools_shared.logging_setup import configure_logging
from pixtools_shared.observability.worker_metrics import serve_worker_metrics
from pixtools_shared.settings import Settings, get_settings
from pixtools_shared.tasks import QUEUE_ML

logger = structlog.get_logger(__name__)


@signals.setup_logging.connect
def _keep_our_logging(**_kwargs: Any) -> None:
    # A receiver on this signal stops Celery from installing its own handlers.
    configure_logging(get_settings())


def worker_argv(settings: Settings, extra: Sequence[str]) -> list[str]:
    concurrency = settings.ML_WORKER_CONCURRENCY
    argv = [
        "worker",
        f"--queues={QUEUE_ML}",
        f"--concurrency={concurrency}",
        f"--loglevel={settings.LOG_LEVEL.upper()}",
        "--hostname=ml@%h",
    ]
    if settings.uses_filesystem_broker:
        # Gossip and mingle need broadcast messages between workers.
        argv += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    return [*argv, *extra]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pixtools_worker_ml")
    parser.add_argument("command", choices=["worker"])
    args, extra = parser.parse_known_args(argv)

    settings = get_settings()
    configure_logging(settings)
    if args.command == "worker":
        # Before the task modules are imported: they create the metrics.
        serve_worker_metrics("ml", settings)
    try:
        wait_for_schema(settings.database_url, settings.SCHEMA_WAIT_SECONDS)
    except SchemaNotReadyError as exc:
        logger.error("worker_start_failed", command=args.command, error=str(exc))
        return 1

    # Imported after logging is set up: creating the app reads the settings.
    from pixtools_worker_ml.app import app

    command = worker_argv(settings, extra)
    logger.info("celery_starting", command=args.command, argv=command)
    app.start(command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
